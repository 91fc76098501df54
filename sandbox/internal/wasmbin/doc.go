// Package wasmbin parses, validates and rewrites WebAssembly binaries at deploy time. It adds the
// checks the sandbox needs to stop a guest at a deadline or on runaway recursion (a stop flag, a
// call-depth budget in exported globals and, with Options.Yield, regular calls to a host import
// that keep the guest preemptible by Go), clamps the memory maximum, tracks failed memory.grow,
// and merges data segments so fresh instances start fast.
package wasmbin
