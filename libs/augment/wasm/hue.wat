;; torchvision's adjust_hue on a PIL image: Pillow's rgb2hsv, the hue byte shifted with uint8
;; wrap-around, Pillow's hsv2rgb; in place on `pixels` interleaved RGB pixels. Every intermediate
;; that depends on two bytes comes from tables the caller writes once (colour.ts builds them with
;; Pillow's float32 and double steps):
;;   hue    [which max (0 r, 1 g, 2 b)][distance of the 1st other channel][of the 2nd], u8, at 0
;;   sat    [max - min][max], u8, at 196608
;;   sector [hue], u8 (hsv2rgb's i % 6), at 262144
;;   fs     [hue][sat], f32 (hsv2rgb's f * s), at 262400
;; What is left per pixel is hsv2rgb's three roundings, in doubles as Pillow's C (halves up).
;; Built into ../src/hue-wasm.ts by `node tools/wasm-gen.mjs` (needs wat2wasm, Debian's wabt).
(module
  (memory (export "memory") 1)
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
