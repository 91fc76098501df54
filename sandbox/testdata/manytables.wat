;; More tables than the agent's bound (sandbox.DefaultBounds.Tables, 8): refused at load.
(module
  (memory (export "memory") 1)
  (table 0 funcref) (table 0 funcref) (table 0 funcref) (table 0 funcref) (table 0 funcref)
  (table 0 funcref) (table 0 funcref) (table 0 funcref) (table 0 funcref)
  (func (export "edgefn_handle") (param i32) (result i32)
    (i32.const 0)))
