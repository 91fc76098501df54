//go:build wasip1

package guest

// The "edgefn" host imports of ABI v1. A Go string parameter is passed as two
// i32 (pointer, length), which is exactly the ABI's (ptr, len) pairs; buffers
// are passed as *byte plus a length. Go's garbage collector on wasm does not
// move objects, so the pointers stay valid for the call.

//go:wasmimport edgefn input
func hostInput(buf *byte, n uint32) int32

//go:wasmimport edgefn meta
func hostMeta(key string, buf *byte, n uint32) int32

//go:wasmimport edgefn emit
func hostEmit(buf *byte, n uint32) int32

//go:wasmimport edgefn publish
func hostPublish(topic string, buf *byte, n uint32, qos uint32) int32

//go:wasmimport edgefn log
func hostLog(level int32, buf *byte, n uint32)

//go:wasmimport edgefn gpio_write
func hostGPIOWrite(pin string, level uint32) int32

//go:wasmimport edgefn gpio_read
func hostGPIORead(pin string) int32

//go:wasmimport edgefn kv_get
func hostKVGet(key string, buf *byte, n uint32) int32

//go:wasmimport edgefn kv_set
func hostKVSet(key string, buf *byte, n uint32) int32

//go:wasmimport edgefn kv_delete
func hostKVDelete(key string) int32
