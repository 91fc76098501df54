package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/examples"
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

func newCommand() *cli.Command {
	return &cli.Command{
		Name:      "new",
		Usage:     "write a new function project from a template",
		ArgsUsage: "NAME",
		Description: "Writes ./NAME/ (or --dir) with function.yaml, the source and a README, copied from\n" +
			"the matching example (go, c, rust, as = AssemblyScript, wat) and renamed to NAME, then\n" +
			"prints the line that builds it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "lang", Aliases: []string{"l"}, Usage: "go, c, rust, as or wat (required)"},
			&cli.StringFlag{Name: "dir", Usage: "directory to write (default ./NAME); must not exist or be empty"},
			&cli.StringFlag{Name: "sdk", EnvVars: []string{"EDGEFN_SRC"}, Usage: "go: a checkout of github.com/edgefn/edgefn for the SDK (a replace line in go.mod)"},
		},
		Action: newAction,
	}
}

func newAction(c *cli.Context) error {
	c, err := interleaved(c)
	if err != nil {
		return err
	}
	if err := wantArgs(c, 1, 1, "the function's NAME"); err != nil {
		return err
	}
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
	fmt.Fprintf(w, "wrote %s/ (%s): %s\n", dir, lang, strings.Join(paths, ", "))
	fmt.Fprintf(w, "build:\n  cd %s && %s\n", dir, buildLine(lang, name))
	fmt.Fprintf(w, "try it locally:\n  edgefn run %s/function.yaml --data '...'\n", dir)
	fmt.Fprintf(w, "deploy:\n  edgefn deploy %s/function.yaml\n", dir)
	if lang == "go" && c.String("sdk") == "" {
		fmt.Fprintf(w, "note: go.mod has a commented replace line for the SDK: point it at a checkout of\n"+
			"github.com/edgefn/edgefn (or pass --sdk DIR) until the module is published\n")
	}
	return nil
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
		replace := "// replace github.com/edgefn/edgefn => ../edgefn"
		if sdk != "" {
			abs, err := filepath.Abs(sdk)
			if err != nil {
				return nil, err
			}
			replace = "replace github.com/edgefn/edgefn => " + filepath.ToSlash(abs)
		}
		files["go.mod"] = []byte(fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire github.com/edgefn/edgefn v0.0.0\n\n"+
			"// The SDK (github.com/edgefn/edgefn/sandbox/guest) from a checkout:\n%s\n", name, replace))
	}
	if lang == "as" {
		files[path.Join(".gitignore")] = []byte("node_modules/\n*.wasm\n")
	}
	return files, nil
}

// buildLine is the command that builds the project in its directory.
func buildLine(lang, name string) string {
	switch lang {
	case "go":
		return "go mod tidy && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o " + name + ".wasm ."
	case "c":
		return "clang --target=wasm32-wasi --sysroot=/usr -O2 -fuse-ld=lld -Wl,--strip-all -o " + name + ".wasm convert.c"
	case "rust":
		return "rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C strip=symbols -o " + name + ".wasm lib.rs"
	case "as":
		return "npm ci && ./node_modules/.bin/asc assembly/index.ts --config asconfig.json --target release"
	default:
		return "wat2wasm -o " + name + ".wasm minimal.wat"
	}
}
