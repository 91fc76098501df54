;; Traps with unreachable after logging a line.
(module
  (import "edgefn" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "about to trap")
  (func (export "edgefn_handle") (param i32) (result i32)
    (call $log (i32.const 2) (i32.const 0) (i32.const 13))
    unreachable))
