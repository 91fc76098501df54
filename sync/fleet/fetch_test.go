package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testpki"
	"github.com/edgefn/edgefn/internal/tlsclient"
)

// moduleServer serves paths over TLS on loopback with a certificate of a
// test CA; it returns the server and a client trusting that CA.
func moduleServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	pki := testpki.New(t)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = pki.ServerTLS(t, false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tc, err := tlsclient.Config{CAFile: pki.CAFile}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return srv, ModuleClient(tc)
}

func moduleOf(b []byte, url string) Module {
	sum := sha256.Sum256(b)
	return Module{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), URL: url}
}

// A module named by an https URL is fetched from a real TLS server and
// checked against its size and SHA-256; hostile servers and URLs are
// refused with an error that says why.
func TestFetchURL(t *testing.T) {
	wasm := bytes.Repeat([]byte("\x00asm-module-"), 5000)
	hang := make(chan struct{})
	srv, client := moduleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/m.wasm":
			w.Write(wasm)
		case "/big.wasm": // more than the document names
			w.Write(append(wasm, wasm...))
		case "/other.wasm":
			w.Write(bytes.ToUpper(wasm))
		case "/plain-redirect":
			http.Redirect(w, r, "http://"+r.Host+"/m.wasm", http.StatusFound)
		case "/hang.wasm":
			w.Write(wasm[:100])
			w.(http.Flusher).Flush()
			<-hang
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() { close(hang) }) // before the server's Close waits for its handlers
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := FetchURL(ctx, client, moduleOf(wasm, srv.URL+"/m.wasm"), 1<<20)
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("FetchURL: %v (%d bytes)", err, len(got))
	}
	for _, c := range []struct {
		name string
		m    Module
		max  int64
		want string
	}{
		{"more bytes than named", moduleOf(wasm, srv.URL+"/big.wasm"), 1 << 20, "sends more than"},
		{"other content", moduleOf(wasm, srv.URL+"/other.wasm"), 1 << 20, "do not match their sha256"},
		{"above the gateway's maximum", moduleOf(wasm, srv.URL+"/m.wasm"), 1000, "above the 1000"},
		{"not found", moduleOf(wasm, srv.URL+"/nope.wasm"), 1 << 20, "404"},
		{"plain http", moduleOf(wasm, strings.Replace(srv.URL, "https:", "http:", 1)+"/m.wasm"), 1 << 20, "want https"},
		{"redirect to http", moduleOf(wasm, srv.URL+"/plain-redirect"), 1 << 20, "only https"},
		{"credentials in the URL", moduleOf(wasm, strings.Replace(srv.URL, "https://", "https://u:secret@", 1)+"/m.wasm"), 1 << 20, "credentials"},
	} {
		_, err := FetchURL(ctx, client, c.m, c.max)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// An untrusted certificate (the system roots do not know the test CA).
	if _, err := FetchURL(ctx, ModuleClient(nil), moduleOf(wasm, srv.URL+"/m.wasm"), 1<<20); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server certificate: %v", err)
	}
	// A server that stops sending: the caller's deadline ends the fetch.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := FetchURL(short, client, moduleOf(wasm, srv.URL+"/hang.wasm"), 1<<20); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging server: %v, want the deadline", err)
	}
}
