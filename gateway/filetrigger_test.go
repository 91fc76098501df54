package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The checks of a file trigger's directory: symbolic links are resolved
// before the grants.max.files check (a link inside the allowed root that
// points out of it is refused), the data dir is refused even within the
// root, and a relative path resolves next to a functions_dir manifest.
func TestFileDirChecks(t *testing.T) {
	// Resolved: the checks compare real paths.
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outside, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"cam", "data", "fns/inbox"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "cam"), filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	g := newTestGateway(t, func(c *Config) {
		c.Grants.Max.Files = []string{root}
		c.DataDir = filepath.Join(root, "data")
	})
	for _, tc := range []struct{ path, origin, want, err string }{
		{filepath.Join(root, "cam"), "api", filepath.Join(root, "cam"), ""},
		{filepath.Join(root, "alias"), "api", filepath.Join(root, "cam"), ""},
		{filepath.Join(root, "escape"), "api", "", "directory " + outside + " is not within the agent config's grants.max.files"},
		{filepath.Join(root, "data"), "api", "", "is inside the agent's data dir"},
		{"inbox", filepath.Join(root, "fns", "f.yaml"), filepath.Join(root, "fns", "inbox"), ""},
		{"../cam/", filepath.Join(root, "fns", "f.yaml"), filepath.Join(root, "cam"), ""},
		{"inbox", "fleet", "", "a relative path resolves next to the manifest"},
	} {
		got, err := g.fileDir(tc.path, tc.origin)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("fileDir(%q, %q) = %q, %v; want %q", tc.path, tc.origin, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("fileDir(%q, %q) = %q, %v; want an error with %q", tc.path, tc.origin, got, err, tc.err)
		}
	}
	// No grants.max.files: no file trigger at all.
	g.cfg.Grants.Max.Files = nil
	if _, err := g.fileDir(filepath.Join(root, "cam"), "api"); err == nil || !strings.Contains(err.Error(), "grants.max.files, which lists none") {
		t.Errorf("without grants.max.files: %v", err)
	}
}
