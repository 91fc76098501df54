package console

import (
	"testing"
	"time"
)

// Sessions expire, end on sign-out, and stay bounded: signing in past the
// bound ends the session closest to expiring.
func TestSessions(t *testing.T) {
	s := newSessions(time.Hour, 3)
	t0 := time.Unix(1_800_000_000, 0)
	a := s.create(t0)
	b := s.create(t0.Add(time.Minute))
	c := s.create(t0.Add(2 * time.Minute))
	if !s.valid(a, t0.Add(59*time.Minute)) || s.valid(a, t0.Add(time.Hour)) {
		t.Error("a session is valid for its TTL and not after")
	}
	if s.valid("", t0) || s.valid(a+"x", t0) {
		t.Error("an unknown id is valid")
	}
	d := s.create(t0.Add(3 * time.Minute)) // full: a, closest to expiring, ends
	e := s.create(t0.Add(4 * time.Minute)) // then b
	now := t0.Add(5 * time.Minute)
	if s.valid(a, now) || s.valid(b, now) || !s.valid(c, now) || !s.valid(d, now) || !s.valid(e, now) {
		t.Errorf("after the bound: b %v c %v d %v e %v, want a and b ended", s.valid(b, now), s.valid(c, now), s.valid(d, now), s.valid(e, now))
	}
	if len(s.exp) != 3 {
		t.Errorf("%d sessions kept, bound 3", len(s.exp))
	}
	s.end(c)
	if s.valid(c, now) {
		t.Error("a session is valid after sign-out")
	}
}

// next= after sign-in stays on this site.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/functions/a?x=1":  "/functions/a?x=1",
		"":                  "/",
		"https://evil.test": "/",
		"//evil.test/":      "/",
		"/\\evil.test":      "/",
		"javascript:alert":  "/",
		"/signin?next=/":    "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
