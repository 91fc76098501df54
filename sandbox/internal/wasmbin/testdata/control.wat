;; Control-flow shapes the rewriter must keep equivalent: loops, nested blocks, branches to the
;; function label, return inside nested blocks, multi-value results, recursion, memory.grow and
;; call_indirect. Every export takes i32 inputs so the tests can sweep them.
(module
  (type $bin (func (param i32 i32) (result i32)))
  (memory (export "memory") 1 4)
  (table 3 funcref)
  (elem (i32.const 0) $add $sub $mul)
  (global $acc (mut i32) (i32.const 0))

  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))

  ;; checksum loop: sum of i*i xor i for i < n
  (func $loop_sum (export "loop_sum") (param $n i32) (result i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $s)
          (i32.xor (i32.mul (local.get $i) (local.get $i)) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))

  ;; br / br_if / br_table straight to the function label from nested blocks
  (func $nested (export "nested") (param $n i32) (result i32)
    (local $x i32)
    (local.set $x (i32.const 100))
    (block $a (result i32)
      (block $b (result i32)
        (block $c (result i32)
          (drop (br_if 3 (i32.const 7) (i32.eq (local.get $n) (i32.const 1))))
          (i32.const 11)
          (local.get $n)
          (br_table $c $b $a 3 3)) ;; n=0 -> c, 2 -> a, 3.. -> the function label with 11
        (local.set $x (i32.add (local.get $x)))
        (br 2 (i32.add (local.get $x) (i32.const 12))))
      (local.set $x (i32.sub (local.get $x)))
      (local.get $x))
    (i32.add (local.get $n)))

  ;; return from deep inside blocks, ifs and a loop
  (func $early (export "early") (param $n i32) (result i32)
    (local $i i32)
    (block
      (if (i32.lt_s (local.get $n) (i32.const 0))
        (then (return (i32.const -1))))
      (loop $l
        (if (i32.eq (local.get $i) (i32.const 5))
          (then
            (block
              (if (i32.gt_s (local.get $n) (i32.const 10))
                (then (return (i32.mul (local.get $n) (i32.const 3))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_s (local.get $i) (local.get $n)))))
    (i32.add (local.get $i) (i32.const 1000)))

  ;; multi-value results, returned early from a nested block
  (func $divmod (param $a i32) (param $b i32) (result i32 i32)
    (block
      (br_if 0 (i32.ne (local.get $b) (i32.const 0)))
      (return (i32.const 0) (i32.const 0)))
    (i32.div_u (local.get $a) (local.get $b))
    (i32.rem_u (local.get $a) (local.get $b)))
  (func $divmod_sum (export "divmod_sum") (param $a i32) (param $b i32) (result i32)
    (call $divmod (local.get $a) (local.get $b))
    (i32.mul (i32.const 1000))
    (i32.add))
  (func $divmod_export (export "divmod") (param $a i32) (param $b i32) (result i32 i32)
    (call $divmod (local.get $a) (local.get $b)))

  ;; a loop with a multi-value block type (params and results)
  (func $loop_params (export "loop_params") (param $n i32) (result i32)
    (local $k i32)
    (i32.const 0) (i32.const 1)
    (loop $l (param i32 i32) (result i32 i32)
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      ;; (a, b) -> (b, a+b)
      (call $swap_add)
      (br_if $l (i32.lt_s (local.get $k) (local.get $n))))
    (drop))
  (func $swap_add (param $a i32) (param $b i32) (result i32 i32)
    (local.get $b) (i32.add (local.get $a) (local.get $b)))

  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  ;; grows by n pages and returns old size * 1000 + new size (or -1 on failure)
  (func $grow (export "grow") (param $n i32) (result i32)
    (local $old i32)
    (local.set $old (memory.grow (local.get $n)))
    (if (result i32) (i32.eq (local.get $old) (i32.const -1))
      (then (i32.const -1))
      (else (i32.add (i32.mul (local.get $old) (i32.const 1000)) (memory.size)))))

  (func $indirect (export "indirect") (param $i i32) (param $x i32) (result i32)
    (call_indirect (type $bin) (local.get $x) (i32.const 3) (i32.rem_u (local.get $i) (i32.const 3))))

  ;; void function with a loop and a global side effect, read back by "acc"
  (func $accumulate (export "accumulate") (param $n i32)
    (block $out
      (loop $l
        (br_if $out (i32.eqz (local.get $n)))
        (global.set $acc (i32.add (global.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (if (i32.gt_u (global.get $acc) (i32.const 100000)) (then (return)))
        (br $l))))
  (func $acc (export "acc") (result i32) (global.get $acc))

;; br_table inside a loop: to a block inside it, to the loop and to blocks outside it
  (func $loop_table (export "loop_table") (param $n i32) (result i32)
    (local $i i32) (local $s i32)
    (block $out
      (block $skip
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (block $in
            (br_table $in $l $skip $out
              (select (i32.and (local.get $i) (i32.const 1))
                      (i32.add (i32.const 2) (i32.and (local.get $n) (i32.const 1)))
                      (i32.lt_s (local.get $i) (local.get $n)))))
          (local.set $s (i32.add (local.get $s) (local.get $i)))
          (br $l)))
      (local.set $s (i32.add (local.get $s) (i32.const 1000))))
    (i32.add (local.get $s) (i32.mul (local.get $i) (i32.const 100000))))

  (data (i32.const 16) "hello")
  (data (i32.const 20) "XYZ")
  (data (i32.const 4000) "\01\00\00\02")
  (func $load (export "load") (param $a i32) (result i32) (i32.load8_u (local.get $a)))
)
