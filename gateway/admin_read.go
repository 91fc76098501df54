package gateway

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/outbox"
)

// The read side of the admin API, under /v1 with the same bearer token:
//
//	GET /v1/functions/{name}/logs?since=&limit=&after=  log ring of a function
//	GET /v1/usage?since=                                  metering per function
//	GET /v1/outbox?dead_letters=N                         backlog, drops, dead letters

// readRoutes registers the read-side admin routes (logs, usage, outbox).
func (g *Host) readRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/functions/{name}/logs", g.handleLogs)
	mux.HandleFunc("GET /v1/usage", g.handleUsage)
	mux.HandleFunc("GET /v1/outbox", g.handleOutbox)
}

// Query bounds of the read routes.
const (
	defaultLogLimit   = 200
	maxLogLimit       = 5000
	defaultDeadLimit  = 100
	maxDeadLimit      = 10000
	defaultUsageSince = 24 * time.Hour
)

// LogsResponse is the answer of GET /v1/functions/{name}/logs.
type LogsResponse struct {
	Function string     `json:"function"`
	Entries  []LogEntry `json:"entries"`
	// Last is the id of the newest entry returned, or the after= given when
	// there is none: pass it back as after= to follow the log.
	Last int64 `json:"last"`
}

// LogEntry is one line of a function's log ring: a line it logged, or the
// failure of an invocation (Reason set).
type LogEntry struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	EventID string    `json:"event_id,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// parseSince reads since= as a duration back from now ("1h"), an RFC 3339
// time, or unix milliseconds; empty means def back from now (def 0: the
// beginning).
func parseSince(s string, def time.Duration, now time.Time) (time.Time, error) {
	if s == "" {
		if def == 0 {
			return time.Time{}, nil
		}
		return now.Add(-def), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("since=%q: want a duration back from now (1h, 30m), an RFC 3339 time or unix milliseconds", s)
}

func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

func (g *Host) handleLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	since, err := parseSince(r.URL.Query().Get("since"), 0, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := intParam(r, "limit", defaultLogLimit, 1, maxLogLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	after, err := intParam(r, "after", 0, 0, 1<<62)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ents, err := g.store.Logs(r.Context(), name, since, int(limit))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	g.mu.RLock()
	_, known := g.fns[name]
	g.mu.RUnlock()
	if !known && len(ents) == 0 && after == 0 {
		writeError(w, http.StatusNotFound, &NotFoundError{What: fmt.Sprintf("function %q (and no logs kept for it)", name)})
		return
	}
	resp := LogsResponse{Function: name, Entries: []LogEntry{}, Last: after}
	for _, e := range ents {
		if e.ID <= after {
			continue
		}
		resp.Entries = append(resp.Entries, logEntry(e))
		resp.Last = e.ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func logEntry(e outbox.LogEntry) LogEntry {
	return LogEntry{ID: e.ID, Time: e.Time, Level: e.Level.String(), Message: e.Message, EventID: e.EventID, Reason: string(e.Reason)}
}

// UsageResponse is the answer of GET /v1/usage.
type UsageResponse struct {
	Since     time.Time       `json:"since"`
	Functions []FunctionUsage `json:"functions"`
}

// FunctionUsage is one function's metering from the kept invocation
// records.
type FunctionUsage struct {
	Function       string                  `json:"function"`
	Invocations    int64                   `json:"invocations"`
	Errors         int64                   `json:"errors"`
	ErrorsByReason map[edgefn.Reason]int64 `json:"errors_by_reason"`
	TotalDuration  time.Duration           `json:"total_duration_ns"`
	P99Duration    time.Duration           `json:"p99_duration_ns"`
	GBSeconds      float64                 `json:"gb_seconds"`
	Cold           int64                   `json:"cold"`
	Warm           int64                   `json:"warm"`
}

func (g *Host) handleUsage(w http.ResponseWriter, r *http.Request) {
	since, err := parseSince(r.URL.Query().Get("since"), defaultUsageSince, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	us, err := g.store.Usage(r.Context(), since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	resp := UsageResponse{Since: since, Functions: make([]FunctionUsage, 0, len(us))}
	for _, u := range us {
		resp.Functions = append(resp.Functions, FunctionUsage{
			Function: u.Function, Invocations: u.Invocations, Errors: u.Errors, ErrorsByReason: u.ErrorsByReason,
			TotalDuration: u.TotalDuration, P99Duration: u.P99Duration, GBSeconds: u.GBSeconds, Cold: u.Cold, Warm: u.Warm,
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// OutboxResponse is the answer of GET /v1/outbox.
type OutboxResponse struct {
	Depth       int64              `json:"depth"`
	Bytes       int64              `json:"bytes"`
	MaxBytes    int64              `json:"max_bytes"`
	OldestAge   time.Duration      `json:"oldest_age_ns"`
	LastSeq     uint64             `json:"last_seq"`
	Drops       map[string]int64   `json:"drops"`
	DeadCount   int64              `json:"dead_letter_count"`
	Invocations int64              `json:"invocation_records"`
	FileBytes   int64              `json:"file_bytes"`
	Functions   map[string]Backlog `json:"functions"`
	DeadLetters []DeadLetter       `json:"dead_letters"`
}

// Backlog is one function's pending records in the outbox.
type Backlog struct {
	Depth int64 `json:"depth"`
	Bytes int64 `json:"bytes"`
}

// DeadLetter is a record the cloud refused for good.
type DeadLetter struct {
	ID            string    `json:"id"`
	Function      string    `json:"function"`
	Version       int       `json:"version"`
	Source        string    `json:"source"`
	Subject       string    `json:"subject"`
	Time          time.Time `json:"time"`
	Payload       string    `json:"payload,omitempty"`
	PayloadBase64 string    `json:"payload_b64,omitempty"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
}

func (g *Host) handleOutbox(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "dead_letters", defaultDeadLimit, 0, maxDeadLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	st, err := g.store.Stats(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	resp := OutboxResponse{
		Depth: st.Depth, Bytes: st.Bytes, MaxBytes: st.MaxBytes, OldestAge: st.OldestAge, LastSeq: st.LastSeq,
		Drops: st.Drops, DeadCount: st.DeadLetters, Invocations: st.Invocations, FileBytes: st.FileBytes,
		Functions: map[string]Backlog{}, DeadLetters: []DeadLetter{},
	}
	for name, b := range st.Functions {
		resp.Functions[name] = Backlog{Depth: b.Depth, Bytes: b.Bytes}
	}
	if limit > 0 {
		dls, err := g.store.DeadLetters(r.Context(), int(limit))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		for _, d := range dls {
			dl := DeadLetter{ID: d.ID(), Function: d.Function, Version: d.Version, Source: string(d.Source),
				Subject: d.Subject, Time: d.Time, Reason: d.Reason, At: d.At}
			if utf8.Valid(d.Payload) {
				dl.Payload = string(d.Payload)
			} else {
				dl.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
			}
			resp.DeadLetters = append(resp.DeadLetters, dl)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
