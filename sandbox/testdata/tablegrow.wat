;; Tables against limits.memory. The payload's first byte picks the test:
;;   'b' (bomb): one table.grow of 10^8 elements (800 MB in wazero); traps when refused.
;;   'f' (fill): grows the table by 4096 elements until refused, then tries memory.grow 1;
;;               emits the table size and memory.grow's result (two little-endian i32).
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table $t 0 funcref)
  (func (export "edgefn_handle") (param $len i32) (result i32)
    (drop (call $input (i32.const 0) (i32.const 1)))
    (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0x62)) ;; 'b'
      (then
        (if (i32.eq (table.grow $t (ref.null func) (i32.const 100000000)) (i32.const -1))
          (then unreachable))
        (return (i32.const 0))))
    (block $full
      (loop $grow
        (br_if $full (i32.eq (table.grow $t (ref.null func) (i32.const 4096)) (i32.const -1)))
        (br $grow)))
    (i32.store (i32.const 8) (table.size $t))
    (i32.store (i32.const 12) (memory.grow (i32.const 1)))
    (drop (call $emit (i32.const 8) (i32.const 8)))
    (i32.const 0)))
