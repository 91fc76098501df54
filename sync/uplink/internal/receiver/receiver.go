package receiver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Line is one decoded NDJSON line.
type Line struct {
	ID         string          `json:"id"`
	Seq        uint64          `json:"seq"`
	Gateway    string          `json:"gateway"`
	Function   string          `json:"function"`
	Version    int             `json:"version"`
	Source     string          `json:"source"`
	Subject    string          `json:"subject"`
	Time       string          `json:"time"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	PayloadB64 []byte          `json:"payload_b64,omitempty"`
}

// Request is what the receiver saw of one POST and what it answered.
type Request struct {
	Key    string // Idempotency-Key
	Header http.Header
	Lines  int
	First  uint64 // first seq in the batch
	Status int
}

// Receiver is a running test cloud. All methods are safe for concurrent use.
type Receiver struct {
	t    testing.TB
	tls  *tls.Config
	addr string
	on   func([]Line)

	mu       sync.Mutex
	srv      *http.Server
	lines    []Line
	seen     map[string]int
	requests []Request
	status   int    // non-zero: answer every request with it
	retryAft string // Retry-After sent with status
	failNext int    // answer that many requests with status, then accept
	accept   bool   // with status: record the lines before failing (lost response)
	stall    chan struct{}
	reject   map[string]int // id -> status for any batch containing it
	changed  chan struct{}
}

// Option configures Start.
type Option func(*Receiver)

// WithTLS serves HTTPS with cfg (which must hold the server certificate).
func WithTLS(cfg *tls.Config) Option { return func(r *Receiver) { r.tls = cfg } }

// OnRecord calls f with each accepted request's lines as they are recorded
// (under the receiver's lock: f must be quick and must not call back).
func OnRecord(f func([]Line)) Option { return func(r *Receiver) { r.on = f } }

// Start listens on a free loopback port and serves until the test ends.
func Start(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := &Receiver{t: t, seen: map[string]int{}, reject: map[string]int{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("receiver: listen: %v", err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() {
		r.mu.Lock()
		srv := r.srv
		r.srv = nil
		if r.stall != nil {
			close(r.stall)
			r.stall = nil
		}
		r.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
	})
	return r
}

func (r *Receiver) serve(ln net.Listener) {
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // TLS handshake failures are expected in tests
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// URL is the address to POST to.
func (r *Receiver) URL() string {
	if r.tls != nil {
		return "https://" + r.addr + "/ingest"
	}
	return "http://" + r.addr + "/ingest"
}

// Down closes the listener and every connection: clients get "connection
// refused" until Up.
func (r *Receiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address.
func (r *Receiver) Up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", r.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port lingers briefly after Close
	}
	if err != nil {
		r.t.Fatalf("receiver: listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// Fail answers every request with status (and Retry-After if not empty)
// until OK. With accept, the lines are recorded first, as if the cloud
// stored the batch and the response was lost.
func (r *Receiver) Fail(status int, retryAfter string, accept bool) {
	r.mu.Lock()
	r.status, r.retryAft, r.accept, r.failNext = status, retryAfter, accept, 0
	r.mu.Unlock()
}

// FailNext answers the next n requests with status, then accepts again.
func (r *Receiver) FailNext(n, status int, retryAfter string) {
	r.mu.Lock()
	r.status, r.retryAft, r.accept, r.failNext = status, retryAfter, false, n
	r.mu.Unlock()
}

// Stall makes requests hang (until OK, or the client gives up).
func (r *Receiver) Stall() {
	r.mu.Lock()
	if r.stall == nil {
		r.stall = make(chan struct{})
	}
	r.mu.Unlock()
}

// OK ends Fail and Stall: requests are accepted again.
func (r *Receiver) OK() {
	r.mu.Lock()
	r.status, r.failNext, r.accept = 0, 0, false
	if r.stall != nil {
		close(r.stall)
		r.stall = nil
	}
	r.mu.Unlock()
}

// Reject answers status to every batch that contains the record id.
func (r *Receiver) Reject(id string, status int) {
	r.mu.Lock()
	r.reject[id] = status
	r.mu.Unlock()
}

// Lines returns every accepted line in arrival order, duplicates included.
func (r *Receiver) Lines() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.lines...)
}

// LinesSince returns the accepted lines from the i-th on (Lines()[i:]),
// so a poller copies only what is new.
func (r *Receiver) LinesSince(i int) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.lines[min(i, len(r.lines)):]...)
}

// Unique returns how many distinct ids were accepted.
func (r *Receiver) Unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Has reports whether the id was accepted at least once.
func (r *Receiver) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id] > 0
}

// Requests returns every request seen, in order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Changed returns a channel closed at the next request.
func (r *Receiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// WaitFor waits until cond holds, re-checking after every request and at
// least every 50ms, and fails the test after timeout.
func (r *Receiver) WaitFor(timeout time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.Changed():
		case <-tick.C:
		case <-deadline.C:
			r.t.Fatalf("receiver: timed out after %v waiting for %s (%d unique ids, %d requests)", timeout, what, r.Unique(), len(r.Requests()))
		}
	}
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	lines, err := decode(req)
	r.mu.Lock()
	rq := Request{Key: req.Header.Get("Idempotency-Key"), Header: req.Header.Clone(), Lines: len(lines)}
	if len(lines) > 0 {
		rq.First = lines[0].Seq
	}
	status, body := http.StatusOK, "ok"
	var retryAfter string
	switch {
	case err != nil:
		status, body = http.StatusBadRequest, err.Error()
	case req.Method != http.MethodPost:
		status, body = http.StatusMethodNotAllowed, "POST only"
	default:
		for _, l := range lines {
			if s, ok := r.reject[l.ID]; ok {
				status, body = s, fmt.Sprintf(`{"error":"record %s refused"}`, l.ID)
				break
			}
		}
		if status == http.StatusOK && r.status != 0 {
			status, body, retryAfter = r.status, "failing on purpose", r.retryAft
			if r.accept {
				r.record(lines)
			}
			if r.failNext > 0 {
				r.failNext--
				if r.failNext == 0 {
					r.status = 0
				}
			}
		}
	}
	stall := r.stall
	if status == http.StatusOK && stall != nil {
		r.mu.Unlock()
		select {
		case <-stall:
		case <-req.Context().Done():
			return
		}
		r.mu.Lock()
	}
	if status == http.StatusOK {
		r.record(lines)
	}
	rq.Status = status
	r.requests = append(r.requests, rq)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// record must be called with r.mu held.
func (r *Receiver) record(lines []Line) {
	r.lines = append(r.lines, lines...)
	if r.on != nil {
		r.on(lines)
	}
	for _, l := range lines {
		r.seen[l.ID]++
	}
}

func decode(req *http.Request) ([]Line, error) {
	if ce := req.Header.Get("Content-Encoding"); ce != "gzip" {
		return nil, fmt.Errorf("Content-Encoding %q, want gzip", ce)
	}
	zr, err := gzip.NewReader(req.Body)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	var lines []Line
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var l Line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if l.ID != l.Gateway+":"+strconv.FormatUint(l.Seq, 10) {
			return nil, fmt.Errorf("line %d: id %q does not match gateway %q and seq %d", n, l.ID, l.Gateway, l.Seq)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
			return nil, fmt.Errorf("line %d: time: %w", n, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return lines, nil
}
