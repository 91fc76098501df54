package outbox

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Under umask 022 the database and its -wal and -shm files are 0600:
// SQLite would create them 0644.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	mustCommit(t, s, emitInv("f", "x"))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), m)
		}
	}
}
