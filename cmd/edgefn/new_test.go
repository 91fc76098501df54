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
// build: line builds offline (edgefn build) a module that runs from its
// manifest (edgefn run function.yaml).
func TestNewProjects(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		lang, data, want string
		tool             string
		slow             bool
	}{
		{lang: "wat", data: "hello", want: "emit: hello", tool: "wat2wasm"},
		{lang: "c", data: "20", want: `"F":68.00`, tool: "clang"},
		{lang: "rust", want: `"presses":1`, tool: "/usr/bin/rustc"},
		{lang: "as", data: "5", want: `"ema"`, tool: "npm"},
		{lang: "go", data: `{"celsius": 31}`, want: `"alert":true`, tool: "go", slow: true},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			name := "my-" + tc.lang
			out, errOut, code := c.runIn(dir, nil, "new", name, "--lang", tc.lang)
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
			if tc.slow && testing.Short() {
				t.Skip("builds a Go module: skipped with -short")
			}
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s not installed", tc.tool)
			}
			// The manifest's build: line, offline (the Go SDK is in the
			// project), then the module checked against the manifest.
			// The user's Go build cache (HOME is a temporary directory
			// here): a cold one compiles the runtime for minutes.
			var env []string
			if b, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
				env = []string{"GOCACHE=" + strings.TrimSpace(string(b))}
			}
			if out, errOut, code := c.runIn(dir, env, "build", name); code != 0 || !strings.Contains(out, "ABI v1 ok") {
				t.Fatalf("build: exit %d: %s %s", code, out, errOut)
			}
			// A generous timeout: the cold start compiles the module on a
			// shared CI machine.
			args := []string{"run", "function.yaml", "--timeout", "5s", "--data", tc.data}
			if tc.lang == "rust" {
				args = []string{"run", "function.yaml", "--timeout", "5s", "--pin", "GPIO17", "--edge", "falling"}
			}
			out, errOut, code = c.runIn(proj, nil, args...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("run: exit %d: %s %s", code, out, errOut)
			}
			if tc.lang == "go" { // guest.Env reads the manifest's env (--env here)
				out, errOut, code = c.runIn(proj, nil, append(args, "--env", "THRESHOLD=40")...)
				if code != 0 || !strings.Contains(out, `"threshold":40,"alert":false`) {
					t.Errorf("run --env THRESHOLD=40: exit %d: %s %s", code, out, errOut)
				}
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
