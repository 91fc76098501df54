package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
)

const credentialsHint = "$XDG_CONFIG_HOME/edgefn/credentials.json or ~/.config/edgefn/credentials.json"

func loginAction(c *cli.Context) error {
	base := normalizeURL(c.Args().First())
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("login: %q: want the agent's admin URL, such as https://raspberrypi.local:8787", c.Args().First())
	}
	token := c.String("token")
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return usagef("login: --token-file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return usagef("login: pass --token TOKEN or --token-file FILE (the agent's api.token in its data dir)")
	}
	want := strings.ToLower(c.String("fingerprint"))
	if want != "" && !strings.HasPrefix(want, "sha256:") {
		return usagef("login: --fingerprint %q: want sha256:<hex>, as the agent prints it", want)
	}
	creds, err := loadCredentials()
	if err != nil {
		return err
	}
	old := creds.Gateways[base]
	errw := c.App.ErrWriter

	// First connection: accept any certificate, but record which one.
	var seen string
	st, err := api.NewClient(base, token, want, &seen).Status(c.Context)
	var te *api.TokenError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("token refused by %s: check it against the agent's api.token and run edgefn login again", base)
	case err != nil:
		return err
	}
	if u.Scheme == "https" {
		switch {
		case want != "":
			// Checked during the handshake.
		case old.Fingerprint != "" && strings.EqualFold(old.Fingerprint, seen):
			// Same certificate as before.
		case old.Fingerprint != "":
			return &api.PinError{URL: base, Want: old.Fingerprint, Got: seen}
		case c.Bool("accept-fingerprint"):
			fmt.Fprintf(errw, "pinning the certificate of %s: %s\n", base, seen)
		default:
			if !confirm(c, base, seen) {
				return fmt.Errorf("certificate of %s not trusted: compare %s with the fingerprint the agent printed, then run\n"+
					"  edgefn login %s --token TOKEN --fingerprint %s", base, seen, base, seen)
			}
		}
	} else if h := u.Hostname(); h != "localhost" && h != "127.0.0.1" && h != "::1" {
		fmt.Fprintf(errw, "warning: %s is plain HTTP: the token crosses the network in clear\n", base)
	}
	creds.Gateways[base] = gatewayCreds{Token: token, Fingerprint: seen, Gateway: st.Gateway, Added: time.Now().UTC()}
	creds.Default = base
	if err := creds.save(); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, struct {
			URL         string `json:"url"`
			Gateway     string `json:"gateway"`
			Fingerprint string `json:"fingerprint,omitempty"`
			Credentials string `json:"credentials"`
		}{base, st.Gateway, seen, creds.path})
	}
	fmt.Fprintf(c.App.Writer, "logged in to %s (gateway %s)\n", base, st.Gateway)
	if seen != "" {
		fmt.Fprintf(c.App.Writer, "certificate pinned: %s\n", seen)
	}
	fmt.Fprintf(c.App.Writer, "credentials saved in %s\n", creds.path)
	return nil
}

// confirm asks on the terminal whether to trust a fingerprint; off a
// terminal the answer is no (use --accept-fingerprint or --fingerprint).
func confirm(c *cli.Context, base, fp string) bool {
	if !isTerminal(c.App.Reader) {
		fmt.Fprintf(c.App.ErrWriter, "the certificate of %s is not pinned yet; it presents\n  %s\n"+
			"not a terminal: pass --fingerprint (what the agent printed) or --accept-fingerprint\n", base, fp)
		return false
	}
	fmt.Fprintf(c.App.ErrWriter, "The authenticity of %s can't be established.\nCertificate fingerprint is %s.\n"+
		"Compare it with the one `edgefn agent` printed. Trust it (yes/no)? ", base, fp)
	line, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "yes" || a == "y"
}
