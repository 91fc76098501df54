;; Writes into a fresh static area each call and reports memory size via the
;; result: 0. Used to check reuse keeps memory flat.
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (drop (call $input (i32.const 1024) (local.get $n)))
    (call $emit (i32.const 1024) (local.get $n))))
