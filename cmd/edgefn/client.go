package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
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

// connect resolves the agent, token and pin from the flags, the environment
// and the credentials file.
func connect(c *cli.Context) (*api.Client, error) {
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
	return api.NewClient(base, token, pin, nil), nil
}

// wantArgs checks the number of positional arguments.
func wantArgs(c *cli.Context, min, max int, what string) error {
	if n := c.NArg(); n < min || n > max {
		return usagef("%s: want %s, got %d argument(s)", commandPath(c), what, n)
	}
	return nil
}

// argOr is a command's one optional argument, def when it is not given.
func argOr(c *cli.Context, def string) string {
	if c.NArg() == 0 {
		return def
	}
	return c.Args().First()
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
