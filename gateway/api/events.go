package api

import (
	"bufio"
	"io"
	"strings"
)

// Event is one server-sent event (GET /v1/traffic, the console's log and
// traffic streams): its name ("message" when the server gave none), id
// and data (the lines of its data joined by newlines).
type Event struct {
	Name, ID, Data string
}

// maxEventLine bounds a line of a server-sent event stream.
const maxEventLine = 1 << 20

// ReadEvents reads a text/event-stream until it ends or fn returns an
// error (which it returns); comments (keep-alives) are skipped.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxEventLine)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if ev.Name == "" {
					ev.Name = "message"
				}
				ev.Data = strings.Join(data, "\n")
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = Event{}, data[:0]
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	return sc.Err()
}
