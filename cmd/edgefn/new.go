package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/examples"
	"github.com/edgefn/edgefn/internal/manifest"
	guestsdk "github.com/edgefn/edgefn/sandbox/guest"
)

// templateLangs maps each --lang to the example it copies (the examples
// are embedded by package examples).
var templateLangs = map[string]string{
	"go":   "go-temp-alert",
	"c":    "c-command",
	"rust": "rust-reactor",
	"as":   "as-reactor",
	"wat":  "wat-minimal",
}

func newAction(c *cli.Context) error {
	name := c.Args().First()
	if !edgefn.ValidName(name) {
		return usagef("new: name %q: use a lower-case letter then lower-case letters, digits and dashes (it becomes the manifest's name)", name)
	}
	if c.String("lang") == "" {
		return usagef("new: pass --lang go, c, rust, as or wat")
	}
	lang := strings.ToLower(c.String("lang"))
	ex, ok := templateLangs[lang]
	if !ok {
		return usagef("new: --lang %q: use go, c, rust, as or wat", c.String("lang"))
	}
	dir := c.String("dir")
	if dir == "" {
		dir = name
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("new: %s exists and is not empty: choose another NAME or --dir", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("new: %w", err)
	}
	files, err := renderTemplate(lang, ex, name, c.String("sdk"))
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("new: %w", err)
		}
		if err := os.WriteFile(dst, files[p], 0o644); err != nil {
			return fmt.Errorf("new: %w", err)
		}
	}
	w := c.App.Writer
	data := sampleData[lang]
	fmt.Fprintf(w, "wrote %s/ (%s): %s\n", dir, lang, strings.Join(paths, ", "))
	fmt.Fprintf(w, "build (the manifest's build: line):\n  edgefn build %s\n", dir)
	fmt.Fprintf(w, "try it locally:\n  edgefn run %s/function.yaml --data '%s'\n", dir, data)
	fmt.Fprintf(w, "deploy:\n  edgefn deploy %s/function.yaml\n", dir)
	if m, err := manifest.Parse("function.yaml", files["function.yaml"]); err == nil && len(m.Triggers) > 0 && m.Triggers[0].MQTT != "" {
		fmt.Fprintf(w, "send it a message and watch:\n  mosquitto_pub -q 1 -t %s -m '%s'\n", sampleTopic(m.Triggers[0].MQTT), data)
		fmt.Fprintf(w, "  edgefn tail '%s/#'       # its topics, live (Ctrl-C ends it)\n", name)
		fmt.Fprintf(w, "  edgefn logs %s\n  edgefn outbox peek %s\n", name, name)
	}
	return nil
}

// sampleData is a payload each template handles, for the lines new prints.
var sampleData = map[string]string{
	"go":   `{"celsius": 31}`,
	"c":    "21.5",
	"rust": "press",
	"as":   "23.4",
	"wat":  "hi",
}

// renderTemplate returns the project files for lang, renamed from the
// example ex to name: file contents, file names and the README's paths.
func renderTemplate(lang, ex, name, sdk string) (map[string][]byte, error) {
	root := ex
	files := map[string][]byte{}
	err := fs.WalkDir(examples.Sources, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := examples.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		s := string(b)
		s = strings.ReplaceAll(s, "./examples/"+ex+"/", "./")
		s = strings.ReplaceAll(s, "examples/"+ex+"/", "")
		s = strings.ReplaceAll(s, "./examples/"+ex, ".")
		s = strings.ReplaceAll(s, "Build: make wasm, or see README.md.", "Build: see README.md.")
		s = strings.ReplaceAll(s, ex, name)
		files[strings.ReplaceAll(rel, ex, name)] = []byte(s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("new: template %s: %w", lang, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("new: template %s is empty in this binary", lang)
	}
	if lang == "go" {
		if err := addGoSDK(files, name, sdk); err != nil {
			return nil, err
		}
	}
	// The manifest gets its build: line, and the project's topics are its
	// own (NAME/...), so that two projects from one template deploy side
	// by side.
	for p, b := range files {
		s := string(b)
		for _, prefix := range []string{"sensors/", "actuators/", "alerts/", "buttons/"} {
			for _, before := range []string{`"`, " ", "`"} {
				s = strings.ReplaceAll(s, before+prefix, before+name+"/"+strings.TrimSuffix(prefix, "s/")+"/")
			}
		}
		switch p {
		case "function.yaml":
			s = strings.TrimRight(s, "\n") + "\nbuild: " + buildLine(lang, name) + "\n"
		case "README.md":
			// The example's build paragraph speaks of the repository
			// (make wasm, paths from its root); the project has its
			// build: line.
			s = repoBuild.ReplaceAllLiteralString(s, "Build with `edgefn build` in this directory: it runs the manifest's `build:` line\n\n    "+
				buildLine(lang, name)+"\n\nthen checks the module (ABI v1, the manifest's limits).\n")
		}
		files[p] = []byte(s)
	}
	if lang == "as" {
		files[path.Join(".gitignore")] = []byte("node_modules/\n*.wasm\n")
	}
	return files, nil
}

// repoBuild is the build paragraph of an example's README: "Build (from
// the repository root…", up to and including its indented command line.
var repoBuild = regexp.MustCompile(`(?s)Build \(from the repository root.*?\n\n    [^\n]*\n`)

// buildLine is the command that builds the project in its directory.
func buildLine(lang, name string) string {
	switch lang {
	case "go":
		return "GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off go build -buildmode=c-shared -o " + name + ".wasm ."
	case "c":
		return "clang --target=wasm32-wasi --sysroot=/usr -O2 -fuse-ld=lld -Wl,--strip-all -o " + name + ".wasm convert.c"
	case "rust":
		return "PATH=/usr/bin:$PATH rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C strip=symbols -o " + name + ".wasm lib.rs"
	case "as":
		return "npm ci --prefer-offline --no-audit --no-fund && ./node_modules/.bin/asc assembly/index.ts --config asconfig.json --target release"
	default:
		return "wat2wasm -o " + name + ".wasm minimal.wat"
	}
}

// addGoSDK writes the Go SDK into the project (sdk/, a module
// github.com/edgefn/edgefn holding sandbox/guest, copied from this
// binary) and a go.mod that replaces the module with it, so that the
// project builds with no network; --sdk DIR points the replace at a
// checkout instead.
func addGoSDK(files map[string][]byte, name, sdk string) error {
	replace := "./sdk"
	if sdk != "" {
		abs, err := filepath.Abs(sdk)
		if err != nil {
			return err
		}
		replace = filepath.ToSlash(abs)
	} else {
		ents, err := fs.ReadDir(guestsdk.Sources, ".")
		if err != nil {
			return err
		}
		for _, e := range ents {
			b, err := guestsdk.Sources.ReadFile(e.Name())
			if err != nil {
				return err
			}
			files["sdk/sandbox/guest/"+e.Name()] = b
		}
		files["sdk/go.mod"] = []byte("module github.com/edgefn/edgefn\n\ngo 1.26\n")
	}
	files["go.mod"] = []byte(fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire github.com/edgefn/edgefn v0.0.0\n\n"+
		"// The SDK (github.com/edgefn/edgefn/sandbox/guest), written by edgefn new:\nreplace github.com/edgefn/edgefn => %s\n", name, replace))
	return nil
}
