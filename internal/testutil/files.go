package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Fixture reads the file at the path elem joins (a built WebAssembly guest,
// most often) and fails the test, naming the cure, when it is missing.
func Fixture(t testing.TB, elem ...string) []byte {
	t.Helper()
	p := filepath.Join(elem...)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("fixture %s: %v (run `make wasm` at the repository root first)", p, err)
	}
	return b
}

// Testdata reads the built fixture name from the testdata folder of the
// package under test.
func Testdata(t testing.TB, name string) []byte {
	t.Helper()
	return Fixture(t, "testdata", name)
}

// Buffer is a bytes.Buffer that a process's output and the test may use
// at once: Write and String hold a lock.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
