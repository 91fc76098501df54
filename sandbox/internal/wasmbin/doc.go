// Package wasmbin parses, validates and rewrites WebAssembly binaries at deploy time. It adds the
// checks the sandbox needs to stop a guest at a deadline or on runaway recursion (a stop flag and a
// call-depth budget in exported globals), clamps the memory maximum, tracks failed memory.grow,
// and merges data segments so fresh instances start fast.
package wasmbin
