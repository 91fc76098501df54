// Package wasmgen builds WebAssembly modules too large or too repetitive to
// keep as WAT fixtures, such as the 100,000-function reactor the sandbox
// bounds tests deploy.
package wasmgen
