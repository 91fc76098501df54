package uplink_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testpki"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/sync/uplink/internal/receiver"
)

func newHTTP(t *testing.T, cfg uplink.HTTPConfig, src uplink.Source) *uplink.HTTP {
	t.Helper()
	if cfg.Backoff == (uplink.Backoff{}) {
		cfg.Backoff = fastBackoff
	}
	cfg.StrictOrder = strictOrder
	u, err := uplink.NewHTTP(cfg, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// httpCloud is the receiver package's test server.
type httpCloud struct{ r *receiver.Receiver }

func newHTTPCloud(t *testing.T) cloud { return &httpCloud{r: receiver.Start(t)} }

func (c *httpCloud) newUplink(t *testing.T, src uplink.Source) uplink.Link {
	u, err := uplink.NewHTTP(uplink.HTTPConfig{URL: c.r.URL(), Timeout: 2 * time.Second,
		Batch: uplink.Batch{MaxRecords: 50, Linger: 5 * time.Millisecond}, Backoff: fastBackoff, StrictOrder: strictOrder}, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}
func (c *httpCloud) down(*testing.T)        { c.r.Down() }
func (c *httpCloud) up(*testing.T)          { c.r.Up() }
func (c *httpCloud) lines() []receiver.Line { return c.r.Lines() }
func (c *httpCloud) linesSince(i int) []receiver.Line {
	return c.r.LinesSince(i)
}

func TestHTTPWireFormat(t *testing.T) {
	r := receiver.Start(t)
	src := newSource(t)
	jsonSeq := src.add(t, "temp", []byte("{\n  \"c\": 21.5\n}"))
	binSeq := src.add(t, "temp", []byte{0xff, 0x00, 0x01})
	textSeq := src.add(t, "temp", []byte("not json"))
	u := newHTTP(t, uplink.HTTPConfig{URL: r.URL(), BearerToken: "s3cret", Headers: map[string]string{"X-Api-Key": "k1"}}, src)
	testutil.Run(t, u.Run)
	r.WaitFor(10*time.Second, "3 records", func() bool { return r.Unique() == 3 })
	lines := r.Lines()
	if got := string(lines[0].Payload); got != `{"c":21.5}` {
		t.Errorf("JSON payload = %s, want compacted JSON", got)
	}
	if lines[0].Seq != jsonSeq || lines[0].ID != "gw1:"+itoa(jsonSeq) || lines[0].Gateway != "gw1" || lines[0].Function != "temp" ||
		lines[0].Version != 1 || lines[0].Source != "mqtt" || lines[0].Subject != "sensors/temp" {
		t.Errorf("line 0 = %+v", lines[0])
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", lines[0].Time); err != nil {
		t.Errorf("time %q is not RFC 3339 UTC with milliseconds: %v", lines[0].Time, err)
	}
	if lines[1].Seq != binSeq || lines[1].Payload != nil || string(lines[1].PayloadB64) != "\xff\x00\x01" {
		t.Errorf("binary payload line = %+v", lines[1])
	}
	if lines[2].Seq != textSeq || string(lines[2].PayloadB64) != "not json" {
		t.Errorf("text payload line = %+v (b64 %s)", lines[2], base64.StdEncoding.EncodeToString(lines[2].PayloadB64))
	}
	req := r.Requests()[0]
	for k, want := range map[string]string{"Authorization": "Bearer s3cret", "X-Api-Key": "k1", "Content-Type": "application/x-ndjson",
		"Idempotency-Key": "gw1:" + itoa(jsonSeq) + "-" + itoa(textSeq)} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestHTTPRetrySameIdempotencyKey(t *testing.T) {
	r := receiver.Start(t)
	r.FailNext(3, http.StatusServiceUnavailable, "")
	src, want := filledSource(t, 10)
	u := newHTTP(t, uplink.HTTPConfig{URL: r.URL()}, src)
	testutil.Run(t, u.Run)
	r.WaitFor(10*time.Second, "delivery after 3 failures", func() bool { return r.Unique() == 10 })
	reqs := r.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for _, q := range reqs[1:] {
		if q.Key != reqs[0].Key {
			t.Errorf("Idempotency-Key changed on retry: %q then %q", reqs[0].Key, q.Key)
		}
	}
	checkDelivery(t, r.Lines(), want)
	if st := u.State(); st.Retries != 3 {
		t.Errorf("Retries = %d, want 3", st.Retries)
	}
}

func TestHTTPLostResponseDuplicatesWithSameID(t *testing.T) {
	r := receiver.Start(t)
	r.Fail(http.StatusBadGateway, "", true) // stores the batch, then says 502
	src, want := filledSource(t, 20)
	testutil.Run(t, newHTTP(t, uplink.HTTPConfig{URL: r.URL()}, src).Run)
	r.WaitFor(10*time.Second, "a few failed attempts", func() bool { return len(r.Requests()) >= 3 })
	r.OK()
	testutil.Eventually(t, 10*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
	lines := r.Lines()
	if len(lines) <= 20 {
		t.Errorf("%d lines, want duplicates", len(lines))
	}
	checkDelivery(t, lines, want)
}

func TestHTTPDeadLetterAndMoveOn(t *testing.T) {
	r := receiver.Start(t)
	src, want := filledSource(t, 30)
	r.Reject("gw1:12", http.StatusBadRequest)
	u := newHTTP(t, uplink.HTTPConfig{URL: r.URL(), Batch: uplink.Batch{MaxRecords: 10}}, src)
	testutil.Run(t, u.Run)
	testutil.Eventually(t, 10*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
	dead := src.deadLetters(t)
	if len(dead) != 10 {
		t.Fatalf("dead letters %v, want the batch of 10 holding seq 12", dead)
	}
	for seq := uint64(11); seq <= 20; seq++ {
		if !strings.Contains(dead[seq], "HTTP 400") || !strings.Contains(dead[seq], "record gw1:12 refused") {
			t.Errorf("seq %d reason %q: want status and response excerpt", seq, dead[seq])
		}
		delete(want, "gw1:"+itoa(seq))
	}
	checkDelivery(t, r.Lines(), want)
	st := u.State()
	if st.Failed != 10 || !strings.Contains(st.LastDeadLetter, "records 11-20 dead-lettered: HTTP 400") {
		t.Errorf("state %+v: want Failed 10 and the dead letter in LastError", st)
	}
}

func TestHTTPRetryAfter(t *testing.T) {
	r := receiver.Start(t)
	r.FailNext(1, http.StatusTooManyRequests, "1")
	src := newSource(t)
	src.add(t, "temp", []byte(`{}`))
	testutil.Run(t, newHTTP(t, uplink.HTTPConfig{URL: r.URL()}, src).Run)
	start := time.Now()
	r.WaitFor(10*time.Second, "delivery after 429", func() bool { return r.Unique() == 1 })
	// A lower bound only: the backoff alone (20-40ms) would be far shorter.
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v; Retry-After asked for 1s", d)
	}
}

func TestHTTPStallTimesOutAndRetries(t *testing.T) {
	r := receiver.Start(t)
	r.Stall()
	src := newSource(t)
	src.add(t, "temp", []byte(`{}`))
	u := newHTTP(t, uplink.HTTPConfig{URL: r.URL(), Timeout: 200 * time.Millisecond}, src)
	testutil.Run(t, u.Run)
	testutil.Eventually(t, 10*time.Second, "a timed out attempt", func() bool { return u.State().Retries >= 1 })
	if st := u.State(); st.Online || !strings.Contains(st.LastError, "Timeout") {
		t.Errorf("state after a timeout: %+v", st)
	}
	r.OK()
	r.WaitFor(10*time.Second, "delivery after the stall", func() bool { return r.Unique() == 1 })
}

func TestHTTPSplitsOn413(t *testing.T) {
	r := receiver.Start(t)
	r.FailNext(1, http.StatusRequestEntityTooLarge, "")
	src, want := filledSource(t, 8)
	testutil.Run(t, newHTTP(t, uplink.HTTPConfig{URL: r.URL()}, src).Run)
	testutil.Eventually(t, 10*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
	checkDelivery(t, r.Lines(), want)
	if dead := src.deadLetters(t); len(dead) != 0 {
		t.Errorf("dead letters after 413: %v", dead)
	}
}

func TestHTTPSTLS(t *testing.T) {
	pki := testpki.New(t)
	r := receiver.Start(t, receiver.WithTLS(pki.ServerTLS(t, true)))
	cases := []struct {
		name    string
		tls     uplink.TLS
		deliver bool
		errLike string
	}{
		{"ca and client cert", uplink.TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true, ""},
		{"no client cert", uplink.TLS{CAFile: pki.CAFile}, false, "certificate"},
		{"system roots", uplink.TLS{CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false, "certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := newSource(t)
			seq := src.add(t, "temp", []byte(c.name))
			u := newHTTP(t, uplink.HTTPConfig{URL: r.URL(), TLS: c.tls}, src)
			testutil.Run(t, u.Run)
			if c.deliver {
				r.WaitFor(10*time.Second, "delivery over mutual TLS", func() bool { return r.Has("gw1:" + itoa(seq)) })
				return
			}
			testutil.Eventually(t, 10*time.Second, "a TLS failure", func() bool { return u.State().Retries > 0 })
			if st := u.State(); !strings.Contains(st.LastError, c.errLike) {
				t.Errorf("LastError %q, want it to mention %q", st.LastError, c.errLike)
			}
		})
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
