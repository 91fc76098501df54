;; Drives GPIO18 high (an effect applied after the commit).
(module
  (import "edgefn" "gpio_write" (func $gpio_write (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "GPIO18")
  (func (export "edgefn_handle") (param i32) (result i32)
    (drop (call $gpio_write (i32.const 0) (i32.const 6) (i32.const 1)))
    (i32.const 0)))
