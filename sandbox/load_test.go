package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgefn/edgefn"
)

func TestLoadRejectsBadModules(t *testing.T) {
	r := newRuntime(t, Config{})
	cases := []struct {
		name string
		wasm []byte
		want []string
	}{
		{"bad", fixture(t, "bad"), []string{
			`missing export "edgefn_handle"`,
			"unknown import foo.bar",
			"memory minimum 64 MiB over cap 8 MiB",
		}},
		{"badsig", fixture(t, "badsig"), []string{"emit"}},
		{"garbage", []byte("\x00asm\x01\x00\x00\x00\x01\xff"), []string{"malformed"}},
		{"empty", nil, []string{"malformed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Load(context.Background(), testSpec(c.name), c.wasm)
			if err == nil {
				t.Fatal("loaded a bad module")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadRejectsBadSpec(t *testing.T) {
	r := newRuntime(t, Config{MaxMemory: 64 * edgefn.MiB})
	s := testSpec("trivial")
	s.Limits.Memory = 128 * edgefn.MiB
	s.Limits.Concurrency = 0
	_, err := r.Load(context.Background(), s, fixture(t, "trivial"))
	if err == nil || !strings.Contains(err.Error(), "limits.memory") || !strings.Contains(err.Error(), "limits.concurrency") {
		t.Fatalf("want both limit errors, got %v", err)
	}

	// Every limit but max_publishes must be positive; max_publishes 0 (no
	// publishes) is fine, -1 is not.
	s = testSpec("trivial")
	s.Limits = edgefn.Limits{Memory: s.Limits.Memory}
	_, err = r.Load(context.Background(), s, fixture(t, "trivial"))
	for _, f := range edgefn.LimitFields {
		named := err != nil && strings.Contains(err.Error(), "limits."+f.Key+" ")
		if want := f.Key != "memory" && f.Key != "max_publishes"; named != want {
			t.Errorf("all limits 0 but memory: error names limits.%s: %v, want %v (%v)", f.Key, named, want, err)
		}
	}
	s = testSpec("trivial")
	s.Limits.MaxPublishes = -1
	if _, err = r.Load(context.Background(), s, fixture(t, "trivial")); err == nil || !strings.Contains(err.Error(), "limits.max_publishes -1: must not be negative") {
		t.Errorf("max_publishes -1: %v", err)
	}
}

func TestShapes(t *testing.T) {
	r := newRuntime(t, Config{})
	if s := load(t, r, "trivial", nil).Shape(); s != ShapeReactor {
		t.Errorf("trivial: %s", s)
	}
	if s := load(t, r, "cmd", nil).Shape(); s != ShapeCommand {
		t.Errorf("cmd: %s", s)
	}
	f := load(t, r, "trivial", nil)
	_ = f.Close(context.Background())
	res := f.Invoke(context.Background(), event(""))
	var fl *edgefn.Failure
	if !errors.As(res.Err, &fl) || fl.Reason != edgefn.ReasonInternal {
		t.Fatalf("invoke after close: %v", res.Err)
	}
}
