;; Three tables of 5×10^7 elements each: 1.2 GB in wazero before anything runs. Refused at
;; load: their minimums count against limits.memory.
(module
  (memory (export "memory") 1)
  (table 50000000 funcref)
  (table 50000000 funcref)
  (table 50000000 funcref)
  (func (export "edgefn_handle") (param i32) (result i32)
    (i32.const 0)))
