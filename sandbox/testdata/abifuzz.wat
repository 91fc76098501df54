;; FuzzHostABI's guest: calls the edgefn imports with arguments taken from its payload, a
;; sequence of 24-byte records [op, a, b, c, d, e] (little-endian u32). op mod 10 picks the
;; import (input, meta, emit, publish, log, gpio_write, gpio_read, kv_get, kv_set, kv_delete),
;; a..e are its arguments in order. Results are dropped. The records are read into the upper
;; half of the one page, where the calls may overwrite them; strings a seed can point at sit
;; below 0x100.
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
  (data (i32.const 0x10) "actuators/fan/x")  ;; 15 bytes
  (data (i32.const 0x30) "GPIO17")           ;; 6
  (data (i32.const 0x40) "key")              ;; 3
  (data (i32.const 0x50) "env.X")            ;; 5
  (func (export "edgefn_handle") (param $len i32) (result i32)
    (local $rec i32) (local $end i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32) (local $e i32)
    (local.set $end (i32.add (i32.const 0x8000)
      (i32.mul (i32.div_u (call $input (i32.const 0x8000) (i32.const 0x7ff8)) (i32.const 24)) (i32.const 24))))
    (local.set $rec (i32.const 0x8000))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $rec) (local.get $end)))
        (local.set $a (i32.load offset=4 (local.get $rec)))
        (local.set $b (i32.load offset=8 (local.get $rec)))
        (local.set $c (i32.load offset=12 (local.get $rec)))
        (local.set $d (i32.load offset=16 (local.get $rec)))
        (local.set $e (i32.load offset=20 (local.get $rec)))
        (block $cont
          (block $b9 (block $b8 (block $b7 (block $b6 (block $b5
          (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
            (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9
              (i32.rem_u (i32.load (local.get $rec)) (i32.const 10))))
            (drop (call $input (local.get $a) (local.get $b))) (br $cont))
            (drop (call $meta (local.get $a) (local.get $b) (local.get $c) (local.get $d))) (br $cont))
            (drop (call $emit (local.get $a) (local.get $b))) (br $cont))
            (drop (call $publish (local.get $a) (local.get $b) (local.get $c) (local.get $d) (local.get $e))) (br $cont))
            (call $log (local.get $a) (local.get $b) (local.get $c)) (br $cont))
            (drop (call $gpio_write (local.get $a) (local.get $b) (local.get $c))) (br $cont))
            (drop (call $gpio_read (local.get $a) (local.get $b))) (br $cont))
            (drop (call $kv_get (local.get $a) (local.get $b) (local.get $c) (local.get $d))) (br $cont))
            (drop (call $kv_set (local.get $a) (local.get $b) (local.get $c) (local.get $d))) (br $cont))
          (drop (call $kv_delete (local.get $a) (local.get $b))))
        (local.set $rec (i32.add (local.get $rec) (i32.const 24)))
        (br $next)))
    (i32.const 0)))
