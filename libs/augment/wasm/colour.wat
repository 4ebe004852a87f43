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
;;               4 pixels at a time over tables the caller writes once (colour.ts builds them with
;;               Pillow's float32 and double steps):
;;     hue    [which max (0 r, 1 g, 2 b)][distance of the 1st other channel][of the 2nd], u8, at 0
;;     sat    [max - min][max], u8, at 196608
;;     fs     [hue][sat], f32 (hsv2rgb's f * s), at 262400
;;   What is left per pixel is hsv2rgb's three roundings, in doubles as Pillow's C (halves up).
;; blend, saturation, grayscale and hue may read and write up to 15 bytes past the image: the caller
;; leaves 16 bytes of slack after it.
;; Built into ../src/colour-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)

  ;; Each blend is trunc(pivot + alpha * (x - pivot)) in f32 lanes, saturated to i32; the narrowings
  ;; after clamp to 0..255 (negative sums truncate to 0 or below, which clamps to 0).
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
              (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $pv) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_u (local.get $lo))) (local.get $pv)))))
              (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $pv) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_u (local.get $lo))) (local.get $pv))))))
            (i16x8.narrow_i32x4_s
              (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $pv) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_u (local.get $hi))) (local.get $pv)))))
              (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $pv) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_u (local.get $hi))) (local.get $pv))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; (Every step is written out: V8 does not inline calls, and a call per step measured slower.)

  ;; Each lane of the i32x4 sum holds at most pixels / 4 lumas of 255: exact below 33M pixels.
  (func (export "luma_sum") (param $data i32) (param $pixels i32) (result f64)
    (local $p i32) (local $end i32) (local $v v128) (local $sum v128)
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
            (i32x4.shr_u
              (i32x4.add
                (i32x4.add (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)) (i32x4.splat (i32.const 19595))) (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)) (i32x4.splat (i32.const 38470))))
                (i32x4.add (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)) (i32x4.splat (i32.const 7471))) (i32x4.splat (i32.const 32768))))
              (i32.const 16))))
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
        (local.set $r (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)))
        (local.set $g (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)))
        (local.set $b (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)))
        (local.set $l (f32x4.convert_i32x4_s (i32x4.shr_u
              (i32x4.add
                (i32x4.add (i32x4.mul (local.get $r) (i32x4.splat (i32.const 19595))) (i32x4.mul (local.get $g) (i32x4.splat (i32.const 38470))))
                (i32x4.add (i32x4.mul (local.get $b) (i32x4.splat (i32.const 7471))) (i32x4.splat (i32.const 32768))))
              (i32.const 16))))
        ;; r0 r1 r2 r3 g0 g1 g2 g3 b0 b1 b2 b3 (b again), then back to r0 g0 b0 r1 g1 b1 ...
        (local.set $v
          (i8x16.swizzle
            (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $l) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (local.get $r)) (local.get $l)))))
                (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $l) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (local.get $g)) (local.get $l))))))
              (i16x8.narrow_i32x4_s
                (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $l) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (local.get $b)) (local.get $l)))))
                (i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $l) (f32x4.mul (local.get $alpha) (f32x4.sub (f32x4.convert_i32x4_s (local.get $b)) (local.get $l)))))))
            (v128.const i8x16 0 4 8 1 5 9 2 6 10 3 7 11 12 13 14 15)))
        ;; 12 bytes: the next group's input starts right after them.
        (v128.store64_lane 0 (local.get $p) (local.get $v))
        (v128.store32_lane offset=8 2 (local.get $p) (local.get $v))
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
              (i32x4.shr_u
              (i32x4.add
                (i32x4.add (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)) (i32x4.splat (i32.const 19595))) (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)) (i32x4.splat (i32.const 38470))))
                (i32x4.add (i32x4.mul (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)) (i32x4.splat (i32.const 7471))) (i32x4.splat (i32.const 32768))))
              (i32.const 16))
              (v128.const i32x4 0 0 0 0))
            (v128.const i32x4 0 0 0 0)))
        (local.set $v
          (i8x16.swizzle (local.get $l) (v128.const i8x16 0 0 0 1 1 1 2 2 2 3 3 3 4 4 4 4)))
        ;; 12 bytes: the next group's input starts right after them.
        (v128.store64_lane 0 (local.get $p) (local.get $v))
        (v128.store32_lane offset=8 2 (local.get $p) (local.get $v))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next))))

  ;; floor(v x / 255 + 0.5), with x / 255 as a product by 1 / 255: equal over every v, s and f * s
  ;; that can occur (checked exhaustively, 33.6M cases), and a division costs several products.
  ;; 4 pixels at a time: the branches of the scalar code (which channel is largest, grey, zero
  ;; saturation, hsv2rgb's sector) become lane masks, the table reads one lane at a time, and
  ;; hsv2rgb's roundings run in f64x2, two pixels a vector, as the doubles of Pillow's C (each
  ;; floored value plus 2^52 holds the integer in its low 32 bits, cheaper than a conversion). A grey
  ;; pixel reads saturation 0 (sat[0][v] is 0) and so keeps its (v, v, v).
  (func (export "hue") (param $data i32) (param $pixels i32) (param $shift i32)
    (local $p i32) (local $end i32) (local $v v128) (local $r v128) (local $g v128) (local $b v128)
    (local $maxc v128) (local $isR v128) (local $isB v128) (local $index v128) (local $satIndex v128)
    (local $hueByte v128) (local $us v128) (local $h v128) (local $fsIndex v128) (local $fs v128)
    (local $sector v128) (local $vd v128) (local $usd v128) (local $fsd v128) (local $a v128)
    (local $qLo v128) (local $tLo v128) (local $pp v128) (local $q v128) (local $t v128)
    (local $vpqt v128) (local $pick v128)
    (local.set $p (local.get $data))
    (local.set $end (i32.add (local.get $data) (i32.mul (local.get $pixels) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $r (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 16 16 3 16 16 16 6 16 16 16 9 16 16 16)))
        (local.set $g (i8x16.swizzle (local.get $v) (v128.const i8x16 1 16 16 16 4 16 16 16 7 16 16 16 10 16 16 16)))
        (local.set $b (i8x16.swizzle (local.get $v) (v128.const i8x16 2 16 16 16 5 16 16 16 8 16 16 16 11 16 16 16)))
        ;; Largest channel as the scalar code picks it: red if r >= g and r >= b, else green if
        ;; g >= b, else blue; the hue table's index is which << 16 | da << 8 | db, the two others'
        ;; distances below the max in channel order.
        ;; (Channels are below 256: signed compares, which SSE has, do.)
        (local.set $isR (v128.not (v128.or (i32x4.gt_s (local.get $g) (local.get $r)) (i32x4.gt_s (local.get $b) (local.get $r)))))
        (local.set $isB (v128.andnot (i32x4.gt_s (local.get $b) (local.get $g)) (local.get $isR)))
        (local.set $maxc (i32x4.max_s (local.get $r) (i32x4.max_s (local.get $g) (local.get $b))))
        (local.set $index
          (v128.or
            (v128.andnot
              (v128.bitselect (i32x4.splat (i32.const 131072)) (i32x4.splat (i32.const 65536)) (local.get $isB))
              (local.get $isR))
            (v128.or
              (i32x4.shl
                (i32x4.sub (local.get $maxc) (v128.bitselect (local.get $g) (local.get $r) (local.get $isR)))
                (i32.const 8))
              (i32x4.sub (local.get $maxc) (v128.bitselect (local.get $g) (local.get $b) (local.get $isB))))))
        (local.set $satIndex
          (v128.or
            (i32x4.shl
              (i32x4.sub (local.get $maxc) (i32x4.min_s (local.get $r) (i32x4.min_s (local.get $g) (local.get $b))))
              (i32.const 8))
            (local.get $maxc)))
        (local.set $hueByte (i32x4.replace_lane 0 (local.get $hueByte) (i32.load8_u (i32x4.extract_lane 0 (local.get $index)))))
        (local.set $hueByte (i32x4.replace_lane 1 (local.get $hueByte) (i32.load8_u (i32x4.extract_lane 1 (local.get $index)))))
        (local.set $hueByte (i32x4.replace_lane 2 (local.get $hueByte) (i32.load8_u (i32x4.extract_lane 2 (local.get $index)))))
        (local.set $hueByte (i32x4.replace_lane 3 (local.get $hueByte) (i32.load8_u (i32x4.extract_lane 3 (local.get $index)))))
        (local.set $us (i32x4.replace_lane 0 (local.get $us) (i32.load8_u offset=196608 (i32x4.extract_lane 0 (local.get $satIndex)))))
        (local.set $us (i32x4.replace_lane 1 (local.get $us) (i32.load8_u offset=196608 (i32x4.extract_lane 1 (local.get $satIndex)))))
        (local.set $us (i32x4.replace_lane 2 (local.get $us) (i32.load8_u offset=196608 (i32x4.extract_lane 2 (local.get $satIndex)))))
        (local.set $us (i32x4.replace_lane 3 (local.get $us) (i32.load8_u offset=196608 (i32x4.extract_lane 3 (local.get $satIndex)))))
        ;; numpy's uint8 addition wraps around.
        (local.set $h
          (v128.and (i32x4.add (local.get $hueByte) (i32x4.splat (local.get $shift))) (i32x4.splat (i32.const 255))))

        (local.set $fsIndex (i32x4.shl (v128.or (i32x4.shl (local.get $h) (i32.const 8)) (local.get $us)) (i32.const 2)))
        (local.set $fs (f32x4.replace_lane 0 (local.get $fs) (f32.load offset=262400 (i32x4.extract_lane 0 (local.get $fsIndex)))))
        (local.set $fs (f32x4.replace_lane 1 (local.get $fs) (f32.load offset=262400 (i32x4.extract_lane 1 (local.get $fsIndex)))))
        (local.set $fs (f32x4.replace_lane 2 (local.get $fs) (f32.load offset=262400 (i32x4.extract_lane 2 (local.get $fsIndex)))))
        (local.set $fs (f32x4.replace_lane 3 (local.get $fs) (f32.load offset=262400 (i32x4.extract_lane 3 (local.get $fsIndex)))))
        ;; hsv2rgb's sector floor(h * 6 / 255) % 6: the count of the thresholds ceil(255 k / 6) that h
        ;; reaches (each compare is -1 where true), and 0 again at h = 255.
        (local.set $sector
          (v128.andnot
            (i32x4.neg
              (i32x4.add
                (i32x4.add
                  (i32x4.gt_s (local.get $h) (i32x4.splat (i32.const 42)))
                  (i32x4.gt_s (local.get $h) (i32x4.splat (i32.const 84))))
                (i32x4.add
                  (i32x4.add
                    (i32x4.gt_s (local.get $h) (i32x4.splat (i32.const 127)))
                    (i32x4.gt_s (local.get $h) (i32x4.splat (i32.const 169))))
                  (i32x4.gt_s (local.get $h) (i32x4.splat (i32.const 212))))))
            (i32x4.eq (local.get $h) (i32x4.splat (i32.const 255)))))
        ;; hsv2rgb's q and t of the low two pixels, in doubles.
        (local.set $vd (f64x2.convert_low_i32x4_s (local.get $maxc)))
        (local.set $usd (f64x2.convert_low_i32x4_s (local.get $us)))
        (local.set $fsd (f64x2.promote_low_f32x4 (local.get $fs)))
        (local.set $a (f64x2.sub (f64x2.splat (f64.const 255)) (local.get $usd)))
        (local.set $qLo (f64x2.add (f64x2.floor (f64x2.add (f64x2.mul (f64x2.mul (local.get $vd) (f64x2.sub (f64x2.splat (f64.const 255)) (local.get $fsd))) (f64x2.splat (f64.const 0.00392156862745098))) (f64x2.splat (f64.const 0.5)))) (f64x2.splat (f64.const 0x1p52))))
        (local.set $tLo (f64x2.add (f64x2.floor (f64x2.add (f64x2.mul (f64x2.mul (local.get $vd) (f64x2.add (local.get $a) (local.get $fsd))) (f64x2.splat (f64.const 0.00392156862745098))) (f64x2.splat (f64.const 0.5)))) (f64x2.splat (f64.const 0x1p52))))
        ;; hsv2rgb's q and t of the high two pixels, in doubles.
        (local.set $vd (f64x2.convert_low_i32x4_s (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $maxc) (local.get $maxc))))
        (local.set $usd (f64x2.convert_low_i32x4_s (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $us) (local.get $us))))
        (local.set $fsd (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $fs) (local.get $fs))))
        (local.set $a (f64x2.sub (f64x2.splat (f64.const 255)) (local.get $usd)))
        (local.set $q
          (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $qLo)
            (f64x2.add (f64x2.floor (f64x2.add (f64x2.mul (f64x2.mul (local.get $vd) (f64x2.sub (f64x2.splat (f64.const 255)) (local.get $fsd))) (f64x2.splat (f64.const 0.00392156862745098))) (f64x2.splat (f64.const 0.5)))) (f64x2.splat (f64.const 0x1p52)))))
        (local.set $t
          (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $tLo)
            (f64x2.add (f64x2.floor (f64x2.add (f64x2.mul (f64x2.mul (local.get $vd) (f64x2.add (local.get $a) (local.get $fsd))) (f64x2.splat (f64.const 0.00392156862745098))) (f64x2.splat (f64.const 0.5)))) (f64x2.splat (f64.const 0x1p52)))))
        ;; p = round(v (255 - s) / 255) from integers: with N = v (255 - s), Pillow's double rounding is
        ;; floor((N + 127) / 255) (N / 255 is never a half), and that division is a product by
        ;; 32897 and a shift right by 23 for every N + 127 below 2^16 (both checked for every v, s).
        (local.set $pp
          (i32x4.shr_u
            (i32x4.mul
              (i32x4.add
                (i32x4.mul (local.get $maxc) (i32x4.sub (i32x4.splat (i32.const 255)) (local.get $us)))
                (i32x4.splat (i32.const 127)))
              (i32x4.splat (i32.const 32897)))
            (i32.const 23)))
        ;; (r, g, b) by sector: v t p | q v p | p v t | p q v | t p v | v p q, and (v, v, v) at
        ;; saturation byte 0 (grey pixels included). Each pixel's v, p, q, t go into the 4 bytes of
        ;; its lane; each output byte then picks one of them by a swizzle whose indices come from
        ;; tables indexed by sector + 6 x channel (0 v, 1 p, 2 q, 3 t; 16 and 17 from the second).
        (local.set $vpqt
          (v128.or
            (v128.or (local.get $maxc) (i32x4.shl (local.get $pp) (i32.const 8)))
            (v128.or (i32x4.shl (local.get $q) (i32.const 16)) (i32x4.shl (local.get $t) (i32.const 24)))))
        (local.set $pick
          (i8x16.add
            (i8x16.swizzle (local.get $sector) (v128.const i8x16 0 0 0 4 4 4 8 8 8 12 12 12 12 12 12 12))
            (v128.const i8x16 0 6 12 0 6 12 0 6 12 0 6 12 0 0 0 0)))
        (local.set $pick
          (v128.or
            (i8x16.swizzle (v128.const i8x16 0 2 1 1 3 0 3 0 0 2 1 1 1 1 3 0) (local.get $pick))
            (i8x16.swizzle (v128.const i8x16 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
              (i8x16.sub (local.get $pick) (i8x16.splat (i32.const 16))))))
        (local.set $pick
          (v128.andnot (local.get $pick)
            (i8x16.swizzle (i32x4.eq (local.get $us) (i32x4.splat (i32.const 0)))
              (v128.const i8x16 0 0 0 4 4 4 8 8 8 12 12 12 12 12 12 12))))
        (local.set $v
          (i8x16.swizzle (local.get $vpqt)
            (i8x16.add (local.get $pick) (v128.const i8x16 0 0 0 4 4 4 8 8 8 12 12 12 12 12 12 12))))
        (v128.store64_lane 0 (local.get $p) (local.get $v))
        (v128.store32_lane offset=8 2 (local.get $p) (local.get $v))
        (local.set $p (i32.add (local.get $p) (i32.const 12)))
        (br $next)))))

