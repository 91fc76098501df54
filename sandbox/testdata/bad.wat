;; Breaks the ABI three ways: no edgefn_handle/_start, an unknown import, a
;; 64 MiB minimum memory.
(module
  (import "foo" "bar" (func $bar))
  (memory (export "memory") 1024)
  (func (export "handle") (param i32) (result i32) (i32.const 0)))
