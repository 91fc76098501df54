;; Guests that never stop on their own: the instrumented versions must be stoppable.
(module
  (memory (export "memory") 1)
  (func $spin (export "spin") (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))
    (local.get $i))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  ;; unbounded recursion with a few locals live across the call, like real code
  (func $recurse (export "recurse") (param $n i32) (result i32)
    (local $a i64) (local $b i64)
    (local.set $a (i64.extend_i32_u (local.get $n)))
    (local.set $b (i64.mul (local.get $a) (i64.const 3)))
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1)))
             (i32.wrap_i64 (i64.add (local.get $a) (local.get $b)))))
  ;; recursion to a given depth, for the memory measurement
  (func $down (export "down") (param $n i32) (result i32)
    (local $a i64) (local $b i64)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else
        (local.set $a (i64.extend_i32_u (local.get $n)))
        (local.set $b (i64.mul (local.get $a) (i64.const 3)))
        (i32.add (call $down (i32.sub (local.get $n) (i32.const 1)))
                 (i32.wrap_i64 (i64.add (local.get $a) (local.get $b)))))))
  ;; like down, with 16 i64 values live across the call: a fatter frame, as compiled C or Go has
  (func $fat (export "fat") (param $n i32) (result i32)
    (local $a i64)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else
        (local.set $a (i64.extend_i32_u (local.get $n)))
        (i64.mul (local.get $a) (i64.const 3)) (i64.mul (local.get $a) (i64.const 4)) (i64.mul (local.get $a) (i64.const 5)) (i64.mul (local.get $a) (i64.const 6)) (i64.mul (local.get $a) (i64.const 7)) (i64.mul (local.get $a) (i64.const 8)) (i64.mul (local.get $a) (i64.const 9)) (i64.mul (local.get $a) (i64.const 10)) (i64.mul (local.get $a) (i64.const 11)) (i64.mul (local.get $a) (i64.const 12)) (i64.mul (local.get $a) (i64.const 13)) (i64.mul (local.get $a) (i64.const 14)) (i64.mul (local.get $a) (i64.const 15)) (i64.mul (local.get $a) (i64.const 16)) (i64.mul (local.get $a) (i64.const 17)) (i64.mul (local.get $a) (i64.const 18)) 
        (i64.extend_i32_u (call $fat (i32.sub (local.get $n) (i32.const 1))))
        (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) (i64.add) 
        (i32.wrap_i64))))
  ;; grows one page at a time until memory.grow fails; returns the pages reached
  (func $grow_all (export "grow_all") (result i32)
    (block $done
      (loop $l
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $l)))
    (memory.size))
)
