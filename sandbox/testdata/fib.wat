;; Loop-free recursion: fib(40), about 10^8 calls.
(module
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "edgefn_handle") (param i32) (result i32)
    (drop (call $fib (i32.const 40)))
    (i32.const 0)))
