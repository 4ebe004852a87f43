;; Pillow's resize(BILINEAR) passes (Resample.c, 8 bits per channel, 22-bit fixed-point weights)
;; with SIMD, for RandomResizedCrop. Weights are never negative for the triangle filter, so every sum
;; fits an i32 lane: at most 255 * 2^22 + 2^21.
;;   horizontal: for each of `rows` rows and each output pixel x, the sum over its n taps of
;;     src[row][(xmin + i) * 3 + c] * w[x][i], for the 3 channels in one vector (a 4th lane, ignored).
;;   vertical: for each output row y and every byte b of a row, the sum over its n taps of
;;     src[ymin + i][b] * w[y][i], 16 bytes at a time.
;; Then (sum + 2^21) >> 22, clamped to 0..255. bounds: xmin, n per output (i32); weights: `taps` i32
;; per output. Loads and stores may reach up to 15 bytes past a row (overwritten next) or the
;; buffer (slack). Every step is written out: a call per step measured slower.
;; horizontal with `flip` set stores each row mirrored (output x at outWidth - 1 - x): the
;; horizontal flip that follows the crop, for free, as the vertical pass works on whole columns.
;; Built into ../src/resample-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)
  (func (export "horizontal")
    (param $src i32) (param $srcStride i32) (param $rows i32)
    (param $dst i32) (param $outWidth i32)
    (param $bounds i32) (param $weights i32) (param $taps i32) (param $flip i32)
    (local $row i32) (local $x i32) (local $i i32) (local $n i32)
    (local $in i32) (local $w i32) (local $out i32) (local $acc v128) (local $rgb v128)
    (local $rowBytes i32)
    (local.set $rowBytes (i32.mul (local.get $outWidth) (i32.const 3)))
    (block $rowsDone
      (loop $nextRow
        (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $rows)))
        ;; Where output x = 0 of this row goes: its start, or its last pixel when flipping.
        (local.set $out
          (i32.add (i32.add (local.get $dst) (i32.mul (local.get $row) (local.get $rowBytes)))
            (select (i32.sub (local.get $rowBytes) (i32.const 3)) (i32.const 0) (local.get $flip))))
        (local.set $x (i32.const 0))
        (block $xDone
          (loop $nextX
            (br_if $xDone (i32.ge_u (local.get $x) (local.get $outWidth)))
            ;; in = src + row * stride + xmin * 3; w = weights + x * taps * 4
            (local.set $in
              (i32.add
                (i32.add (local.get $src) (i32.mul (local.get $row) (local.get $srcStride)))
                (i32.mul (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $x) (i32.const 3)))) (i32.const 3))))
            (local.set $n (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $x) (i32.const 3)))))
            (local.set $w (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $x) (local.get $taps)) (i32.const 2))))
            (local.set $acc (i32x4.splat (i32.const 2097152)))
            (local.set $i (i32.const 0))
            (block $tapsDone
              (loop $nextTap
                (br_if $tapsDone (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $acc
                  (i32x4.add (local.get $acc)
                    (i32x4.mul
                      (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u (v128.load32_zero (local.get $in))))
                      (i32x4.splat (i32.load (local.get $w))))))
                (local.set $in (i32.add (local.get $in) (i32.const 3)))
                (local.set $w (i32.add (local.get $w) (i32.const 4)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $nextTap)))
            ;; Only the first 3 bytes are stored: the other lanes narrow whatever is at hand.
            (local.set $rgb
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $acc) (i32.const 22)) (local.get $acc))
                (local.get $acc)))
            (if (local.get $flip)
              (then
                ;; Exactly 3 bytes: a 4th would land on the pixel written just before.
                (v128.store16_lane 0 (local.get $out) (local.get $rgb))
                (v128.store8_lane offset=2 2 (local.get $out) (local.get $rgb))
                (local.set $out (i32.sub (local.get $out) (i32.const 3))))
              (else
                (v128.store32_lane 0 (local.get $out) (local.get $rgb))
                (local.set $out (i32.add (local.get $out) (i32.const 3)))))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $nextX)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $nextRow))))
  (func (export "vertical")
    (param $src i32) (param $srcStride i32)
    (param $dst i32) (param $rowBytes i32) (param $outHeight i32)
    (param $bounds i32) (param $weights i32) (param $taps i32)
    (local $y i32) (local $b i32) (local $i i32) (local $n i32) (local $first i32)
    (local $in i32) (local $w i32) (local $weight v128) (local $px v128) (local $lo v128) (local $hi v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (block $rowsDone
      (loop $nextRow
        (br_if $rowsDone (i32.ge_u (local.get $y) (local.get $outHeight)))
        (local.set $first
          (i32.add (local.get $src)
            (i32.mul (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $y) (i32.const 3)))) (local.get $srcStride))))
        (local.set $n (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $y) (i32.const 3)))))
        (local.set $b (i32.const 0))
        (block $bytesDone
          (loop $nextBytes
            (br_if $bytesDone (i32.ge_u (local.get $b) (local.get $rowBytes)))
            ;; 16 bytes a step, in four i32x4 sums.
            (local.set $a0 (i32x4.splat (i32.const 2097152)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $in (i32.add (local.get $first) (local.get $b)))
            (local.set $w (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $y) (local.get $taps)) (i32.const 2))))
            (local.set $i (i32.const 0))
            (block $tapsDone
              (loop $nextTap
                (br_if $tapsDone (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $weight (i32x4.splat (i32.load (local.get $w))))
                (local.set $px (v128.load (local.get $in)))
                (local.set $lo (i16x8.extend_low_i8x16_u (local.get $px)))
                (local.set $hi (i16x8.extend_high_i8x16_u (local.get $px)))
                (local.set $a0 (i32x4.add (local.get $a0) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $lo)) (local.get $weight))))
                (local.set $a1 (i32x4.add (local.get $a1) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $lo)) (local.get $weight))))
                (local.set $a2 (i32x4.add (local.get $a2) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $hi)) (local.get $weight))))
                (local.set $a3 (i32x4.add (local.get $a3) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $hi)) (local.get $weight))))
                (local.set $in (i32.add (local.get $in) (local.get $srcStride)))
                (local.set $w (i32.add (local.get $w) (i32.const 4)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $nextTap)))
            (v128.store
              (i32.add (i32.add (local.get $dst) (i32.mul (local.get $y) (local.get $rowBytes))) (local.get $b))
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a0) (i32.const 22)) (i32x4.shr_s (local.get $a1) (i32.const 22)))
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a2) (i32.const 22)) (i32x4.shr_s (local.get $a3) (i32.const 22)))))
            (local.set $b (i32.add (local.get $b) (i32.const 16)))
            (br $nextBytes)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $nextRow)))))
