;; AssemblyScript-style abort: UTF-16LE strings with their byte length just
;; before them.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 12) "\0a\00\00\00b\00o\00o\00m\00!\00")
  (data (i32.const 28) "\14\00\00\00a\00s\00s\00e\00m\00b\00l\00y\00/\00x\00")
  (func (export "edgefn_handle") (param i32) (result i32)
    (call $abort (i32.const 16) (i32.const 32) (i32.const 7) (i32.const 3))
    (i32.const 0)))
