;; Spins forever in a tight loop.
(module
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param i32) (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))
    (i32.const 0)))
