;; Every place a function index appears outside calls: exports (of an import too), the start
;; section, element segments of each encoding (index vectors and expressions, active, passive and
;; declared, on two tables), ref.func in code and in a global's initializer. Options.Yield
;; renumbers all of them. Imports env.twice (i32) -> i32.
(module
  (type $v (func (result i32)))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (table $t 6 funcref)
  (table $u 4 funcref)
  (global $g funcref (ref.func $three))
  (global $started (mut i32) (i32.const 0))
  (elem (i32.const 0) $one $two)                                  ;; flags 0
  (elem (table $u) (i32.const 0) func $four $two)                 ;; flags 2
  (elem (table $t) (i32.const 4) funcref (ref.func $four) (ref.null func)) ;; flags 4
  (elem (table $u) (i32.const 2) funcref (ref.func $three) (ref.null func)) ;; flags 6
  (elem $p funcref (ref.func $three) (ref.func $one) (ref.null func)) ;; flags 5
  (elem $q func $four)                                            ;; flags 1
  (elem declare func $five)                                       ;; flags 3
  (elem declare funcref (ref.func $one) (ref.null func))          ;; flags 7
  (func $one (type $v) (i32.const 1))
  (func $two (type $v) (i32.const 2))
  (func $three (type $v) (i32.const 3))
  (func $four (type $v) (i32.const 4))
  (func $five (type $v) (call $twice (i32.const 5)))
  (func $start (global.set $started (i32.add (global.get $started) (i32.const 100))))
  (start $start)
  (export "twice" (func $twice))
  (export "three" (func $three))
  (func $call (export "call") (param $i i32) (result i32) (call_indirect (type $v) (local.get $i)))
  (func $call_u (export "call_u") (param $i i32) (result i32) (call_indirect $u (type $v) (local.get $i)))
  (func $from_global (export "from_global") (result i32)
    (table.set $t (i32.const 2) (global.get $g))
    (call_indirect (type $v) (i32.const 2)))
  (func $init (export "init") (param $i i32) (result i32)
    (table.init $t $p (i32.const 3) (local.get $i) (i32.const 1))
    (call_indirect (type $v) (i32.const 3)))
  (func $init_q (export "init_q") (result i32)
    (table.init $u $q (i32.const 1) (i32.const 0) (i32.const 1))
    (call_indirect $u (type $v) (i32.const 1)))
  (func $reffunc (export "reffunc") (result i32)
    (table.set $t (i32.const 1) (ref.func $five))
    (call_indirect (type $v) (i32.const 1)))
  (func $is_null (export "is_null") (param $i i32) (result i32) (ref.is_null (table.get $t (local.get $i))))
  (func $started (export "started") (result i32) (global.get $started))
)
