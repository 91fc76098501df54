package sse

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A stream outlives the server's WriteTimeout: each write pushes the
// deadline forward. The handler writes 12 events 25 ms apart (300 ms in
// all) under a 100 ms WriteTimeout; without the push the connection is cut
// after three or four.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	const events = 12
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w)
		if err != nil {
			t.Error(err)
			return
		}
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 1; i <= events; i++ {
			<-tick.C
			if err := s.Event("n", int64(i), map[string]int{"n": i}); err != nil {
				return
			}
		}
	}))
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			got = append(got, d)
		}
	}
	if len(got) != events || got[events-1] != `{"n":12}` {
		t.Errorf("read %d events (last %q), want %d: the stream was cut", len(got), got, events)
	}
}

// LastID takes Last-Event-ID (a reconnecting EventSource) before after=.
func TestLastID(t *testing.T) {
	r := httptest.NewRequest("GET", "/x?after=7", nil)
	if LastID(r) != 7 {
		t.Errorf("after=7: %d", LastID(r))
	}
	r.Header.Set("Last-Event-ID", "9")
	if LastID(r) != 9 {
		t.Errorf("Last-Event-ID 9: %d", LastID(r))
	}
	if LastID(httptest.NewRequest("GET", "/x?after=-1", nil)) != 0 {
		t.Error("a negative after= is not ignored")
	}
}
