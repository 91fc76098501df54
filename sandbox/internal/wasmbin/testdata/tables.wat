;; Tables for Options.MemoryBudget: a funcref table with a minimum and an externref table
;; without one, table.grow on each (in a loop too, so the grow sits inside the instrumentation's
;; blocks), and memory.grow to move the memory side of the budget.
(module
  (memory (export "memory") 1)
  (table $f 2 funcref)
  (table $e 0 externref)
  (func $nop)
  (elem declare func $nop)
  (func (export "grow_f") (param i32) (result i32)
    (table.grow $f (ref.func $nop) (local.get 0)))
  (func (export "grow_e") (param i32) (result i32)
    (table.grow $e (ref.null extern) (local.get 0)))
  ;; grows $f by one n times; returns how many grows succeeded
  (func (export "grow_f_loop") (param $n i32) (result i32)
    (local $ok i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (if (i32.ne (table.grow $f (ref.null func) (i32.const 1)) (i32.const -1))
          (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $ok))
  (func (export "size_f") (result i32) (table.size $f))
  (func (export "size_e") (result i32) (table.size $e))
  (func (export "grow_mem") (param i32) (result i32) (memory.grow (local.get 0))))
