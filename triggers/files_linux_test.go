package triggers

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkFilesDropFloor is BenchmarkFilesDrop's floor: the same file
// written and closed, its IN_CLOSE_WRITE read from inotify, the file
// removed, and nothing else.
func BenchmarkFilesDropFloor(b *testing.B) {
	dir := b.TempDir()
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, dir, unix.IN_CLOSE_WRITE); err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1024)
	buf := make([]byte, 4096)
	b.ResetTimer()
	for i := range b.N {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, payload, 0o644); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(in, buf); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			b.Fatal(err)
		}
	}
}
