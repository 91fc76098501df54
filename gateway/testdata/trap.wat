;; Traps on every event: the canary that must be rolled back.
(module
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param $n i32) (result i32)
    unreachable))
