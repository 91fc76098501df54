package gateway

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/edgefn/edgefn/internal/testutil"
)

var screenshots = flag.Bool("screenshots", false, "write the console browser test's screenshots to docs/console/ (else to a temp dir)")

// chromium returns the headless Chromium to drive: Debian's
// chromium-headless-shell or chromium (scripts/install-deps.sh installs the
// first). Without one the test fails in CI (CI=true) and skips elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium-headless-shell", "chromium", "headless_shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium-headless-shell or chromium on PATH: the console's browser tests need it (scripts/install-deps.sh installs it)")
	}
	t.Skip("no chromium-headless-shell or chromium on PATH (scripts/install-deps.sh installs it)")
	return ""
}

// browser starts a headless Chromium for the test and returns its tab.
// Exceptions thrown by page scripts and Content-Security-Policy violations
// fail the test: the console's own script must run clean, and a violation
// means something tried to run script it should not.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1100, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `document.addEventListener('securitypolicyviolation',
			e => (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI));`,
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			t.Errorf("page script exception: %s %+v", e.ExceptionDetails.Text, e.ExceptionDetails.Exception)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// run runs browser steps with a deadline.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ''`))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// value runs one browser action that gives a value, with a deadline.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// js evaluates a JavaScript expression (awaiting a promise).
func js[T any](expr string) chromedp.Action[T] {
	return chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise)
}

// until waits until the JavaScript expression is true on the page.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(40*time.Second))
}

// noScriptRan checks that no hostile payload ran: the marker it tries to set
// on window is unset, no element it tries to add exists, and no
// Content-Security-Policy violation happened.
func noScriptRan(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	if m := value(t, ctx, "read the XSS marker", js[string](`String(window.__xss)`)); m != "undefined" {
		t.Errorf("%s: a hostile payload ran script: window.__xss = %s", where, m)
	}
	if value(t, ctx, "look for injected elements", js[bool](`document.getElementById('pwned') !== null`)) {
		t.Errorf("%s: a hostile payload became an element", where)
	}
	if csp := value(t, ctx, "read CSP violations", js[string](`JSON.stringify(window.__csp || [])`)); csp != "[]" {
		t.Errorf("%s: Content-Security-Policy violations: %s", where, csp)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.TempDir()
	if *screenshots {
		dir = filepath.Join("..", "docs", "console")
	}
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// get fetches path from the agent without following redirects.
func (ta *testAgent) get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", ta.ready.AdminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Hostile strings a device or a function controls: payloads, log lines and
// topic names. Each tries to set window.__xss and to add an element with
// id "pwned".
const (
	hostileImg    = `<img id="pwned" src="x" onerror="window.__xss=1">`
	hostileScript = `</li><script>window.__xss=2</script>`
	hostileFail   = `fail"><svg id="pwned" onload="window.__xss=3">`
	hostileTopic  = `sensors/<img id=pwned src=x onerror=window.__xss=4>/temp`
	hostileFilter = `"><img id=pwned src=x onerror=window.__xss=5>`
)

// The web console, driven in a real headless Chromium against an agent
// with its embedded broker and real MQTT traffic: sign-in, every page,
// live updates, hostile content rendered as text, sign-out, and no data
// without a session or the token.
func TestConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	fns := filepath.Join(dir, "fns")
	writeFunction(t, fns, "alpha", "triggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "logecho.wasm")
	ta := startAgent(t, dir)
	base := ta.ready.AdminURL

	// Signed out: pages redirect to the sign-in form, data answers 401,
	// and the API does not take a cookie.
	for _, path := range []string{"/", "/functions", "/functions/alpha", "/traffic?filter=%23"} {
		resp := ta.get(t, path)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?next=") {
			t.Errorf("GET %s signed out: %d Location %q, want 303 to /signin", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, path := range []string{"/?live=1", "/functions?live=1", "/functions/alpha?live=1", "/functions/alpha/log", "/traffic/events?filter=%23", "/v1/traffic?filter=%23", "/v1/status", "/v1/functions", "/metrics"} {
		if resp := ta.get(t, path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s signed out: %d, want 401", path, resp.StatusCode)
		}
		if resp := ta.get(t, path, "Cookie", "__Host-edgefn_session=forged"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a forged session: %d, want 401", path, resp.StatusCode)
		}
	}
	// A script signs in with the bearer token, as with the API.
	resp := ta.get(t, "/?live=1", "Authorization", "Bearer "+ta.token)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /?live=1 with the bearer token: %d", resp.StatusCode)
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	// Sign in: a wrong token, then the right one.
	run(t, ctx, "open / signed out",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")))
	if loc := value(t, ctx, "location", chromedp.Location()); !strings.HasPrefix(loc, base+"/signin?next=") {
		t.Errorf("signed out, / went to %s, want the sign-in page", loc)
	}
	screenshot(t, ctx, "signin")
	run(t, ctx, "sign in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("wrong")))
	run(t, ctx, "sign in with the token",
		chromedp.SendKeys(chromedp.ID("token"), ta.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("version")))
	if loc := value(t, ctx, "location", chromedp.Location()); loc != base+"/" {
		t.Errorf("after sign-in at %s, want %s/", loc, base)
	}
	cookies := value(t, ctx, "cookies", func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
	})
	if len(cookies.Cookies) != 1 {
		t.Fatalf("%d cookies, want the session cookie only", len(cookies.Cookies))
	}
	if c := cookies.Cookies[0]; c.Name != "__Host-edgefn_session" || !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Session || c.Expires < float64(time.Now().Unix()) {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, with an expiry", c)
	}

	// The session cookie authorizes no API route, reading or changing.
	apiCodes := value(t, ctx, "API with the session cookie", js[string](`Promise.all([
		fetch('/v1/status').then(r => r.status),
		fetch('/v1/functions/alpha/invoke', {method: 'POST', body: 'x'}).then(r => r.status),
		fetch('/v1/functions/alpha', {method: 'DELETE'}).then(r => r.status),
	]).then(s => s.join(','))`))
	if apiCodes != "401,401,401" {
		t.Errorf("API statuses with the session cookie = %s, want 401,401,401", apiCodes)
	}

	// Real MQTT traffic: 5 messages the function takes, 2 it does not.
	dev := pahoClient(t, ta.ready.BrokerAddr, "console-device", true)
	publish := func(topic, payload string) {
		t.Helper()
		tok := dev.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	for i := range 5 {
		publish("sensors/kitchen/temp", fmt.Sprintf(`{"t":%d}`, 20+i))
	}
	publish("lights/hall", "on")
	publish("lights/hall", "off")
	run(t, ctx, "overview counts after MQTT traffic",
		until(`document.querySelector('#messages').textContent === '7' &&
			document.querySelector('#delivered').textContent === '5' &&
			document.querySelector('#clients').textContent === '1' &&
			document.querySelector('#depth').textContent === '5' &&
			document.querySelector('#functions').textContent === '1' &&
			document.querySelector('#uplink').textContent === 'no uplink configured'`))
	screenshot(t, ctx, "overview")

	// The functions table; a function deployed meanwhile appears without a
	// reload (the marker on window survives).
	run(t, ctx, "functions page",
		chromedp.Navigate(base+"/functions"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-function="alpha"]`)),
		js[chromedp.Void](`window.__sameDocument = 1`))
	row := value(t, ctx, "alpha row", chromedp.Text(chromedp.CSS(`tr[data-function="alpha"]`)))
	for _, want := range []string{"alpha", "v1", "mqtt:sensors/+/temp (qos 1)", "5"} {
		if !strings.Contains(row, want) {
			t.Errorf("alpha row %q lacks %q", row, want)
		}
	}
	if _, err := ta.Host.Deploy(context.Background(), "beta.yaml",
		[]byte("name: beta\nwasm: beta.wasm\ntriggers:\n  - every: 1h\n"), testutil.Testdata(t, "echo.wasm"), "api", nil); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "deployed function appears without a reload",
		until(`document.querySelector('tr[data-function="beta"]') !== null && window.__sameDocument === 1`))
	screenshot(t, ctx, "functions")

	// A function's page: versions, chart, live log with the guest's lines,
	// then hostile payloads through MQTT (one fails, for the failures table).
	run(t, ctx, "function page",
		chromedp.Navigate(base+"/functions/alpha"),
		chromedp.WaitVisible(chromedp.ID("versions")),
		until(`[...document.querySelectorAll('#log li')].some(li => li.textContent.includes('{"t":24}'))`),
		until(`document.querySelectorAll('svg.chart rect.inv').length >= 1`))
	publish("sensors/kitchen/temp", `{"t":42}`)
	publish("sensors/kitchen/temp", hostileImg)
	publish("sensors/kitchen/temp", hostileScript)
	publish(hostileTopic, "hostile topic")
	if tok := dev.Publish("sensors/kitchen/temp", 0, false, hostileFail); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("publish the failing payload")
	}
	run(t, ctx, "live log shows the new and the hostile lines as text",
		until(`(() => { const t = [...document.querySelectorAll('#log li')].map(li => li.textContent).join('\n');
			return t.includes('{"t":42}') && t.includes('onerror="window.__xss=1"') && t.includes('<script>window.__xss=2</script>') && t.includes('onload="window.__xss=3"'); })()`),
		until(`document.querySelector('#failures') !== null && document.querySelector('#invocations').textContent.startsWith('10 ')`))
	noScriptRan(t, ctx, "function page")
	screenshot(t, ctx, "function")

	// Live traffic: the kept messages on a filter, then new ones, hostile
	// topics and payloads as text.
	run(t, ctx, "traffic page",
		chromedp.Navigate(base+"/traffic?filter=sensors/%23"),
		until(`[...document.querySelectorAll('#traffic li')].some(li => li.textContent.includes('sensors/<img id=pwned'))`))
	publish("sensors/porch/temp", `{"t":7}`)
	publish("lights/hall", "not on this filter")
	run(t, ctx, "new traffic appears",
		until(`[...document.querySelectorAll('#traffic li')].some(li => li.textContent.includes('sensors/porch/temp') && li.textContent.includes('{"t":7}'))`))
	if traffic := value(t, ctx, "traffic text", chromedp.Text(chromedp.ID("traffic"))); strings.Contains(traffic, "lights/hall") {
		t.Error("traffic on sensors/# shows lights/hall")
	}
	noScriptRan(t, ctx, "traffic page")
	screenshot(t, ctx, "traffic")

	// A hostile filter in a link is shown as text too.
	run(t, ctx, "hostile filter",
		chromedp.Navigate(base+"/traffic?filter="+url.QueryEscape(hostileFilter)),
		chromedp.WaitVisible(chromedp.ID("filter")))
	if v := value(t, ctx, "filter value", js[string](`document.getElementById('filter').value`)); v != hostileFilter {
		t.Errorf("filter field = %q, want %q", v, hostileFilter)
	}
	noScriptRan(t, ctx, "traffic page with a hostile filter")

	// The overview on a phone screen.
	run(t, ctx, "phone overview",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("version")))
	screenshot(t, ctx, "overview-phone")
	run(t, ctx, "desktop again", chromedp.EmulateViewport(1100, 800))

	// Sign out: back to the sign-in form, and the old session is gone.
	run(t, ctx, "sign out",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(base+"/functions"),
		chromedp.WaitVisible(chromedp.ID("token")))
	if loc := value(t, ctx, "location", chromedp.Location()); !strings.HasPrefix(loc, base+"/signin?next=%2Ffunctions") {
		t.Errorf("after sign-out /functions went to %s", loc)
	}
	if code := value(t, ctx, "data after sign-out", js[int](`fetch('/functions?live=1').then(r => r.status)`)); code != http.StatusUnauthorized {
		t.Errorf("functions data after sign-out: %d, want 401", code)
	}
}
