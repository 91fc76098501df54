;; Counts its calls in a global and emits the count as one ASCII digit
;; ('1' on the first call of an instance): a fresh instance always emits "1".
(module
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (global.get $calls)))
    (call $emit (i32.const 0) (i32.const 1))))
