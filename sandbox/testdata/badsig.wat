;; Imports emit with the wrong signature.
(module
  (import "edgefn" "emit" (func $emit (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param i32) (result i32) (call $emit (i32.const 0))))
