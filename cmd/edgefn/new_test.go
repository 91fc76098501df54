package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/examples"
	"github.com/edgefn/edgefn/internal/manifest"
)

// Every source file of an example is embedded for edgefn new: a file
// added to an example without being added to examples/sources.go would
// be missing from new projects.
func TestTemplatesHoldEveryExampleFile(t *testing.T) {
	for lang, ex := range templateLangs {
		src := filepath.Join("..", "..", "examples", ex)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, ".wasm") || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			rel, _ := filepath.Rel(filepath.Join("..", "..", "examples"), p)
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got, err := examples.Sources.ReadFile(filepath.ToSlash(rel))
			if err != nil {
				t.Errorf("%s: examples/%s is not embedded: add it to examples/sources.go", lang, rel)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: embedded %s differs from the file", lang, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// edgefn new writes a project whose manifest names the function and whose
// printed build line builds a module that runs.
func TestNewProjects(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lang, data, want string
		tool             string
		slow             bool
	}{
		{lang: "wat", data: "hello", want: "emit: hello", tool: "wat2wasm"},
		{lang: "c", data: "20", want: `"F":68.00`, tool: "clang"},
		{lang: "rust", tool: "rustc"},
		{lang: "as", tool: "npm"},
		{lang: "go", data: `{"celsius": 31}`, want: `"alert":true`, tool: "go", slow: true},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			name := "my-" + tc.lang
			out, errOut, code := c.runIn(dir, nil, "new", name, "--lang", tc.lang, "--sdk", repo)
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			proj := filepath.Join(dir, name)
			src, err := os.ReadFile(filepath.Join(proj, "function.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse("function.yaml", src)
			if err != nil || m.Name != name || m.Wasm != "./"+name+".wasm" {
				t.Fatalf("manifest: %v %+v", err, m)
			}
			readme, _ := os.ReadFile(filepath.Join(proj, "README.md"))
			if strings.Contains(string(readme), templateLangs[tc.lang]) || strings.Contains(string(src), templateLangs[tc.lang]) {
				t.Errorf("the example's name is left in the project")
			}
			if tc.data == "" {
				return // toolchain not run here (rustc, npm): see docs/languages.md
			}
			if tc.slow && testing.Short() {
				t.Skip("builds a Go module: skipped with -short")
			}
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s not installed", tc.tool)
			}
			_, line, ok := strings.Cut(out, "build:\n  cd "+name+" && ")
			if !ok {
				t.Fatalf("no build line in: %s", out)
			}
			line, _, _ = strings.Cut(line, "\n")
			build := exec.Command("sh", "-c", line)
			build.Dir = proj
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, b)
			}
			out, errOut, code = c.runIn(proj, nil, "run", name+".wasm", "--data", tc.data, "--memory", "32MiB", "--allow-kv", "--allow-publish", "#")
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("run: exit %d: %s %s", code, out, errOut)
			}
		})
	}
	if _, errOut, code := c.runIn(dir, nil, "new", "my-wat", "--lang", "wat"); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Errorf("new over an existing project: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{{"new", "x"}, {"new", "Bad Name", "--lang", "go"}, {"new", "x", "--lang", "cobol"}, {"new"}} {
		if _, errOut, code := c.runIn(dir, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if out, _, code := c.run("completion", "bash"); code != 0 || !strings.Contains(out, "complete -o") {
		t.Errorf("completion bash: exit %d: %s", code, out)
	}
	if _, _, code := c.run("completion", "fish"); code != 2 {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}
