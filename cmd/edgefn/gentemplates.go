//go:build ignore

// gentemplates copies the function examples (examples/*) into templates/,
// the files `edgefn new` embeds: every file except built modules and
// node_modules, with .go files renamed .go.tmpl so the Go tool does not
// build them as a package. Run it with `go generate ./cmd/edgefn`.
package main

import (
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// langs maps each --lang of edgefn new to its example; new.go has the same
// table.
var langs = map[string]string{
	"go":   "go-temp-alert",
	"c":    "c-command",
	"rust": "rust-reactor",
	"as":   "as-reactor",
	"wat":  "wat-minimal",
}

func main() {
	if err := os.RemoveAll("templates"); err != nil {
		log.Fatal(err)
	}
	for lang, ex := range langs {
		src := filepath.Join("..", "..", "examples", ex)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if d.IsDir() {
				if d.Name() == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(rel, ".wasm") || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			if strings.HasSuffix(rel, ".go") {
				rel += ".tmpl"
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			dst := filepath.Join("templates", lang, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			log.Fatal(err)
		}
	}
}
