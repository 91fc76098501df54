;; A loop-heavy guest that finishes: counts to 1000 * payload_len (the
;; benchmark of the timeout mechanism's cost).
(module
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (local.set $n (i32.mul (local.get $n) (i32.const 1000)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (i32.xor (local.get $i) (i32.const 0x5bd1e995))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.and (local.get $acc) (i32.const 0))))
