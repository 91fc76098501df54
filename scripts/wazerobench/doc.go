// Command wazerobench times one exported function of a WebAssembly module
// under wazero's compiler and its interpreter, to read the interpreter's
// slowdown on a given machine (docs/performance.md, ARM). Build it for the
// target (pure Go, no cgo) and run it natively or under qemu.
package main
