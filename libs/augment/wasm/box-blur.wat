;; One pass of Pillow's extended box blur (BoxBlur.c, ImagingLineBoxBlur32) for the integer radii 0
;; and 1, which cover every sigma below 2.45 (MoCo v2 draws 0.1-2), 8 bytes at a time with SIMD.
;; For each byte p of [start, end):
;;   radius 0: dst[p] = (src[p] * ww + (src[p - o] + src[p + o]) * fw + 2^23) >> 24
;;   radius 1: dst[p] = ((src[p - o] + src[p] + src[p + o]) * ww + (src[p - 2o] + src[p + 2o]) * fw + 2^23) >> 24
;; in uint32 lanes, which never wrap: the weights sum to 2^24, so the sum stays under 255 * 2^24 +
;; 2^23. `o` is the tap step: 3 bytes along a row of RGB pixels, a row's bytes along a column. The
;; caller pads the image so that every tap is inside it, and leaves 8 bytes of slack after `end`.
;; Built into ../src/box-blur-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)
  (func $weigh (param $sum v128) (param $far v128) (param $ww v128) (param $fw v128) (result v128)
    (local $half v128)
    (local.set $half (i32x4.splat (i32.const 8388608)))
    (i8x16.narrow_i16x8_u
      (i16x8.narrow_i32x4_u
        (i32x4.shr_u
          (i32x4.add
            (i32x4.add
              (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $sum)) (local.get $ww))
              (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $far)) (local.get $fw)))
            (local.get $half))
          (i32.const 24))
        (i32x4.shr_u
          (i32x4.add
            (i32x4.add
              (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $sum)) (local.get $ww))
              (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $far)) (local.get $fw)))
            (local.get $half))
          (i32.const 24)))
      (v128.const i32x4 0 0 0 0)))
  (func (export "pass") (param $src i32) (param $dst i32) (param $start i32) (param $end i32)
    (param $o i32) (param $radius i32) (param $ww i32) (param $fw i32)
    (local $p i32) (local $s i32) (local $o2 i32) (local $w v128) (local $f v128)
    (local $centre v128) (local $near v128) (local $far v128)
    (local.set $w (i32x4.splat (local.get $ww)))
    (local.set $f (i32x4.splat (local.get $fw)))
    (local.set $o2 (i32.shl (local.get $o) (i32.const 1)))
    (local.set $p (local.get $start))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $s (i32.add (local.get $src) (local.get $p)))
        (local.set $centre (v128.load8x8_u (local.get $s)))
        (local.set $near
          (i16x8.add
            (v128.load8x8_u (i32.sub (local.get $s) (local.get $o)))
            (v128.load8x8_u (i32.add (local.get $s) (local.get $o)))))
        (if (i32.eqz (local.get $radius))
          (then
            (v128.store64_lane 0 (i32.add (local.get $dst) (local.get $p))
              (call $weigh (local.get $centre) (local.get $near) (local.get $w) (local.get $f))))
          (else
            (local.set $far
              (i16x8.add
                (v128.load8x8_u (i32.sub (local.get $s) (local.get $o2)))
                (v128.load8x8_u (i32.add (local.get $s) (local.get $o2)))))
            (v128.store64_lane 0 (i32.add (local.get $dst) (local.get $p))
              (call $weigh (i16x8.add (local.get $centre) (local.get $near)) (local.get $far) (local.get $w) (local.get $f)))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $next)))))
