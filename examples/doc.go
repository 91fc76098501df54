// Package examples holds one edgefn function per guest language (Go, C, Rust,
// AssemblyScript, WAT), each in its own directory with its source and function.yaml; its
// tests check that every built module has the shape Function ABI v1 asks for.
package examples
