package gateway

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// tightenDataDir takes the group and other permission bits off the data
// dir and everything in it (directories become 0700, files 0600), for a
// data dir made by an older agent under the umask or files copied in by
// hand: it holds the API token, the TLS key, the outbox and the functions.
// Symbolic links are left alone. What it changed, and what it could not,
// is logged.
func tightenDataDir(dir string, log *slog.Logger) {
	var changed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			log.Warn("data dir: cannot check permissions", "path", p, "err", err)
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone since the directory was read
		}
		mode := info.Mode().Perm()
		if mode&0o077 == 0 {
			return nil
		}
		if err := os.Chmod(p, mode&^0o077); err != nil {
			log.Warn("data dir: cannot tighten permissions", "path", p, "mode", mode.String(), "err", err)
			return nil
		}
		changed = append(changed, p)
		return nil
	})
	if err != nil {
		log.Warn("data dir: permissions not checked", "dir", dir, "err", err)
	}
	if len(changed) > 0 {
		log.Warn("data dir: group and other permissions removed", "dir", dir, "count", len(changed), "paths", firstN(changed, 10))
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}
