// Package guest is the Go SDK for edgefn functions: it wraps the "edgefn" host imports of
// Function ABI v1 and exports edgefn_handle, so a function registers one handler with
// Handle from init and is built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
// Everything but the error types needs GOOS=wasip1; see docs/languages.md.
package guest
