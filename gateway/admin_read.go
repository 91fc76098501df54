package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/sync/outbox"
)

// The read side of the admin API, under /v1 with the same bearer token:
//
//	GET /v1/functions/{name}/logs?since=&limit=&after=  log ring of a function
//	GET /v1/usage?since=                                  metering per function
//	GET /v1/outbox?dead_letters=N                         backlog, drops, dead letters
//	GET /v1/outbox/records?function=F&n=N                 pending records, decoded

// readRoutes registers the read-side admin routes (logs, usage, outbox).
func (g *Host) readRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/functions/{name}/logs", g.handleLogs)
	mux.HandleFunc("GET /v1/usage", g.handleUsage)
	mux.HandleFunc("GET /v1/outbox", g.handleOutbox)
	mux.HandleFunc("GET /v1/outbox/records", g.handlePendingRecords)
}

// Query bounds of the read routes.
const (
	defaultLogLimit   = 200
	maxLogLimit       = 5000
	defaultDeadLimit  = 100
	maxDeadLimit      = 10000
	defaultUsageSince = 24 * time.Hour
)

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
	resp := api.Logs{Function: name, Last: after}
	for _, e := range ents {
		if e.ID <= after {
			continue
		}
		resp.Entries = append(resp.Entries, logEntry(e))
		resp.Last = e.ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func logEntry(e outbox.LogEntry) api.LogEntry {
	return api.LogEntry{ID: e.ID, Time: e.Time, Level: e.Level.String(), Message: e.Message, EventID: e.EventID, Reason: string(e.Reason)}
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
	resp := api.Usage{Since: since}
	for _, u := range us {
		resp.Functions = append(resp.Functions, api.FunctionUsage{
			Function: u.Function, Invocations: u.Invocations, Errors: u.Errors, ErrorsByReason: reasonCounts(u.ErrorsByReason),
			TotalDurationMS: api.Millis(u.TotalDuration), P99DurationMS: api.Millis(u.P99Duration), GBSeconds: u.GBSeconds, Cold: u.Cold, Warm: u.Warm,
		})
	}
	writeJSON(w, http.StatusOK, resp)
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
	resp := outboxWire(st)
	if limit > 0 {
		dls, err := g.store.DeadLetters(r.Context(), int(limit))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		for _, d := range dls {
			resp.DeadLetters = append(resp.DeadLetters, api.DeadLetter{RecordHead: recordHead(&d.Record),
				Data: api.TextData(d.Payload), Reason: d.Reason, At: d.At})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// outboxWire is the outbox's state on the wire (without dead letters).
func outboxWire(st outbox.Stats) *api.Outbox {
	o := &api.Outbox{
		Depth: st.Depth, Bytes: st.Bytes, MaxBytes: st.MaxBytes, OldestAgeMS: st.OldestAge.Milliseconds(), LastSeq: st.LastSeq,
		DeadLetterCount: st.DeadLetters, InvocationRecords: st.Invocations, FileBytes: st.FileBytes, Commits: st.Commits,
	}
	for reason, n := range st.Drops {
		if o.Drops == nil {
			o.Drops = map[string]int64{}
		}
		o.Drops[reason] = n
	}
	for name, b := range st.Functions {
		if o.Functions == nil {
			o.Functions = map[string]api.Backlog{}
		}
		o.Functions[name] = api.Backlog{Depth: b.Depth, Bytes: b.Bytes}
	}
	return o
}

// recordHead is where r comes from, on the wire.
func recordHead(r *edgefn.Record) api.RecordHead {
	return api.RecordHead{ID: r.ID(), Function: r.Function, Version: r.Version, Source: string(r.Source), Subject: r.Subject, Time: r.Time}
}

// handlePendingRecords is GET /v1/outbox/records?function=F&n=N: the
// oldest N records waiting for the uplink (of function F when given),
// their payloads decoded, at most api.MaxPeek records and api.MaxPeekBytes
// of payload.
func (g *Host) handlePendingRecords(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", api.DefaultPeek, 1, api.MaxPeek)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	fn := r.URL.Query().Get("function")
	if fn != "" {
		if err := checkName(fn); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("function=: %w", err))
			return
		}
	}
	st, err := g.store.Stats(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	recs, err := g.store.PendingOf(r.Context(), fn, int(n), api.MaxPeekBytes)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	resp := api.PendingRecords{Depth: st.Depth}
	if fn != "" {
		resp.Depth = st.Functions[fn].Depth
	}
	for i := range recs {
		rec := &recs[i]
		resp.Records = append(resp.Records, api.PendingRecord{RecordHead: recordHead(rec), Size: len(rec.Payload), Data: api.DecodedData(rec.Payload)})
	}
	resp.More = int64(len(resp.Records)) < resp.Depth
	writeJSON(w, http.StatusOK, resp)
}
