;; Publishes every event back to the topic that triggered it twice: a
;; self-triggering chain that doubles at every step, which the agent must cut
;; at the chain depth limit.
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "meta" (func $meta (param i32 i32 i32 i32) (result i32)))
  (import "edgefn" "publish" (func $publish (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "subject")
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (local $tl i32)
    (drop (call $input (i32.const 1024) (local.get $n)))
    (local.set $tl (call $meta (i32.const 0) (i32.const 7) (i32.const 64) (i32.const 256)))
    (drop (call $publish (i32.const 64) (local.get $tl) (i32.const 1024) (local.get $n) (i32.const 0)))
    (drop (call $publish (i32.const 64) (local.get $tl) (i32.const 1024) (local.get $n) (i32.const 0)))
    (i32.const 0)))
