package sandbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture reads a built guest from testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	return testutil.Fixture(t, "testdata", name+".wasm")
}

func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r
}

func testSpec(name string) Spec {
	l := edgefn.Limits{Memory: 8 * edgefn.MiB, Timeout: 100 * time.Millisecond}.WithDefaults(edgefn.DefaultLimits)
	return Spec{Name: name, Version: 1, Limits: l}
}

func load(t testing.TB, r *Runtime, fixtureName string, edit func(*Spec)) *Function {
	t.Helper()
	s := testSpec(fixtureName)
	if edit != nil {
		edit(&s)
	}
	f, err := r.Load(context.Background(), s, fixture(t, fixtureName))
	if err != nil {
		t.Fatalf("load %s: %v", fixtureName, err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

// loadAlone loads a fixture on a runtime of its own with the default
// Config: the start of most tests that need one function and no more.
func loadAlone(t testing.TB, fixtureName string, edit func(*Spec)) *Function {
	t.Helper()
	return load(t, newRuntime(t, Config{}), fixtureName, edit)
}

func event(payload string) edgefn.Event {
	return edgefn.Event{ID: "ev-1", Source: edgefn.SourceMQTT, Subject: "sensors/a/temp",
		Time: time.UnixMilli(1700000000123), Payload: []byte(payload), Meta: map[string]string{"qos": "1"}}
}

// wantFailure asserts the result failed with reason and returns the failure.
func wantFailure(t testing.TB, res *Result, reason edgefn.Reason) *edgefn.Failure {
	t.Helper()
	var f *edgefn.Failure
	if !errors.As(res.Err, &f) {
		t.Fatalf("want failure %s, got err %v", reason, res.Err)
	}
	if f.Reason != reason {
		t.Fatalf("want reason %s, got %s (%v)", reason, f.Reason, f)
	}
	if res.Effects != nil {
		t.Fatalf("failed invocation returned effects: %+v", res.Effects)
	}
	return f
}

func wantOK(t testing.TB, res *Result) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("want success, got %v (logs %+v)", res.Err, res.Logs)
	}
}

func logText(res *Result) string {
	var b strings.Builder
	for _, l := range res.Logs {
		b.WriteString(l.Message)
		b.WriteByte('\n')
	}
	return b.String()
}

// memKV is an in-memory KV; block, when set, makes Get wait on it.
type memKV struct {
	mu      sync.Mutex
	data    map[string]string
	block   chan struct{}
	active  int
	peak    int
	entered chan struct{}
}

func (k *memKV) Get(ctx context.Context, function, key string) ([]byte, bool, error) {
	k.mu.Lock()
	k.active++
	if k.active > k.peak {
		k.peak = k.active
	}
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.active--
		k.mu.Unlock()
	}()
	if k.block != nil {
		if k.entered != nil {
			k.entered <- struct{}{}
		}
		select {
		case <-k.block:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.data[function+"/"+key]
	return []byte(v), ok, nil
}

// pins is a GPIO with a fixed set of pins and levels.
type pins map[string]bool

func (p pins) Has(pin string) bool { _, ok := p[pin]; return ok }
func (p pins) Read(_ context.Context, pin string) (bool, error) {
	return p[pin], nil
}
