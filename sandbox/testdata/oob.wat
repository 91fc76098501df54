;; The first payload byte (0..9) selects which host import gets a pointer
;; outside guest memory; every one must trap naming the import.
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "meta" (func $meta (param i32 i32 i32 i32) (result i32)))
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (import "edgefn" "publish" (func $publish (param i32 i32 i32 i32 i32) (result i32)))
  (import "edgefn" "log" (func $log (param i32 i32 i32)))
  (import "edgefn" "gpio_write" (func $gpio_write (param i32 i32 i32) (result i32)))
  (import "edgefn" "gpio_read" (func $gpio_read (param i32 i32) (result i32)))
  (import "edgefn" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (import "edgefn" "kv_set" (func $kv_set (param i32 i32 i32 i32) (result i32)))
  (import "edgefn" "kv_delete" (func $kv_delete (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "edgefn_handle") (param $n i32) (result i32)
    (drop (call $input (i32.const 0) (i32.const 1)))
    (block $end
    (block $b9
    (block $b8
    (block $b7
    (block $b6
    (block $b5
    (block $b4
    (block $b3
    (block $b2
    (block $b1
    (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $end (i32.load8_u (i32.const 0))))
      (drop (call $input (i32.const 0xfffffff0) (i32.const 16))) (br $end))
      (drop (call $meta (i32.const 0xfffffff0) (i32.const 6) (i32.const 0) (i32.const 8))) (br $end))
      (drop (call $emit (i32.const 0xfffffff0) (i32.const 16))) (br $end))
      (drop (call $publish (i32.const 0xfffffff0) (i32.const 5) (i32.const 0) (i32.const 1) (i32.const 0))) (br $end))
      (call $log (i32.const 1) (i32.const 0xfffffff0) (i32.const 16)) (br $end))
      (drop (call $gpio_write (i32.const 0xfffffff0) (i32.const 6) (i32.const 1))) (br $end))
      (drop (call $gpio_read (i32.const 0xfffffff0) (i32.const 6))) (br $end))
      (drop (call $kv_get (i32.const 0) (i32.const 1) (i32.const 0xfffffff0) (i32.const 16))) (br $end))
      (drop (call $kv_set (i32.const 0) (i32.const 1) (i32.const 0xfffffff0) (i32.const 16))) (br $end))
      (drop (call $kv_delete (i32.const 0xfffffff0) (i32.const 3))))
    (i32.const 0)))
