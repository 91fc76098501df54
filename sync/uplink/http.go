package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/edgefn/edgefn"
)

// idlePoll is how often an idle uplink looks at the Source even without a
// Notify, in case a notification was missed.
const idlePoll = 5 * time.Second

// confirmGrace bounds the Confirm after a delivered batch when the context
// is already cancelled, so a shutdown does not cause needless resends.
const confirmGrace = 5 * time.Second

// HTTP is an uplink that POSTs batches of records as gzip NDJSON. Create it
// with NewHTTP; run it with Run.
type HTTP struct {
	cfg    HTTPConfig
	src    Source
	log    *slog.Logger
	client *http.Client
	st     *tracker

	lanes *lanes
	// down is set when a batch needed retries: the backlog built up
	// meanwhile gets a new drain point.
	down bool

	enc  encoder
	line []byte
	body bytes.Buffer
	zw   *gzip.Writer
}

var _ Link = (*HTTP)(nil)

// NewHTTP validates cfg, loads its TLS files and returns an HTTP uplink
// draining src. It does no network I/O; an unreachable cloud shows up in
// State once Run starts. A nil logger discards logs.
func NewHTTP(cfg HTTPConfig, src Source, logger *slog.Logger) (*HTTP, error) {
	cfg, logger, err := prepare("http", src, cfg, logger)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: min(cfg.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: min(cfg.Timeout, 10*time.Second),
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if strings.HasPrefix(cfg.URL, "https:") {
		tc, err := linkTLS("http", cfg.TLS, logger)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // a valid level: no error
	return &HTTP{
		cfg:    cfg,
		src:    src,
		log:    logger,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		st:     newTracker(cfg.Name, "http"),
		zw:     zw,
		lanes:  newLanes(src, cfg.StrictOrder),
	}, nil
}

// State returns a snapshot of the uplink's health.
func (h *HTTP) State() State { return h.st.snapshot(time.Now()) }

// Run sends batches until ctx is cancelled, then returns nil. It starts from
// the oldest unconfirmed record, so after a crash it resumes where the
// cloud's confirmations stopped. Run must not be called twice at once.
func (h *HTTP) Run(ctx context.Context) error {
	h.st.running(true)
	defer h.st.running(false)
	defer h.client.CloseIdleConnections()
	notify := h.src.Notify()
	failures := 0
	reset := true
	for ctx.Err() == nil {
		if reset {
			if err := h.lanes.reset(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				failures++
				h.st.failure(time.Now(), fmt.Errorf("read outbox: %w", err), false)
				sleep(ctx, h.cfg.Backoff.delay(failures))
				continue
			}
			reset = false
		}
		batch, lane, err := h.collect(ctx, notify)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			h.st.failure(time.Now(), fmt.Errorf("read outbox: %w", err), false)
			h.log.Error("read outbox", "err", err)
			sleep(ctx, h.cfg.Backoff.delay(failures))
			continue
		}
		failures = 0
		h.down = false
		if err := h.deliver(ctx, batch); err != nil {
			break // only ctx ends deliver
		}
		h.lanes.advance(lane, batch[len(batch)-1].Seq)
		reset = h.down
		h.st.held(0, time.Time{})
	}
	return nil
}

// collect returns the next batch and its lane: it waits for records
// (waking on Notify), then lingers while the batch is not full, topping up
// from the same lane; it does not linger while the other lane waits.
func (h *HTTP) collect(ctx context.Context, notify <-chan struct{}) ([]edgefn.Record, int, error) {
	maxRec, maxBytes := h.cfg.Batch.MaxRecords, int(h.cfg.Batch.MaxBytes)
	var recs []edgefn.Record
	var lane int
	idle := time.NewTimer(idlePoll)
	defer idle.Stop()
	for {
		h.st.refreshBacklog(ctx, h.src, time.Now())
		var err error
		recs, lane, err = h.lanes.next(ctx, maxRec, maxBytes)
		if err != nil {
			return nil, 0, err
		}
		if len(recs) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-notify:
		case <-idle.C:
			idle.Reset(idlePoll)
		}
	}
	size := payloadBytes(recs)
	if h.cfg.Batch.Linger <= 0 || len(recs) < maxRec && h.lanes.othersWaiting(ctx, lane) {
		return recs, lane, nil
	}
	linger := time.NewTimer(h.cfg.Batch.Linger)
	defer linger.Stop()
	for last := false; !last && len(recs) < maxRec && size < maxBytes; {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-notify:
		case <-linger.C:
			last = true // top up once more, then send
		}
		more, err := h.lanes.read(ctx, lane, recs[len(recs)-1].Seq, maxRec-len(recs), maxBytes-size)
		if err != nil {
			break // send what we have; the next read reports the error
		}
		for _, r := range more {
			if size+len(r.Payload) > maxBytes {
				last = true // Pending's "at least one" would overfill this batch
				break
			}
			recs = append(recs, r)
			size += len(r.Payload)
		}
	}
	return recs, lane, nil
}

func payloadBytes(recs []edgefn.Record) int {
	n := 0
	for i := range recs {
		n += len(recs[i].Payload)
	}
	return n
}

// outcome is what the cloud said about one POST.
type outcome struct {
	status     int
	excerpt    string
	retryAfter time.Duration
	hasRA      bool
	err        error // transport error or timeout
}

// deliver sends one batch until the cloud confirms or refuses it; it returns
// an error only when ctx ends first. A 413 splits the batch in halves.
func (h *HTTP) deliver(ctx context.Context, batch []edgefn.Record) error {
	h.st.held(len(batch), batch[0].Time)
	h.encode(batch)
	body := slices.Clone(h.body.Bytes()) // h.body is reused by a split
	first, last := batch[0], batch[len(batch)-1]
	key := first.Gateway + ":" + strconv.FormatUint(first.Seq, 10) + "-" + strconv.FormatUint(last.Seq, 10)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		o := h.post(ctx, body, key)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		switch {
		case o.err == nil && o.status >= 200 && o.status < 300:
			if err := h.sourceOp(ctx, "confirm", func(ctx context.Context) error { return h.src.Confirm(ctx, seqsOf(batch)) }); err != nil {
				return err
			}
			if attempt > 1 {
				h.log.Info("cloud reachable again", "url", h.cfg.URL, "attempts", attempt)
			}
			h.st.success(now, len(batch))
			h.log.Debug("batch confirmed", "records", len(batch), "first", first.Seq, "last", last.Seq, "took", now.Sub(start))
			return nil
		case o.err == nil && o.status == http.StatusRequestEntityTooLarge && len(batch) > 1:
			h.log.Warn("batch too large for the cloud, splitting", "records", len(batch), "bytes", len(body))
			mid := len(batch) / 2
			if err := h.deliver(ctx, batch[:mid]); err != nil {
				return err
			}
			return h.deliver(ctx, batch[mid:])
		case o.err == nil && !h.retryable(o.status):
			reason := fmt.Sprintf("HTTP %d %s: %s", o.status, http.StatusText(o.status), o.excerpt)
			if err := h.sourceOp(ctx, "dead-letter", func(ctx context.Context) error { return h.src.DeadLetter(ctx, seqsOf(batch), reason) }); err != nil {
				return err
			}
			what := fmt.Sprintf("records %d-%d dead-lettered: %s", first.Seq, last.Seq, reason)
			h.st.deadLettered(len(batch), what)
			h.st.failure(now, errors.New(what), false)
			h.log.Error("cloud refused batch, dead-lettered", "records", len(batch), "first", first.Seq, "last", last.Seq, "reason", reason)
			return nil
		}
		var err error
		if o.err != nil {
			err = o.err
		} else {
			err = fmt.Errorf("HTTP %d %s: %s", o.status, http.StatusText(o.status), o.excerpt)
		}
		wait := h.cfg.Backoff.delay(attempt)
		if o.hasRA {
			wait = max(min(o.retryAfter, h.cfg.Backoff.MaxRetryAfter), h.cfg.Backoff.Min)
		}
		if attempt == 1 {
			h.log.Warn("cloud unreachable, retrying", "err", err, "retry_in", wait)
		} else {
			h.log.Debug("retrying", "err", err, "attempt", attempt, "retry_in", wait)
		}
		h.st.failure(now, err, true)
		h.down = true
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// retryable reports whether a non-2xx status means "try again later"
// rather than "these records are refused".
func (h *HTTP) retryable(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return true
	case status >= 400 && status < 500:
		return slices.Contains(h.cfg.RetryOn, status)
	}
	return true // 1xx, unfollowed 3xx: not a verdict on the records
}

// post sends one request and reads the verdict.
func (h *HTTP) post(ctx context.Context, body []byte, key string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "edgefn-uplink")
	req.Header.Set("Idempotency-Key", key)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	if h.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.BearerToken)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		o.excerpt = excerpt(b)
		o.retryAfter, o.hasRA = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return o
}

// excerpt makes a response body fit on one log line.
func excerpt(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(b))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 256 {
		s = s[:256] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// encode writes the batch as gzip NDJSON into h.body.
func (h *HTTP) encode(batch []edgefn.Record) {
	h.body.Reset()
	h.zw.Reset(&h.body)
	for i := range batch {
		h.line = h.enc.appendRecord(h.line[:0], &batch[i])
		h.line = append(h.line, '\n')
		_, _ = h.zw.Write(h.line) // writes to a bytes.Buffer do not fail
	}
	_ = h.zw.Close()
}

// sourceOp runs a Confirm or DeadLetter, retrying with backoff while the
// Source fails. If ctx is already cancelled it still gets confirmGrace, so
// records the cloud took are not resent after a clean shutdown.
func (h *HTTP) sourceOp(ctx context.Context, what string, op func(context.Context) error) error {
	return retrySource(ctx, h.st, h.log, h.cfg.Backoff, what, op)
}

func retrySource(ctx context.Context, st *tracker, log *slog.Logger, b Backoff, what string, op func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmGrace)
		err := op(octx)
		cancel()
		if err == nil {
			return nil
		}
		st.failure(time.Now(), fmt.Errorf("outbox %s: %w", what, err), false)
		log.Error("outbox "+what, "err", err, "attempt", attempt)
		if !sleep(ctx, b.delay(attempt)) {
			return ctx.Err()
		}
	}
}

func seqsOf(batch []edgefn.Record) []uint64 {
	s := make([]uint64, len(batch))
	for i := range batch {
		s[i] = batch[i].Seq
	}
	return s
}
