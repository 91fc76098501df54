package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestFixture(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g.wasm"), []byte("\x00asm"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := string(Fixture(t, dir, "g.wasm")); got != "\x00asm" {
		t.Fatalf("Fixture = %q", got)
	}
	ft := &fatalT{fakeT: fakeT{TB: t}}
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine, as it ends a test
		defer close(done)
		Fixture(ft, dir, "missing.wasm")
	}()
	<-done
	if !strings.Contains(ft.msg, "missing.wasm") || !strings.Contains(ft.msg, "make wasm") {
		t.Fatalf("a missing fixture failed with %q, want its path and the cure", ft.msg)
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Fatalf("%d bytes written, want 400", n)
	}
}

// fatalT records Fatalf's message and ends the goroutine as testing.T does.
type fatalT struct {
	fakeT
	msg string
}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
