package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// sessions is the server-side store of signed-in browsers: the SHA-256 of
// each session id (the cookie holds the id itself) and its expiry. It
// holds at most max sessions; signing in beyond that ends the one closest
// to expiring.
type sessions struct {
	ttl time.Duration
	max int

	mu  sync.Mutex
	exp map[[32]byte]time.Time
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, max: max, exp: map[[32]byte]time.Time{}}
}

// create starts a session and returns its id.
func (s *sessions) create(now time.Time) string {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.exp {
		if !now.Before(e) {
			delete(s.exp, k)
		}
	}
	for len(s.exp) >= s.max {
		var oldest [32]byte
		var first time.Time
		for k, e := range s.exp {
			if first.IsZero() || e.Before(first) {
				oldest, first = k, e
			}
		}
		delete(s.exp, oldest)
	}
	s.exp[sha256.Sum256([]byte(id))] = now.Add(s.ttl)
	return id
}

// valid reports whether id is a live session.
func (s *sessions) valid(id string, now time.Time) bool {
	if id == "" {
		return false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exp[k]
	if ok && !now.Before(e) {
		delete(s.exp, k)
		return false
	}
	return ok
}

// end forgets id.
func (s *sessions) end(id string) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.exp, k)
	s.mu.Unlock()
}
