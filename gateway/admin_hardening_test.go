package gateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// adminAgent runs the agent with short admin timeouts (1s) and returns it
// and the admin API's host:port.
func adminAgent(t *testing.T) (*testAgent, string) {
	t.Helper()
	ta := startAgent(t, t.TempDir(), func(c *Config) {
		c.Admin.HeaderTimeout = time.Second
		c.Admin.ReadTimeout = time.Second
		c.Admin.WriteTimeout = time.Second
		c.Admin.IdleTimeout = time.Second
	})
	u, err := url.Parse(ta.ready.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	return ta, u.Host
}

// The admin API speaks TLS 1.2 with ECDHE and an AEAD only, or TLS 1.3: a
// client offering only CBC-SHA1 suites, or at most TLS 1.1, is refused.
func TestAdminTLSRefusesWeakClients(t *testing.T) {
	_, addr := adminAgent(t)
	dial := func(c *tls.Config) (*tls.ConnectionState, error) {
		c.InsecureSkipVerify = true
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	for name, c := range map[string]*tls.Config{
		"TLS 1.2, CBC-SHA1 suites only": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA}},
		"TLS 1.2, static RSA GCM": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}},
		"TLS 1.1":                 {MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
	} {
		if st, err := dial(c); err == nil {
			t.Errorf("%s: handshake succeeded with %s", name, tls.CipherSuiteName(st.CipherSuite))
		}
	}
	for name, c := range map[string]*tls.Config{
		"TLS 1.2, ECDHE GCM": {MaxVersion: tls.VersionTLS12},
		"TLS 1.3":            {MinVersion: tls.VersionTLS13},
	} {
		st, err := dial(c)
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
			continue
		}
		if n := tls.CipherSuiteName(st.CipherSuite); !strings.Contains(n, "GCM") && !strings.Contains(n, "CHACHA20") {
			t.Errorf("%s: negotiated %s", name, n)
		}
	}
}

// A client that sends its headers, or its body, slower than the timeouts
// allow is cut off; an event stream outlives the read and write timeouts.
func TestAdminCutsSlowClients(t *testing.T) {
	ta, addr := adminAgent(t)
	conn := func() *tls.Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// The client waits far longer than the server's 1s timeouts.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	// closed reads until the server closes the connection (an answer
	// before that is fine: a 408 or 400).
	closed := func(what string, c *tls.Conn) {
		t.Helper()
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: the server did not cut the connection within 30s", what)
		}
	}

	slowHeader := conn()
	if _, err := io.WriteString(slowHeader, "GET /v1/status HTTP/1.1\r\nHost: edgefn\r\n"); err != nil {
		t.Fatal(err)
	}
	closed("slow headers", slowHeader)

	slowBody := conn()
	if _, err := io.WriteString(slowBody, "POST /v1/functions/x/invoke HTTP/1.1\r\nHost: edgefn\r\nAuthorization: Bearer "+ta.token+"\r\nContent-Length: 1000\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	closed("slow body", slowBody)

	bigHeader := conn()
	if _, err := io.WriteString(bigHeader, "GET /v1/status HTTP/1.1\r\nHost: edgefn\r\nX-Big: "+strings.Repeat("a", 2*adminMaxHeaderBytes)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bigHeader), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers over %d bytes: %v %v, want 431", adminMaxHeaderBytes, resp, err)
	}

	// The traffic stream: messages keep coming well past the 1s timeouts.
	sresp := adminDo(t, "GET", ta.ready.AdminURL+"/v1/traffic?filter=%23&n=0", ta.token, nil, 0)
	defer sresp.Body.Close()
	events := readEvents(sresp)
	opened := time.Now()
	dev := pahoClient(t, ta.ready.BrokerAddr, "stream-device", true)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for late := false; !late; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended %v after it opened", time.Since(opened).Round(time.Millisecond))
			}
			late = ev.Name == "message" && time.Since(opened) > 3*time.Second
		case <-tick.C:
			dev.Publish("stream/x", 0, false, "m")
		case <-deadline:
			t.Fatal("no message on the stream 3s after it opened")
		}
	}
}
