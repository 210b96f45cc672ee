;; Traps (unreachable) on every admission event.
;; A hostile admission module for the webhook's tests (webhook/wasm_test.go):
;; valid ABI v1 metadata subscribing to kind admission, a broken evaluate.
(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "{\22abi\22:1,\22module\22:\22admission-trap\22,\22rules\22:[{\22name\22:\22admission-trap\22,\22kinds\22:[\22admission\22],\22priority\22:\22Error\22,\22action\22:\22block\22}]}")
  (func (export "vigil_abi_version") (result i32) (i32.const 1))
  (func (export "vigil_meta") (result i64) (i64.or (i64.shl (i64.const 129) (i64.const 32)) (i64.const 1024)))
  (func (export "vigil_input") (param i32) (result i32) (i32.const 65536))
  (func (export "vigil_evaluate") (param $p i32) (param $l i32) (param $n i32) (result i64) unreachable)
)
