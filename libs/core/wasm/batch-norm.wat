;; Split-batch BatchNorm's passes over tfjs-backend-wasm's own heap (its memory, imported), 4
;; channels at a time with SIMD. Tensors are rows x c float32, c a multiple of 4; pointers are byte
;; offsets; per-channel vectors are c float32 (f32) or c float64 (the sums). The caller
;; (../src/wasm-batchnorm.ts) turns the sums into the per-channel vectors between the passes.
;; Built into ../src/batch-norm-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's
;; wabt), once with this shared memory (the threaded build's) and once with an unshared one.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; out[k] = sum over rows of a[., k], out[c + k] = sum of a[., k] b[., k], in float64 (a float32
  ;; product is exact there). With b = a: the sums and the sums of squares. Channels go 16 at a time
  ;; while they can (a row's 64 bytes: each cache line is read once), then 4 at a time.
  (func (export "sums") (param $a i32) (param $b i32) (param $rows i32) (param $c i32) (param $out i32)
    (local $k i32)
    (local.set $k (i32.const 0))
    (block $wideDone
      (loop $wide
        (br_if $wideDone (i32.gt_u (i32.add (local.get $k) (i32.const 16)) (local.get $c)))
        (call $sums16 (local.get $a) (local.get $b) (local.get $rows) (local.get $c) (local.get $out) (local.get $k))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $wide)))
    (block $narrowDone
      (loop $narrow
        (br_if $narrowDone (i32.ge_u (local.get $k) (local.get $c)))
        (call $sums4 (local.get $a) (local.get $b) (local.get $rows) (local.get $c) (local.get $out) (local.get $k))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $narrow))))
  ;; The sums of channels k .. k + 15, kept in 16 float64 pairs over the rows. The shuffle moves a
  ;; vector's upper two float32 lanes down, for f64x2.promote_low_f32x4.
  (func $sums16 (param $a i32) (param $b i32) (param $rows i32) (param $c i32) (param $out i32) (param $k i32)
    (local $stride i32) (local $p i32) (local $q i32) (local $end i32) (local $v v128) (local $w v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $s4 v128) (local $s5 v128) (local $s6 v128) (local $s7 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128) (local $t4 v128) (local $t5 v128) (local $t6 v128) (local $t7 v128)
    (local.set $stride (i32.shl (local.get $c) (i32.const 2)))
    (local.set $p (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $q (i32.add (local.get $b) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $end (i32.add (local.get $p) (i32.mul (local.get $rows) (local.get $stride))))
    (block $done
      (loop $rowLoop
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $w (v128.load (local.get $q)))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t0 (f64x2.add (local.get $t0)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (local.set $w (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w)))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t1 (f64x2.add (local.get $t1)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (v128.load offset=16 (local.get $p)))
        (local.set $w (v128.load offset=16 (local.get $q)))
        (local.set $s2 (f64x2.add (local.get $s2) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t2 (f64x2.add (local.get $t2)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (local.set $w (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w)))
        (local.set $s3 (f64x2.add (local.get $s3) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t3 (f64x2.add (local.get $t3)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (v128.load offset=32 (local.get $p)))
        (local.set $w (v128.load offset=32 (local.get $q)))
        (local.set $s4 (f64x2.add (local.get $s4) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t4 (f64x2.add (local.get $t4)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (local.set $w (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w)))
        (local.set $s5 (f64x2.add (local.get $s5) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t5 (f64x2.add (local.get $t5)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (v128.load offset=48 (local.get $p)))
        (local.set $w (v128.load offset=48 (local.get $q)))
        (local.set $s6 (f64x2.add (local.get $s6) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t6 (f64x2.add (local.get $t6)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (local.set $w (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w)))
        (local.set $s7 (f64x2.add (local.get $s7) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t7 (f64x2.add (local.get $t7)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $q (i32.add (local.get $q) (local.get $stride)))
        (br $rowLoop)))
    (local.set $p (i32.add (local.get $out) (i32.shl (local.get $k) (i32.const 3))))
    (local.set $q (i32.add (local.get $out) (i32.shl (i32.add (local.get $c) (local.get $k)) (i32.const 3))))
    (v128.store (local.get $p) (local.get $s0))
    (v128.store offset=16 (local.get $p) (local.get $s1))
    (v128.store offset=32 (local.get $p) (local.get $s2))
    (v128.store offset=48 (local.get $p) (local.get $s3))
    (v128.store offset=64 (local.get $p) (local.get $s4))
    (v128.store offset=80 (local.get $p) (local.get $s5))
    (v128.store offset=96 (local.get $p) (local.get $s6))
    (v128.store offset=112 (local.get $p) (local.get $s7))
    (v128.store (local.get $q) (local.get $t0))
    (v128.store offset=16 (local.get $q) (local.get $t1))
    (v128.store offset=32 (local.get $q) (local.get $t2))
    (v128.store offset=48 (local.get $q) (local.get $t3))
    (v128.store offset=64 (local.get $q) (local.get $t4))
    (v128.store offset=80 (local.get $q) (local.get $t5))
    (v128.store offset=96 (local.get $q) (local.get $t6))
    (v128.store offset=112 (local.get $q) (local.get $t7)))

  ;; The sums of channels k .. k + 3, kept in 4 float64 pairs over the rows. The shuffle moves a
  ;; vector's upper two float32 lanes down, for f64x2.promote_low_f32x4.
  (func $sums4 (param $a i32) (param $b i32) (param $rows i32) (param $c i32) (param $out i32) (param $k i32)
    (local $stride i32) (local $p i32) (local $q i32) (local $end i32) (local $v v128) (local $w v128)
    (local $s0 v128) (local $s1 v128)
    (local $t0 v128) (local $t1 v128)
    (local.set $stride (i32.shl (local.get $c) (i32.const 2)))
    (local.set $p (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $q (i32.add (local.get $b) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $end (i32.add (local.get $p) (i32.mul (local.get $rows) (local.get $stride))))
    (block $done
      (loop $rowLoop
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $w (v128.load (local.get $q)))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t0 (f64x2.add (local.get $t0)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (local.set $w (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w)))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $t1 (f64x2.add (local.get $t1)
          (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w)))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $q (i32.add (local.get $q) (local.get $stride)))
        (br $rowLoop)))
    (local.set $p (i32.add (local.get $out) (i32.shl (local.get $k) (i32.const 3))))
    (local.set $q (i32.add (local.get $out) (i32.shl (i32.add (local.get $c) (local.get $k)) (i32.const 3))))
    (v128.store (local.get $p) (local.get $s0))
    (v128.store offset=16 (local.get $p) (local.get $s1))
    (v128.store (local.get $q) (local.get $t0))
    (v128.store offset=16 (local.get $q) (local.get $t1)))

  ;; xhat = (x - shift[k]) scale[k], y = xhat gamma[k] + beta[k], row after row.
  (func (export "normalize") (param $x i32) (param $rows i32) (param $c i32) (param $shift i32)
    (param $scale i32) (param $gamma i32) (param $beta i32) (param $xhat i32) (param $y i32)
    (local $offset i32) (local $end i32) (local $k i32) (local $rowBytes i32) (local $v v128)
    (local.set $rowBytes (i32.shl (local.get $c) (i32.const 2)))
    (local.set $end (i32.mul (local.get $rows) (local.get $rowBytes)))
    (local.set $offset (i32.const 0))
    (block $done
      (loop $rowLoop
        (br_if $done (i32.ge_u (local.get $offset) (local.get $end)))
        (local.set $k (i32.const 0))
        (loop $channels
          (local.set $v
            (f32x4.mul
              (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $offset)))
                (v128.load (i32.add (local.get $shift) (local.get $k))))
              (v128.load (i32.add (local.get $scale) (local.get $k)))))
          (v128.store (i32.add (local.get $xhat) (local.get $offset)) (local.get $v))
          (v128.store (i32.add (local.get $y) (local.get $offset))
            (f32x4.add (f32x4.mul (local.get $v) (v128.load (i32.add (local.get $gamma) (local.get $k))))
              (v128.load (i32.add (local.get $beta) (local.get $k)))))
          (local.set $offset (i32.add (local.get $offset) (i32.const 16)))
          (local.set $k (i32.add (local.get $k) (i32.const 16)))
          (br_if $channels (i32.lt_u (local.get $k) (local.get $rowBytes))))
        (br $rowLoop))))

  ;; dx = scale[k] (dy - meanDy[k] - xhat meanDyXhat[k]), row after row.
  (func (export "backward") (param $dy i32) (param $xhat i32) (param $rows i32) (param $c i32)
    (param $meanDy i32) (param $meanDyXhat i32) (param $scale i32) (param $dx i32)
    (local $offset i32) (local $end i32) (local $k i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $c) (i32.const 2)))
    (local.set $end (i32.mul (local.get $rows) (local.get $rowBytes)))
    (local.set $offset (i32.const 0))
    (block $done
      (loop $rowLoop
        (br_if $done (i32.ge_u (local.get $offset) (local.get $end)))
        (local.set $k (i32.const 0))
        (loop $channels
          (v128.store (i32.add (local.get $dx) (local.get $offset))
            (f32x4.mul
              (f32x4.sub
                (f32x4.sub (v128.load (i32.add (local.get $dy) (local.get $offset)))
                  (v128.load (i32.add (local.get $meanDy) (local.get $k))))
                (f32x4.mul (v128.load (i32.add (local.get $xhat) (local.get $offset)))
                  (v128.load (i32.add (local.get $meanDyXhat) (local.get $k)))))
              (v128.load (i32.add (local.get $scale) (local.get $k)))))
          (local.set $offset (i32.add (local.get $offset) (i32.const 16)))
          (local.set $k (i32.add (local.get $k) (i32.const 16)))
          (br_if $channels (i32.lt_u (local.get $k) (local.get $rowBytes))))
        (br $rowLoop))))
)
