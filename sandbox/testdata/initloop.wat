;; An _initialize that never returns: stopped at the invocation's deadline, like the handler.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")
    (loop $l (br $l)))
  (func (export "edgefn_handle") (param i32) (result i32)
    (i32.const 0)))
