package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRegistryVersionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	r, err := newRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := r.store("f", []byte("name: f\n"), []byte("\x00asm1"), versionMeta{Origin: "api"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.store("f", []byte("name: f\n"), []byte("\x00asm2"), versionMeta{Origin: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Version != 1 || m2.Version != 2 || m1.Hash == m2.Hash {
		t.Fatalf("versions %+v %+v", m1, m2)
	}
	if err := r.activate("f", 2); err != nil {
		t.Fatal(err)
	}
	r2, _ := newRegistry(dir)
	if v, _ := r2.active("f"); v != 2 {
		t.Errorf("active = %d", v)
	}
	sv, err := r2.load("f", 1)
	if err != nil || string(sv.Wasm) != "\x00asm1" {
		t.Fatalf("load = %v %v", sv, err)
	}
	names, _ := r2.names()
	if len(names) != 1 || names[0] != "f" {
		t.Errorf("names = %v", names)
	}
	// Tampered content is detected.
	if err := os.WriteFile(filepath.Join(dir, "functions", "f", "1", "module.wasm"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.load("f", 1); err == nil {
		t.Error("tampered version loaded")
	}
	for i := 0; i < 5; i++ {
		if _, err := r.store("f", []byte("name: f\n"), []byte{byte(i)}, versionMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := r.prune("f", 3)
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := r.versions("f")
	if len(gone) != 3 || len(vs) != 4 { // 7 versions: 3 newest + active v2 kept
		t.Errorf("pruned %v, left %v", gone, vs)
	}
}

// Every registry entry point refuses a name that is not a valid function
// name, whatever the caller: no path is built from it.
func TestRegistryRefusesInvalidNames(t *testing.T) {
	r, err := newRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../x", "..", "", "a/b", "/etc", "A", "a\x00"} {
		_, e1 := r.versions(name)
		_, e2 := r.store(name, []byte("m"), []byte("w"), versionMeta{})
		_, e3 := r.load(name, 1)
		_, e4 := r.active(name)
		e5 := r.activate(name, 1)
		e6 := r.remove(name)
		_, e7 := r.prune(name, 0)
		for i, err := range []error{e1, e2, e3, e4, e5, e6, e7} {
			if ne := (*NameError)(nil); !errors.As(err, &ne) {
				t.Errorf("%q: entry point %d: %v, want a *NameError", name, i+1, err)
			}
		}
	}
}
