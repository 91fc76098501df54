package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHandlerLimitsPerMessageAndFunction(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), Options{Burst: 2, Interval: time.Hour})
	log := slog.New(h)
	for i := 0; i < 100; i++ {
		log.Warn("queue full", "function", "a", "i", i)
		log.Warn("queue full", "function", "b", "i", i)
		log.With("function", "c").Warn("queue full", "i", i)
		log.Info("routine", "i", i)
	}
	out := buf.String()
	count := func(s string) int { return strings.Count(out, s) }
	for _, fn := range []string{"function=a", "function=b", "function=c"} {
		if n := count(fn); n != 2 {
			t.Errorf("%s: %d warnings passed, want the burst of 2\n%s", fn, n, out)
		}
	}
	if n := count("msg=routine"); n != 100 {
		t.Errorf("info records are not limited: %d of 100 passed", n)
	}
}

func TestHandlerReportsWhatItHeldBack(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(slog.NewTextHandler(&buf, nil), Options{Burst: 1, Interval: time.Minute}))
	t0 := time.Now()
	for i := 0; i < 10; i++ {
		r := slog.NewRecord(t0.Add(time.Duration(i)*time.Second), slog.LevelError, "commit failed", 0)
		_ = log.Handler().Handle(t.Context(), r)
	}
	r := slog.NewRecord(t0.Add(2*time.Minute), slog.LevelError, "commit failed", 0)
	_ = log.Handler().Handle(t.Context(), r)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=9") {
		t.Fatalf("want the first record, then one with suppressed=9 in the next interval:\n%s", buf.String())
	}
}

func TestHandlerKeysAreBounded(t *testing.T) {
	h := New(slog.DiscardHandler, Options{})
	log := slog.New(h)
	for i := 0; i < 10*maxKeys; i++ {
		log.Warn("x", "function", i)
	}
	if n := len(h.state.windows); n > maxKeys {
		t.Fatalf("%d windows kept, bound %d", n, maxKeys)
	}
}

func TestHandlerMessagePrefix(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(slog.NewTextHandler(&buf, nil), Options{Burst: 1, Interval: time.Hour, MessagePrefix: 24}))
	for i := 0; i < 50; i++ {
		log.Warn(fmt.Sprintf("http: TLS handshake error from 10.0.0.9:%d: EOF", 50000+i))
	}
	if n := strings.Count(buf.String(), "handshake"); n != 1 {
		t.Fatalf("%d of 50 messages differing after the prefix passed, want 1", n)
	}
}
