package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// hostile is what a device, a function or a compromised cloud may put in
// any string the console shows.
const hostile = `"><img id=pwned src=x onerror=alert(1)><script>alert(2)</script>`

// hostileSource fills every string field with hostile text.
type hostileSource struct{}

func (hostileSource) Overview(context.Context) Overview {
	return Overview{
		Gateway: hostile, Version: hostile, Started: time.Now(), Uptime: time.Hour,
		Broker:  Broker{Kind: "external", Addr: hostile, LastError: hostile},
		Uplinks: []Uplink{{Name: hostile, Kind: hostile, LastError: hostile}},
		Outbox:  Outbox{Err: hostile, Drops: []Count{{Name: hostile, N: 1}}},
		GPIO:    GPIO{Backend: hostile, Pins: []Pin{{Name: hostile, Mode: hostile, High: true}}},
	}
}

func (hostileSource) Functions(context.Context) []Function {
	return []Function{{Name: hostile, Triggers: []string{hostile}, State: hostile, Failures: []Count{{Name: hostile, N: 2}}}}
}

func (hostileSource) Function(ctx context.Context, _ string) (FunctionDetail, bool) {
	return FunctionDetail{
		Function:     hostileSource{}.Functions(ctx)[0],
		Versions:     []Version{{N: 1, Active: true, Hash: hostile, Origin: hostile}},
		LastFailures: []Failure{{Time: time.Now(), Reason: hostile, Message: hostile, EventID: hostile}},
		Hour:         []Minute{{Start: time.Now(), Events: 3, Failures: 1, P99: time.Millisecond}},
	}, true
}

// Every page escapes what it shows, in text, attributes and URLs: no
// hostile markup reaches the HTML, whole pages or their live blocks.
func TestPagesEscape(t *testing.T) {
	c, err := New(Config{
		CheckToken:    func(s string) bool { return s == "tok" },
		Source:        hostileSource{},
		Next:          http.NotFoundHandler(),
		TrafficEvents: http.NotFoundHandler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/?live=1", "/functions", "/functions?live=1", "/functions/x", "/functions/x?live=1",
		"/traffic?filter=" + strings.NewReplacer(`"`, "%22", "<", "%3C", ">", "%3E", " ", "%20", "=", "%3D", "(", "%28", ")", "%29").Replace(hostile),
		"/signin?next=" + strings.NewReplacer(`"`, "%22", "<", "%3C", ">", "%3E", " ", "%20", "=", "%3D").Replace("/"+hostile)} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, rec.Code)
			continue
		}
		html := strings.ToLower(string(body))
		for _, bad := range []string{"<img", "<script>alert"} {
			if strings.Contains(html, bad) {
				t.Errorf("GET %s: %q reached the HTML unescaped", path, bad)
			}
		}
		if !strings.Contains(html, "&lt;img") && !strings.Contains(html, "%3cimg") {
			t.Errorf("GET %s: the hostile text is not shown at all", path)
		}
	}
}
