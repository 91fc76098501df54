;; wat-minimal: the smallest edgefn reactor. It emits its payload unchanged
;; (an echo), with two host imports, one page of memory and no WASI.
(module
  (import "edgefn" "input" (func $input (param i32 i32) (result i32)))
  (import "edgefn" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; edgefn_handle(payload_len) -> 0 on success. The payload is copied to
  ;; offset 0, clamped to the one 64 KiB page; emit's return code (0, or -2
  ;; over limits.max_output) is the result, so a refused emit fails the call.
  (func (export "edgefn_handle") (param $len i32) (result i32)
    (call $emit
      (i32.const 0)
      (call $input
        (i32.const 0)
        (select (local.get $len) (i32.const 65536)
          (i32.le_u (local.get $len) (i32.const 65536)))))))
