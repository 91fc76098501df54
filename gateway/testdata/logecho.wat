;; Logs the payload as an info line and emits it back; a payload starting
;; with "fail" is logged, then the invocation fails (returns 1).
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (import "edgefn" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (local $got i32)
    (local.set $got (call $input (i32.const 0) (local.get $n)))
    (call $log (i32.const 1) (i32.const 0) (local.get $got))
    (if (i32.and (i32.ge_u (local.get $got) (i32.const 4))
                 (i32.eq (i32.load (i32.const 0)) (i32.const 0x6c696166))) ;; "fail" little-endian
      (then (return (i32.const 1))))
    (drop (call $emit (i32.const 0) (local.get $got)))
    (i32.const 0)))
