package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options tune a Handler; zero fields take the defaults.
type Options struct {
	// Level is the lowest level limited (default slog.LevelWarn): records
	// below it pass untouched, they are off unless debugging.
	Level slog.Level
	// Burst is how many records of one key pass in each Interval
	// (default 5).
	Burst int
	// Interval is the window (default 10s).
	Interval time.Duration
	// Key is the attribute whose value, with the message, makes a key
	// (default "function"): one function's flood does not hide another's.
	Key string
	// MessagePrefix, when positive, keys on the message's first bytes only:
	// for messages that embed a varying detail (a peer's address).
	MessagePrefix int
}

// maxKeys bounds the windows kept: past it, all are forgotten at once (a
// message built with fmt.Sprintf must not grow the map without end).
const maxKeys = 1024

// Handler limits the records it passes to next, per key.
type Handler struct {
	next  slog.Handler
	opts  Options
	state *state
	// key is the Key attribute's value when it came through WithAttrs.
	key string
}

type state struct {
	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start      time.Time
	n          int
	suppressed int
}

// New returns a Handler passing records to next.
func New(next slog.Handler, opts Options) *Handler {
	if opts.Level == 0 {
		opts.Level = slog.LevelWarn
	}
	if opts.Burst <= 0 {
		opts.Burst = 5
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Key == "" {
		opts.Key = "function"
	}
	return &Handler{next: next, opts: opts, state: &state{windows: map[string]*window{}}}
}

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r to next unless its key is over its burst in this
// interval. The first record passed after some were held back carries
// suppressed=N.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.opts.Level {
		return h.next.Handle(ctx, r)
	}
	key := h.key
	if key == "" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == h.opts.Key {
				key = a.Value.String()
				return false
			}
			return true
		})
	}
	msg := r.Message
	if n := h.opts.MessagePrefix; n > 0 && len(msg) > n {
		msg = msg[:n]
	}
	key = r.Level.String() + "\x00" + msg + "\x00" + key
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	s := h.state
	s.mu.Lock()
	w := s.windows[key]
	if w == nil {
		if len(s.windows) >= maxKeys {
			s.windows = map[string]*window{}
		}
		w = &window{start: t}
		s.windows[key] = w
	}
	if t.Sub(w.start) >= h.opts.Interval {
		w.start, w.n = t, 0
	}
	w.n++
	if w.n > h.opts.Burst {
		w.suppressed++
		s.mu.Unlock()
		return nil
	}
	held := w.suppressed
	w.suppressed = 0
	s.mu.Unlock()
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", held))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a Handler sharing this one's windows.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == h.opts.Key {
			c.key = a.Value.String()
		}
	}
	return &c
}

// WithGroup returns a Handler sharing this one's windows.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
