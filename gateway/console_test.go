package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/uplink"
)

// The overview shows the uplink's state and backlog as they change: the
// cloud down (offline, the records waiting), then up (online, drained).
// A script reads it with the bearer token.
func TestConsoleOverviewUplink(t *testing.T) {
	var up atomic.Bool
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer cloud.Close()
	ta, _ := agentWithFunction(t, "echo", "triggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "echo.wasm", func(c *Config) {
		c.Uplinks = []UplinkConfig{{HTTP: &uplink.HTTPConfig{Name: "cloud", URL: cloud.URL,
			Backoff: uplink.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}}}
	})
	dev := pahoClient(t, ta.ready.BrokerAddr, "uplink-device", true)
	for i := range 3 {
		if tok := dev.Publish("sensors/a/temp", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	overview := func() string {
		code, body := ta.api(t, "GET", "/?live=1", nil)
		if code != http.StatusOK {
			t.Fatalf("overview: %d %s", code, body)
		}
		return string(body)
	}
	offline := regexp.MustCompile(`(?s)<dt>cloud</dt><dd class="bad">http, offline</dd>\s*<dt>Backlog</dt><dd>3</dd>.*503`)
	testutil.Eventually(t, 30*time.Second, "overview: cloud offline, backlog 3, the 503 shown", func() bool { return offline.MatchString(overview()) })
	up.Store(true)
	online := regexp.MustCompile(`(?s)<dt>cloud</dt><dd class="ok">http, online</dd>\s*<dt>Backlog</dt><dd>0</dd>.*<dd id="depth">0</dd>`)
	testutil.Eventually(t, 30*time.Second, "overview: cloud online, backlog and outbox empty", func() bool { return online.MatchString(overview()) })
}
