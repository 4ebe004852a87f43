;; The transpose that moves a tensor's outer axis innermost and its inner axis outermost, over
;; tfjs-backend-wasm's own heap (its memory, imported), in 4 x 4 float32 blocks with SIMD shuffles.
;; tfjs's own kernel walks the output element by element; the conv filter gradient needs this one
;; (x: b x h x w x c -> c x h x w x b) for every 3x3 conv of a step. Pointers are byte offsets.
;; Built into ../src/transpose-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's
;; wabt), once with this shared memory (the threaded build's) and once with an unshared one.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; out[k, j, i] = x[i, j, k] for x outer x middle x inner, outer and inner multiples of 4. The rows
  ;; of x go 16 at a time (a tile: 16 read streams along j and k), and within a tile each 4 x 4
  ;; block of rows i .. i + 3, columns k .. k + 3 lands transposed on rows k .. k + 3 of out at i, so
  ;; that a tile writes whole 64-byte lines of out. Walking all of x's rows for each j instead
  ;; touches a page per row (a row is middle x inner floats) and measured slower.
  (func (export "transpose") (param $x i32) (param $outer i32) (param $middle i32) (param $inner i32) (param $out i32)
    (local $xRow i32) (local $outRow i32) (local $tile i32) (local $tileEnd i32) (local $j i32) (local $i i32) (local $k i32)
    (local $p i32) (local $q i32) (local $xj i32) (local $oj i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    ;; Bytes from x[i, j, k] to x[i + 1, j, k], and from out[k, j, i] to out[k + 1, j, i].
    (local.set $xRow (i32.shl (i32.mul (local.get $middle) (local.get $inner)) (i32.const 2)))
    (local.set $outRow (i32.shl (i32.mul (local.get $middle) (local.get $outer)) (i32.const 2)))
    (local.set $tile (i32.const 0))
    (block $tileDone
      (loop $tileLoop
        (br_if $tileDone (i32.ge_u (local.get $tile) (local.get $outer)))
        (local.set $tileEnd (i32.add (local.get $tile) (i32.const 16)))
        (if (i32.gt_u (local.get $tileEnd) (local.get $outer)) (then (local.set $tileEnd (local.get $outer))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $middle)))
            (local.set $xj (i32.add (local.get $x) (i32.shl (i32.mul (local.get $j) (local.get $inner)) (i32.const 2))))
            (local.set $oj (i32.add (local.get $out) (i32.shl (i32.mul (local.get $j) (local.get $outer)) (i32.const 2))))
            (local.set $k (i32.const 0))
            (block $kDone
              (loop $kLoop
                (br_if $kDone (i32.ge_u (local.get $k) (local.get $inner)))
                (local.set $i (local.get $tile))
                (block $iDone
                  (loop $iLoop
                    (br_if $iDone (i32.ge_u (local.get $i) (local.get $tileEnd)))
                    ;; x[i .. i + 3, j, k .. k + 3]
                    (local.set $p (i32.add (i32.add (local.get $xj) (i32.mul (local.get $i) (local.get $xRow)))
                      (i32.shl (local.get $k) (i32.const 2))))
                    (local.set $r0 (v128.load (local.get $p)))
                    (local.set $p (i32.add (local.get $p) (local.get $xRow)))
                    (local.set $r1 (v128.load (local.get $p)))
                    (local.set $p (i32.add (local.get $p) (local.get $xRow)))
                    (local.set $r2 (v128.load (local.get $p)))
                    (local.set $p (i32.add (local.get $p) (local.get $xRow)))
                    (local.set $r3 (v128.load (local.get $p)))
                    ;; t0 = r0[0] r1[0] r0[1] r1[1], t1 = r0[2] r1[2] r0[3] r1[3]; t2, t3 the same of r2, r3.
                    (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
                    (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
                    (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
                    (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
                    ;; out[k .. k + 3, j, i .. i + 3]: row m is column m of the block, r0[m] r1[m] r2[m] r3[m].
                    (local.set $q (i32.add (i32.add (local.get $oj) (i32.mul (local.get $k) (local.get $outRow)))
                      (i32.shl (local.get $i) (i32.const 2))))
                    (v128.store (local.get $q)
                      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
                    (local.set $q (i32.add (local.get $q) (local.get $outRow)))
                    (v128.store (local.get $q)
                      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
                    (local.set $q (i32.add (local.get $q) (local.get $outRow)))
                    (v128.store (local.get $q)
                      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
                    (local.set $q (i32.add (local.get $q) (local.get $outRow)))
                    (v128.store (local.get $q)
                      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
                    (local.set $i (i32.add (local.get $i) (i32.const 4)))
                    (br $iLoop)))
                (local.set $k (i32.add (local.get $k) (i32.const 4)))
                (br $kLoop)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $tile (i32.add (local.get $tile) (i32.const 16)))
        (br $tileLoop)))))
