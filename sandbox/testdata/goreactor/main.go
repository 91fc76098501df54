// Command goreactor is a Go wasip1 reactor fixture: it exports
// edgefn_handle and calls the edgefn host imports directly. It emits the
// payload upper-cased and, when the payload is "alloc", allocates until the
// memory cap stops it.
package main

import (
	"bytes"
	"unsafe"
)

//go:wasmimport edgefn input
func input(buf unsafe.Pointer, n int32) int32

//go:wasmimport edgefn emit
func emit(buf unsafe.Pointer, n int32) int32

//go:wasmimport edgefn log
func log(level int32, buf unsafe.Pointer, n int32)

var keep [][]byte

//go:wasmexport edgefn_handle
func handle(n int32) int32 {
	buf := make([]byte, n+1)
	got := input(unsafe.Pointer(&buf[0]), n)
	buf = buf[:got]
	if string(buf) == "alloc" {
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	}
	msg := []byte("go reactor")
	log(1, unsafe.Pointer(&msg[0]), int32(len(msg)))
	up := bytes.ToUpper(buf)
	if len(up) == 0 {
		return emit(nil, 0)
	}
	return emit(unsafe.Pointer(&up[0]), int32(len(up)))
}

func main() {}
