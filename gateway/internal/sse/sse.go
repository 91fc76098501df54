package sse

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WriteWindow is how long one write of an event may take before the
// connection is given up (a stalled reader).
const WriteWindow = 30 * time.Second

// Heartbeat is how often a stream with nothing to say writes a comment, so
// proxies and the browser keep the connection and a gone reader is noticed.
const Heartbeat = 15 * time.Second

// Stream writes events to one client.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// Start answers with the event-stream headers and returns the stream.
func Start(w http.ResponseWriter) (*Stream, error) {
	s := &Stream{w: w, rc: http.NewResponseController(w)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if err := s.extend(); err != nil {
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	// Tell EventSource to wait 2 s before reconnecting.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil, err
	}
	return s, s.rc.Flush()
}

// extend pushes the write deadline forward; a server without one, or a
// ResponseWriter that cannot set it (httptest), is fine as it is.
func (s *Stream) extend() error {
	err := s.rc.SetWriteDeadline(time.Now().Add(WriteWindow))
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Event writes one event named name (empty: "message") whose data is v as
// JSON, with id when it is not zero.
func (s *Stream) Event(name string, id int64, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var b strings.Builder
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	if id != 0 {
		b.WriteString("id: " + strconv.FormatInt(id, 10) + "\n")
	}
	// JSON from encoding/json has no raw newline, so one data line is enough.
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return s.write(b.String())
}

// Comment writes a comment line, which the client ignores: a heartbeat.
func (s *Stream) Comment(text string) error {
	return s.write(": " + strings.ReplaceAll(text, "\n", " ") + "\n\n")
}

func (s *Stream) write(p string) error {
	if err := s.extend(); err != nil {
		return err
	}
	if _, err := fmt.Fprint(s.w, p); err != nil {
		return err
	}
	return s.rc.Flush()
}

// LastID is the id a reconnecting EventSource resumes after (the
// Last-Event-ID header), or the query parameter after=, or 0.
func LastID(r *http.Request) int64 {
	for _, s := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 0
}
