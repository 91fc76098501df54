package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway"
)

// remoteFlags are the flags of every command that talks to an agent.
func remoteFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "gateway", Aliases: []string{"g"}, EnvVars: []string{"EDGEFN_GATEWAY"},
			Usage: "admin API URL of the agent (default: the last one logged in to)"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"EDGEFN_TOKEN"},
			Usage: "API token (default: the one stored by edgefn login)"},
		&cli.StringFlag{Name: "fingerprint", EnvVars: []string{"EDGEFN_FINGERPRINT"},
			Usage: "expected certificate fingerprint, sha256:<hex> (default: the one pinned by edgefn login)"},
	}, extra...)
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}
}

// remote is a connection to one agent's admin API.
type remote struct {
	url    string
	token  string
	hc     *http.Client
	header http.Header // more request headers (invoke --subject/--source)
}

// pinError says the agent presented another certificate than the pinned one.
type pinError struct {
	url, want, got string
}

func (e *pinError) Error() string {
	return fmt.Sprintf("certificate of %s does not match the pinned fingerprint: pinned %s, presented %s\n"+
		"  refusing to talk to it: someone may be intercepting the connection. If the agent's certificate was\n"+
		"  replaced on purpose (data dir reset), check the new fingerprint on the agent and run\n"+
		"  edgefn login %s --token TOKEN --fingerprint <new fingerprint>", e.url, e.want, e.got, e.url)
}

// tokenError is a 401 from the agent.
type tokenError struct{ url string }

func (e *tokenError) Error() string {
	return fmt.Sprintf("token refused by %s: run edgefn login %s --token \"$(cat DATA_DIR/api.token)\"", e.url, e.url)
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status   int
	Message  string
	Problems []string
}

func (e *apiError) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	return e.Message + ":\n  " + strings.Join(e.Problems, "\n  ")
}

// newHTTPClient makes a client that checks the server certificate against
// the pinned fingerprint instead of a CA (the agent's certificate is
// self-signed); seen, when not nil, receives the presented fingerprint.
func newHTTPClient(base, pin string, seen *string) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Verification is VerifyConnection's pin check: trust on first
			// use, like ssh, instead of a CA that does not exist here.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the agent presented no certificate")
				}
				got := gateway.Fingerprint(cs.PeerCertificates[0].Raw)
				if seen != nil {
					*seen = got
				}
				if pin != "" && !strings.EqualFold(got, pin) {
					return &pinError{url: base, want: pin, got: got}
				}
				return nil
			},
		},
	}
	return &http.Client{Transport: tr}
}

// connect resolves the agent, token and pin from the flags, the environment
// and the credentials file.
func connect(c *cli.Context) (*remote, error) {
	creds, err := loadCredentials()
	if err != nil {
		return nil, err
	}
	base := normalizeURL(c.String("gateway"))
	if base == "" {
		base = creds.Default
	}
	if base == "" {
		return nil, usagef("no agent to talk to: run edgefn login URL first, or pass --gateway URL (or set EDGEFN_GATEWAY)")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usagef("--gateway %q: want an http(s)://host:port URL", base)
	}
	gc := creds.Gateways[base]
	token := c.String("token")
	if token == "" {
		token = gc.Token
	}
	if token == "" {
		return nil, fmt.Errorf("no token for %s: run edgefn login %s --token TOKEN (the token is in the agent's data dir, api.token), or set EDGEFN_TOKEN", base, base)
	}
	pin := c.String("fingerprint")
	if pin == "" {
		pin = gc.Fingerprint
	}
	if u.Scheme == "https" && pin == "" {
		return nil, fmt.Errorf("the certificate of %s is not pinned: run edgefn login %s (or pass --fingerprint sha256:…)", base, base)
	}
	return &remote{url: base, token: token, hc: newHTTPClient(base, pin, nil)}, nil
}

// do calls the API and decodes a JSON answer into out (when not nil).
func (r *remote) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, body)
	if err != nil {
		return err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		var pe *pinError
		if errors.As(err, &pe) {
			return pe
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("cannot reach the agent at %s: %w (is it running? is --gateway right?)", r.url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	return decodeAnswer(resp, r.url, out)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decodeAnswer(resp *http.Response, base string, out any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", base, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return &tokenError{url: base}
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error    string   `json:"error"`
			Problems []string `json:"problems"`
		}
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s answered %s: %s", base, resp.Status, strings.TrimSpace(string(b)))
		}
		return &apiError{Status: resp.StatusCode, Message: eb.Error, Problems: eb.Problems}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s answered something that is not the expected JSON (%v): is it an edgefn agent?", base, err)
	}
	return nil
}

// wantArgs checks the number of positional arguments.
func wantArgs(c *cli.Context, min, max int, what string) error {
	if n := c.NArg(); n < min || n > max {
		return usagef("%s: want %s, got %d argument(s)", c.Command.Name, what, n)
	}
	return nil
}

// withArgs is the start of a command that takes arguments: flags may
// follow them (interleaved), then their number is checked as by wantArgs.
func withArgs(min, max int, what string, action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		c, err := interleaved(c)
		if err != nil {
			return err
		}
		if err := wantArgs(c, min, max, what); err != nil {
			return err
		}
		return action(c)
	}
}

// countArgs checks the number of arguments (wantArgs) before action runs,
// without re-reading flags that follow them.
func countArgs(min, max int, what string, action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := wantArgs(c, min, max, what); err != nil {
			return err
		}
		return action(c)
	}
}

// noArgs is countArgs for a command that takes no arguments.
func noArgs(action cli.ActionFunc) cli.ActionFunc {
	return countArgs(0, 0, "no arguments", action)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	// /dev/null is a character device too, but nobody is typing there.
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// humanSize formats a byte count for people: 812 B, 3.2 MiB.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago formats how long ago t was, for tables.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return roundDur(time.Since(t)) + " ago"
}

// roundDur formats a duration with few digits: 3.2ms, 41s, 2h5m.
func roundDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
