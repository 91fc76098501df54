package strictyaml

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

type inner struct {
	Size  edgefn.Size   `yaml:"size"`
	Every time.Duration `yaml:"every"`
}

type sample struct {
	Name   string            `yaml:"name"`
	Count  int               `yaml:"count"`
	QoS    uint8             `yaml:"qos"`
	On     bool              `yaml:"on"`
	Inner  inner             `yaml:"inner"`
	Ptr    *inner            `yaml:"ptr"`
	List   []string          `yaml:"list"`
	Items  []inner           `yaml:"items"`
	Env    map[string]string `yaml:"env"`
	Grid   [][]string        `yaml:"grid"`
	Hidden string            `yaml:"-"`
}

func TestDecode(t *testing.T) {
	src := `name: x
count: 3
qos: 1
on: yes
inner: {size: 8MiB, every: 30s}
ptr:
  size: 1KiB
list: one
items:
  - every: 1m
env: {A: "1"}
`
	var s sample
	d := Decode("f.yaml", []byte(src), &s)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if s.Name != "x" || s.Count != 3 || s.QoS != 1 || !s.On || s.Inner.Size != 8*edgefn.MiB || s.Inner.Every != 30*time.Second ||
		s.Ptr == nil || s.Ptr.Size != edgefn.KiB || len(s.List) != 1 || s.List[0] != "one" || len(s.Items) != 1 || s.Items[0].Every != time.Minute || s.Env["A"] != "1" {
		t.Errorf("decoded %+v", s)
	}
	if !d.Has("inner.size") || d.Has("inner.nothing") || d.Line("ptr.size") != 7 || d.Line("items[0].every") != 10 || d.Line("ptr.absent") != 6 {
		t.Errorf("lines: ptr.size %d, items[0].every %d, ptr.absent %d", d.Line("ptr.size"), d.Line("items[0].every"), d.Line("ptr.absent"))
	}
}

// Every problem is reported at once, each with its file:line and field.
func TestDecodeProblems(t *testing.T) {
	src := `nam: x
count: many
qos: 300
inner:
  size: 64MB
  every: soon
items: 3
name: a
name: b
on: maybe
`
	var s sample
	err := Decode("f.yaml", []byte(src), &s).Err()
	want := []string{
		`f.yaml:1: nam: unknown key "nam", did you mean "name"?`,
		`f.yaml:2: count: "many": expected a whole number`,
		`f.yaml:3: qos: "300": expected a whole number from 0 to 255`,
		`f.yaml:5: inner.size: "64MB": unknown unit "MB", use B, KiB, MiB or GiB`,
		`f.yaml:6: inner.every: "soon": not a duration`,
		`f.yaml:7: items: expected a list, got "3"`,
		`f.yaml:9: name: duplicate key "name"`,
		`f.yaml:10: on: "maybe": expected true or false`,
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\ndoes not contain %q", err, w)
		}
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("not an *Error: %T", err)
	}
}

func TestDecodeBroken(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name: [a\n", "f.yaml:1: invalid YAML"},
		{"- a\n", "f.yaml:1: expected a mapping of fields at the top level"},
		{"hidden: x\n", `unknown key "hidden"`},
		{strings.Repeat("y", 300) + ": 1\n", `… (300 bytes)`},
		{"items: &a [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}]\nlist: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n", `list[0]: expected a single value, got a list`},
	} {
		var s sample
		err := Decode("f.yaml", []byte(tc.src), &s).Err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.20q: error %v, want %q", tc.src, err, tc.want)
		}
	}
	if d := Decode("f.yaml", nil, &sample{}); !d.Empty() || d.Err() != nil {
		t.Errorf("empty file: %v", d.Err())
	}
}

// Aliases cannot make a small file decode to millions of values.
func TestDecodeAliasBomb(t *testing.T) {
	row := "list: &r [" + strings.TrimSuffix(strings.Repeat("x,", 1000), ",") + "]\n"
	grid := "grid: [" + strings.TrimSuffix(strings.Repeat("*r,", 1000), ",") + "]\n"
	var s sample
	err := Decode("f.yaml", []byte(row+grid), &s).Err()
	if err == nil || !strings.Contains(err.Error(), "more than 100000 values") {
		t.Errorf("error = %v", err)
	}
}

func TestReadFileTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte("name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p, &sample{})
	if err == nil || !strings.Contains(err.Error(), "big.yaml: 1048577 bytes: larger than the 1024 KiB") {
		t.Errorf("error = %v", err)
	}
	if err := Decode("f.yaml", make([]byte, MaxFileSize+1), &sample{}).Err(); err == nil {
		t.Error("Decode accepted more than MaxFileSize")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: x\ninner: {size: 8MiB}\nitems: [{every: 1s}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		d := Decode("f.yaml", data, &s)
		if err := d.Err(); err != nil && len(err.Error()) > 64<<10 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}
