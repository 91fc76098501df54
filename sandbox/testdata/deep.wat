;; Runaway recursion with a fat frame.
(module
  (memory (export "memory") 1)
  (func $down (param $n i32) (param $a i64) (param $b i64) (param $c i64) (param $d i64) (result i64)
    (i64.add (local.get $a)
      (call $down (i32.add (local.get $n) (i32.const 1))
        (local.get $b) (local.get $c) (local.get $d) (i64.extend_i32_u (local.get $n)))))
  (func (export "edgefn_handle") (param i32) (result i32)
    (drop (call $down (i32.const 0) (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))
    (i32.const 0)))
