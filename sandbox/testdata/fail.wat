;; Emits a record, then returns 7 (a failure: the record must not survive).
(module
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "lost")
  (func (export "edgefn_handle") (param i32) (result i32)
    (drop (call $emit (i32.const 0) (i32.const 4)))
    (i32.const 7)))
