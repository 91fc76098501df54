;; Publishes every reading to "relay/out" (QoS 1) and emits nothing: the
;; publish-only function of the side-by-side benchmark (no outbox record).
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "publish" (func $publish (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "relay/out")
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (drop (call $input (i32.const 64) (local.get $n)))
    (drop (call $publish (i32.const 0) (i32.const 9) (i32.const 64) (local.get $n) (i32.const 1)))
    (i32.const 0)))
