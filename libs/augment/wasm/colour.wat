;; ColorJitter and RandomGrayscale as torchvision applies them to PIL images (Pillow's C code), on
;; interleaved RGB uint8 pixels in place, so that a view stays in this module's memory from its
;; first colour op to its last. Pillow's luma is L = (19595 R + 38470 G + 7471 B + 2^15) >> 16;
;; Image.blend is in1 + alpha (in2 - in1) in float32, clipped to 0..255 and truncated.
;;   blend       brightness (pivot 0) and contrast (pivot the mean luma): every byte x becomes
;;               blend(pivot, x), 16 bytes at a time.
;;   luma_sum    the sum of L over the pixels (contrast's mean), 4 pixels at a time, exact count.
;;   saturation  each channel blended with its pixel's L (ImageEnhance.Color), 4 pixels at a time.
;;   grayscale   L into all three channels, 4 pixels at a time.
;;   hue         Pillow's rgb2hsv, the hue byte shifted with uint8 wrap-around, Pillow's hsv2rgb,
;;               a pixel at a time over tables the caller writes once (colour.ts builds them with
;;               Pillow's float32 and double steps):
;;     hue    [which max (0 r, 1 g, 2 b)][distance of the 1st other channel][of the 2nd], u8, at 0
;;     sat    [max - min][max], u8, at 196608
;;     sector [hue], u8 (hsv2rgb's i % 6), at 262144
;;     fs     [hue][sat], f32 (hsv2rgb's f * s), at 262400
;;   What is left per pixel is hsv2rgb's three roundings, in doubles as Pillow's C (halves up).
;; blend, saturation and grayscale may read and write up to 15 bytes past the image: the caller
;; leaves 16 bytes of slack after it.
;; Built into ../src/colour-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)

  ;; trunc(pivot + alpha * (x - pivot)) per f32 lane, saturated to i32; the narrowings after clamp
  ;; to 0..255 (negative sums truncate to 0 or below, which clamps to 0).
  (func $mix (param $x v128) (param $pivot v128) (param $alpha v128) (result v128)
    (i32x4.trunc_sat_f32x4_s
      (f32x4.add (local.get $pivot)
        (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (local.get $x)) (local.get $pivot))))))

  (func (export "blend") (param $data i32) (param $bytes i32) (param $pivot f32) (param $factor f32)
    (local $p i32) (local $end i32) (local $v v128) (local $lo v128) (local $hi v128)
    (local $pv v128) (local $alpha v128)
    (local.set $pv (f32x4.splat (local.get $pivot)))
    (local.set $alpha (f32x4.splat (local.get $factor)))
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (local.get $bytes)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
        (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
        (v128.store (local.get $p)
          (i8x16.narrow_i16x8_u
            (i16x8.narrow_i32x4_s
              (i32x4.trunc_sat_f32x4_s
                (f32x4.add (local.get $pv)
                  (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_u (local.get $lo))) (local.get $pv)))))
              (i32x4.trunc_sat_f32x4_s
                (f32x4.add (local.get $pv)
                  (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_u (local.get $lo))) (local.get $pv))))))
            (i16x8.narrow_i32x4_s
              (i32x4.trunc_sat_f32x4_s
                (f32x4.add (local.get $pv)
                  (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_u (local.get $hi))) (local.get $pv)))))
              (i32x4.trunc_sat_f32x4_s
                (f32x4.add (local.get $pv)
                  (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_u (local.get $hi))) (local.get $pv))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; Channel c of the 4 pixels in the first 12 bytes of v, one per i32 lane.
  (func $red (param $v v128) (result v128)
    (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)))
  (func $green (param $v v128) (result v128)
    (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)))
  (func $blue (param $v v128) (result v128)
    (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)))
  (func $luma (param $r v128) (param $g v128) (param $b v128) (result v128)
    (i32x4.shr_u
      (i32x4.add
        (i32x4.add
          (i32x4.mul (local.get $r) (i32x4.splat (i32.const 19595)))
          (i32x4.mul (local.get $g) (i32x4.splat (i32.const 38470))))
        (i32x4.add
          (i32x4.mul (local.get $b) (i32x4.splat (i32.const 7471)))
          (i32x4.splat (i32.const 32768))))
      (i32.const 16)))
  ;; 12 bytes of v at p: the next group's input starts right after them.
  (func $store12 (param $p i32) (param $v v128)
    (v128.store64_lane 0 (local.get $p) (local.get $v))
    (v128.store32_lane offset=8 2 (local.get $p) (local.get $v)))

  ;; Each lane of the i32x4 sum holds at most pixels / 4 lumas of 255: exact below 33M pixels.
  (func (export "luma_sum") (param $data i32) (param $pixels i32) (result f64)
    (local $p i32) (local $end i32) (local $groups i32) (local $v v128) (local $sum v128)
    (local $tail i32)
    (local.set $p (local.get $data))
    (local.set $end
      (i32.add (local.get $data) (i32.mul (i32.and (local.get $pixels) (i32.const -4)) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $sum
          (i32x4.add (local.get $sum)
            (call $luma (call $red (local.get $v)) (call $green (local.get $v)) (call $blue (local.get $v)))))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next)))
    ;; The last pixels, fewer than 4, one at a time.
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $tailDone
      (loop $nextTail
        (br_if $tailDone (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $tail
          (i32.add (local.get $tail)
            (i32.shr_u
              (i32.add
                (i32.add
                  (i32.mul (i32.load8_u (local.get $p)) (i32.const 19595))
                  (i32.mul (i32.load8_u offset=1 (local.get $p)) (i32.const 38470)))
                (i32.add
                  (i32.mul (i32.load8_u offset=2 (local.get $p)) (i32.const 7471))
                  (i32.const 32768)))
              (i32.const 16))))
        (local.set $p (i32.add (local.get $p) (i32.const 3)))
        (br $nextTail)))
    (f64.add
      (f64.add
        (f64.add
          (f64.convert_i32_u (i32x4.extract_lane 0 (local.get $sum)))
          (f64.convert_i32_u (i32x4.extract_lane 1 (local.get $sum))))
        (f64.add
          (f64.convert_i32_u (i32x4.extract_lane 2 (local.get $sum)))
          (f64.convert_i32_u (i32x4.extract_lane 3 (local.get $sum)))))
      (f64.convert_i32_u (local.get $tail))))

  (func (export "saturation") (param $data i32) (param $pixels i32) (param $factor f32)
    (local $p i32) (local $end i32) (local $v v128) (local $r v128) (local $g v128) (local $b v128)
    (local $l v128) (local $alpha v128)
    (local.set $alpha (f32x4.splat (local.get $factor)))
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $r (call $red (local.get $v)))
        (local.set $g (call $green (local.get $v)))
        (local.set $b (call $blue (local.get $v)))
        (local.set $l (f32x4.convert_i32x4_s (call $luma (local.get $r) (local.get $g) (local.get $b))))
        ;; r0 r1 r2 r3 g0 g1 g2 g3 b0 b1 b2 b3 (b again), then back to r0 g0 b0 r1 g1 b1 ...
        (call $store12 (local.get $p)
          (i8x16.swizzle
            (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (call $mix (local.get $r) (local.get $l) (local.get $alpha))
                (call $mix (local.get $g) (local.get $l) (local.get $alpha)))
              (i16x8.narrow_i32x4_s
                (call $mix (local.get $b) (local.get $l) (local.get $alpha))
                (call $mix (local.get $b) (local.get $l) (local.get $alpha))))
            (v128.const i8x16 0 4 8 1 5 9 2 6 10 3 7 11 12 13 14 15)))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next))))

  (func (export "grayscale") (param $data i32) (param $pixels i32)
    (local $p i32) (local $end i32) (local $v v128) (local $l v128)
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $l
          (i8x16.narrow_i16x8_u
            (i16x8.narrow_i32x4_s
              (call $luma (call $red (local.get $v)) (call $green (local.get $v)) (call $blue (local.get $v)))
              (v128.const i32x4 0 0 0 0))
            (v128.const i32x4 0 0 0 0)))
        (call $store12 (local.get $p)
          (i8x16.swizzle (local.get $l) (v128.const i8x16 0 0 0 1 1 1 2 2 2 3 3 3 4 4 4 4)))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next))))

  ;; floor(v x / 255 + 0.5), with x / 255 as a product by 1 / 255: equal over every v, s and f * s
  ;; that can occur (checked exhaustively, 33.6M cases), and a division costs several products.
  (func $round (param $v f64) (param $x f64) (result i32)
    (i32.trunc_f64_s
      (f64.floor (f64.add (f64.mul (f64.mul (local.get $v) (local.get $x)) (f64.const 0.00392156862745098)) (f64.const 0.5)))))
  (func (export "hue") (param $data i32) (param $pixels i32) (param $shift i32)
    (local $p i32) (local $end i32) (local $r i32) (local $g i32) (local $b i32)
    (local $maxc i32) (local $minc i32) (local $index i32) (local $us i32) (local $h i32)
    (local $fs f64) (local $v f64) (local $pp i32) (local $q i32) (local $t i32)
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $r (i32.load8_u (local.get $p)))
        (local.set $g (i32.load8_u offset=1 (local.get $p)))
        (local.set $b (i32.load8_u offset=2 (local.get $p)))
        (if (i32.and (i32.ge_u (local.get $r) (local.get $g)) (i32.ge_u (local.get $r) (local.get $b)))
          (then
            (local.set $maxc (local.get $r))
            (local.set $index (i32.or (i32.shl (i32.sub (local.get $r) (local.get $g)) (i32.const 8)) (i32.sub (local.get $r) (local.get $b)))))
          (else
            (if (i32.ge_u (local.get $g) (local.get $b))
              (then
                (local.set $maxc (local.get $g))
                (local.set $index
                  (i32.or (i32.const 65536)
                    (i32.or (i32.shl (i32.sub (local.get $g) (local.get $r)) (i32.const 8)) (i32.sub (local.get $g) (local.get $b))))))
              (else
                (local.set $maxc (local.get $b))
                (local.set $index
                  (i32.or (i32.const 131072)
                    (i32.or (i32.shl (i32.sub (local.get $b) (local.get $r)) (i32.const 8)) (i32.sub (local.get $b) (local.get $g)))))))))
        (local.set $minc
          (select (local.get $r) (local.get $g) (i32.lt_u (local.get $r) (local.get $g))))
        (local.set $minc
          (select (local.get $minc) (local.get $b) (i32.lt_u (local.get $minc) (local.get $b))))
        ;; Grey pixels keep their value whatever the shift.
        (if (i32.ne (local.get $maxc) (local.get $minc))
          (then
            (local.set $us
              (i32.load8_u offset=196608
                (i32.or (i32.shl (i32.sub (local.get $maxc) (local.get $minc)) (i32.const 8)) (local.get $maxc))))
            (if (i32.eqz (local.get $us))
              (then
                (i32.store8 (local.get $p) (local.get $maxc))
                (i32.store8 offset=1 (local.get $p) (local.get $maxc))
                (i32.store8 offset=2 (local.get $p) (local.get $maxc)))
              (else
                (local.set $h
                  (i32.and (i32.add (i32.load8_u (local.get $index)) (local.get $shift)) (i32.const 255)))
                (local.set $fs
                  (f64.promote_f32
                    (f32.load offset=262400
                      (i32.shl (i32.or (i32.shl (local.get $h) (i32.const 8)) (local.get $us)) (i32.const 2)))))
                (local.set $v (f64.convert_i32_u (local.get $maxc)))
                (local.set $pp (call $round (local.get $v) (f64.sub (f64.const 255) (f64.convert_i32_u (local.get $us)))))
                (local.set $q (call $round (local.get $v) (f64.sub (f64.const 255) (local.get $fs))))
                (local.set $t
                  (call $round (local.get $v)
                    (f64.add (f64.sub (f64.const 255) (f64.convert_i32_u (local.get $us))) (local.get $fs))))
                ;; (r, g, b) by sector: v t p | q v p | p v t | p q v | t p v | v p q
                (block $written
                  (block $s5
                    (block $s4
                      (block $s3
                        (block $s2
                          (block $s1
                            (block $s0
                              (br_table $s0 $s1 $s2 $s3 $s4 $s5 (i32.load8_u offset=262144 (local.get $h))))
                            (i32.store8 (local.get $p) (local.get $maxc))
                            (i32.store8 offset=1 (local.get $p) (local.get $t))
                            (i32.store8 offset=2 (local.get $p) (local.get $pp))
                            (br $written))
                          (i32.store8 (local.get $p) (local.get $q))
                          (i32.store8 offset=1 (local.get $p) (local.get $maxc))
                          (i32.store8 offset=2 (local.get $p) (local.get $pp))
                          (br $written))
                        (i32.store8 (local.get $p) (local.get $pp))
                        (i32.store8 offset=1 (local.get $p) (local.get $maxc))
                        (i32.store8 offset=2 (local.get $p) (local.get $t))
                        (br $written))
                      (i32.store8 (local.get $p) (local.get $pp))
                      (i32.store8 offset=1 (local.get $p) (local.get $q))
                      (i32.store8 offset=2 (local.get $p) (local.get $maxc))
                      (br $written))
                    (i32.store8 (local.get $p) (local.get $t))
                    (i32.store8 offset=1 (local.get $p) (local.get $pp))
                    (i32.store8 offset=2 (local.get $p) (local.get $maxc))
                    (br $written))
                  (i32.store8 (local.get $p) (local.get $maxc))
                  (i32.store8 offset=1 (local.get $p) (local.get $pp))
                  (i32.store8 offset=2 (local.get $p) (local.get $q)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 3)))
        (br $next)))))
