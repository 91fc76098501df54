// Package testpki generates a throwaway certificate authority, a loopback
// server certificate and a client certificate for TLS tests, written as PEM
// files into a test's temporary directory.
package testpki
