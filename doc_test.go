package edgefn

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every directory with Go files has exactly one package doc comment, in
// doc.go, as Tailscale enforces for its tree.
func TestEveryPackageHasOneDoc(t *testing.T) {
	dirs := map[string][]string{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" || d.Name() == "node_modules" || d.Name() == "target") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, files := range dirs {
		var withDoc []string
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(string(src), "//go:build ignore") {
				continue // a generator run with go run, not part of the package
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil {
				withDoc = append(withDoc, filepath.Base(f))
			}
		}
		switch {
		case len(withDoc) == 0:
			t.Errorf("%s: no package doc comment (put one in doc.go)", dir)
		case len(withDoc) > 1:
			t.Errorf("%s: package doc comments in %v, want exactly one, in doc.go", dir, withDoc)
		case withDoc[0] != "doc.go" && !(dir == filepath.Join("cmd", "edgefn") && withDoc[0] == "main.go"):
			t.Errorf("%s: package doc is in %s, want doc.go", dir, withDoc[0])
		}
	}
}
