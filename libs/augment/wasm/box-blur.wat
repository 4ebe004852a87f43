;; One pass of Pillow's extended box blur (BoxBlur.c, ImagingLineBoxBlur32) for the integer radii 0
;; and 1, which cover every sigma below 2.45 (MoCo v2 draws 0.1-2), 16 bytes at a time with SIMD.
;; For each byte p of [start, end):
;;   radius 0: dst[p] = (src[p] * ww + (src[p - o] + src[p + o]) * fw + 2^23) >> 24
;;   radius 1: dst[p] = ((src[p - o] + src[p] + src[p + o]) * ww + (src[p - 2o] + src[p + 2o]) * fw + 2^23) >> 24
;; in uint32 lanes, which never wrap: the weights sum to 2^24, so the sum stays under 255 * 2^24 +
;; 2^23. `o` is the tap step: 3 bytes along a row of RGB pixels, a row's bytes along a column. The
;; caller pads the image so that every tap is inside it, and leaves 16 bytes of slack after `end`.
;; Built into ../src/box-blur-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)
  ;; 16 bytes a step, every weighing written out (a call per step measured slower):
  ;; (sum * ww + far * fw + 2^23) >> 24 in u32 lanes, narrowed back to bytes.
  (func (export "pass") (param $src i32) (param $dst i32) (param $start i32) (param $end i32)
    (param $o i32) (param $radius i32) (param $ww i32) (param $fw i32)
    (local $p i32) (local $s i32) (local $o2 i32) (local $w v128) (local $f v128) (local $half v128)
    (local $centre v128) (local $before v128) (local $after v128) (local $before2 v128) (local $after2 v128)
    (local.set $w (i32x4.splat (local.get $ww)))
    (local.set $f (i32x4.splat (local.get $fw)))
    (local.set $half (i32x4.splat (i32.const 8388608)))
    (local.set $o2 (i32.shl (local.get $o) (i32.const 1)))
    (local.set $p (local.get $start))
    (if (i32.eqz (local.get $radius))
      (then
    (block $radius0Done
      (loop $radius0
        (br_if $radius0Done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $s (i32.add (local.get $src) (local.get $p)))
        (local.set $centre (v128.load (local.get $s)))
        (local.set $before (v128.load (i32.sub (local.get $s) (local.get $o))))
        (local.set $after (v128.load (i32.add (local.get $s) (local.get $o))))
        (v128.store (i32.add (local.get $dst) (local.get $p))
          (i8x16.narrow_i16x8_u
          (i16x8.narrow_i32x4_u
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u (local.get $centre))) (local.get $w))
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before)) (i16x8.extend_low_i8x16_u (local.get $after)))) (local.get $f)))
                (local.get $half))
              (i32.const 24))
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.extend_low_i8x16_u (local.get $centre))) (local.get $w))
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before)) (i16x8.extend_low_i8x16_u (local.get $after)))) (local.get $f)))
                (local.get $half))
              (i32.const 24)))
          (i16x8.narrow_i32x4_u
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.extend_high_i8x16_u (local.get $centre))) (local.get $w))
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before)) (i16x8.extend_high_i8x16_u (local.get $after)))) (local.get $f)))
                (local.get $half))
              (i32.const 24))
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.extend_high_i8x16_u (local.get $centre))) (local.get $w))
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before)) (i16x8.extend_high_i8x16_u (local.get $after)))) (local.get $f)))
                (local.get $half))
              (i32.const 24)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $radius0))))
      (else
    (block $radius1Done
      (loop $radius1
        (br_if $radius1Done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $s (i32.add (local.get $src) (local.get $p)))
        (local.set $centre (v128.load (local.get $s)))
        (local.set $before (v128.load (i32.sub (local.get $s) (local.get $o))))
        (local.set $after (v128.load (i32.add (local.get $s) (local.get $o))))
        (local.set $before2 (v128.load (i32.sub (local.get $s) (local.get $o2))))
        (local.set $after2 (v128.load (i32.add (local.get $s) (local.get $o2))))
        (v128.store (i32.add (local.get $dst) (local.get $p))
          (i8x16.narrow_i16x8_u
          (i16x8.narrow_i32x4_u
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $centre)) (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before)) (i16x8.extend_low_i8x16_u (local.get $after))))) (local.get $w))
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before2)) (i16x8.extend_low_i8x16_u (local.get $after2)))) (local.get $f)))
                (local.get $half))
              (i32.const 24))
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $centre)) (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before)) (i16x8.extend_low_i8x16_u (local.get $after))))) (local.get $w))
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_low_i8x16_u (local.get $before2)) (i16x8.extend_low_i8x16_u (local.get $after2)))) (local.get $f)))
                (local.get $half))
              (i32.const 24)))
          (i16x8.narrow_i32x4_u
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $centre)) (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before)) (i16x8.extend_high_i8x16_u (local.get $after))))) (local.get $w))
                  (i32x4.mul (i32x4.extend_low_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before2)) (i16x8.extend_high_i8x16_u (local.get $after2)))) (local.get $f)))
                (local.get $half))
              (i32.const 24))
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $centre)) (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before)) (i16x8.extend_high_i8x16_u (local.get $after))))) (local.get $w))
                  (i32x4.mul (i32x4.extend_high_i16x8_u (i16x8.add (i16x8.extend_high_i8x16_u (local.get $before2)) (i16x8.extend_high_i8x16_u (local.get $after2)))) (local.get $f)))
                (local.get $half))
              (i32.const 24)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $radius1)))))))
