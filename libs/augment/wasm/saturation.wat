;; torchvision's adjust_saturation on a PIL image (ImageEnhance.Color): each channel blended with the
;; pixel's Pillow luma L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 as L + alpha (x - L) in float32,
;; then clipped to 0..255 and truncated (Image.blend). 4 pixels of interleaved RGB at a time, in
;; place: 12 bytes in, 12 out. The last group may run past the image by up to 3 pixels: the caller
;; leaves 16 bytes of slack after it.
;; Built into ../src/saturation-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)
  (func $blend (param $x v128) (param $l v128) (param $lf v128) (param $alpha v128) (result v128)
    ;; trunc(L + alpha * (x - L)), saturated to i32; the narrowing after clamps to 0..255.
    (i32x4.trunc_sat_f32x4_s
      (f32x4.add (local.get $lf)
        (f32x4.mul (local.get $alpha) (f32x4.convert_i32x4_s (i32x4.sub (local.get $x) (local.get $l)))))))
  (func (export "saturation") (param $data i32) (param $pixels i32) (param $factor f32)
    (local $p i32) (local $end i32) (local $v v128) (local $r v128) (local $g v128) (local $b v128)
    (local $l v128) (local $lf v128) (local $alpha v128)
    (local.set $alpha (f32x4.splat (local.get $factor)))
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        ;; One channel of 4 pixels into i32 lanes (indices of 16 and up give 0).
        (local.set $r (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)))
        (local.set $g (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)))
        (local.set $b (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)))
        (local.set $l
          (i32x4.shr_u
            (i32x4.add
              (i32x4.add
                (i32x4.mul (local.get $r) (i32x4.splat (i32.const 19595)))
                (i32x4.mul (local.get $g) (i32x4.splat (i32.const 38470))))
              (i32x4.add
                (i32x4.mul (local.get $b) (i32x4.splat (i32.const 7471)))
                (i32x4.splat (i32.const 32768))))
            (i32.const 16)))
        (local.set $lf (f32x4.convert_i32x4_s (local.get $l)))
        ;; r0 r1 r2 r3 g0 g1 g2 g3 b0 b1 b2 b3 (b again), then back to r0 g0 b0 r1 g1 b1 ...
        (local.set $v
          (i8x16.swizzle
            (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (call $blend (local.get $r) (local.get $l) (local.get $lf) (local.get $alpha))
                (call $blend (local.get $g) (local.get $l) (local.get $lf) (local.get $alpha)))
              (i16x8.narrow_i32x4_s
                (call $blend (local.get $b) (local.get $l) (local.get $lf) (local.get $alpha))
                (call $blend (local.get $b) (local.get $l) (local.get $lf) (local.get $alpha))))
            (v128.const i8x16 0 4 8 1 5 9 2 6 10 3 7 11 12 13 14 15)))
        ;; 12 bytes: the next group's input starts right after them.
        (v128.store64_lane 0 (local.get $p) (local.get $v))
        (v128.store32_lane offset=8 2 (local.get $p) (local.get $v))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next)))))
