package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testpki"
)

// fleet login checks a broker's credentials (here mutual TLS against a
// real mosquitto that requires a client certificate), stores them only if
// they work, and later fleet commands use them without flags.
func TestFleetLogin(t *testing.T) {
	pki := testpki.New(t)
	b := mosquittotest.Start(t, mosquittotest.WithServerTLS(pki.CAFile, pki.ServerCert, pki.ServerKey, true))
	c := newCLI(t)
	credFile := filepath.Join(c.home, ".config", "edgefn", "credentials.json")

	// Without a client certificate the broker refuses: nothing stored.
	if _, errOut, code := c.run("fleet", "login", b.TLSURL(), "--ca", pki.CAFile); code != 1 || !strings.Contains(errOut, "nothing stored") {
		t.Errorf("login without a client certificate: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(credFile); err == nil {
		t.Error("a failed login wrote the credentials file")
	}
	// Before any login, fleet ls needs --broker.
	if _, errOut, code := c.run("fleet", "ls"); code != 2 || !strings.Contains(errOut, "--broker is required") {
		t.Errorf("fleet ls with no broker: exit %d\n%s", code, errOut)
	}
	// Relative paths are stored absolute.
	wd := filepath.Dir(pki.CAFile)
	rel := func(p string) string { r, _ := filepath.Rel(wd, p); return r }
	out, errOut, code := c.runIn(wd, nil, "fleet", "login", b.TLSURL(), "--ca", rel(pki.CAFile), "--cert", rel(pki.ClientCert), "--key-file", rel(pki.ClientKey), "--username", "ops")
	if code != 0 || !strings.Contains(out, "connected to "+b.TLSURL()) {
		t.Fatalf("login: exit %d\n%s\n%s", code, out, errOut)
	}
	fi, err := os.Stat(credFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	var creds credentials
	raw, _ := os.ReadFile(credFile)
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	if bc := creds.Fleet[b.TLSURL()]; creds.FleetDefault != b.TLSURL() || bc.CA != pki.CAFile || bc.Cert != pki.ClientCert || bc.Key != pki.ClientKey || bc.Username != "ops" {
		t.Errorf("stored: %s", raw)
	}
	// Later commands connect with what was stored.
	if out := c.ok("fleet", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("fleet ls after login: %q", out)
	}
	// A flag still overrides the stored value: the other CA does not
	// verify the broker.
	if _, errOut, code := c.run("fleet", "ls", "--ca", pki.OtherCert); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("fleet ls with another CA: exit %d\n%s", code, errOut)
	}
}

// fleet login with a username and password against a mosquitto that
// requires them: a wrong password stores nothing; the right one is stored
// and used; a different --username later does not reuse it.
func TestFleetLoginPassword(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "ops", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	b := mosquittotest.Start(t, mosquittotest.WithConfigLines("allow_anonymous false", "password_file "+pw))
	c := newCLI(t)
	if _, errOut, code := c.run("fleet", "ls", "--broker", b.URL()); code != 1 || !strings.Contains(errOut, "not Authorized") {
		t.Fatalf("anonymous fleet ls: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := c.run("fleet", "login", b.URL(), "--username", "ops", "--password", "wrong"); code != 1 || !strings.Contains(errOut, "nothing stored") {
		t.Errorf("login with a wrong password: exit %d\n%s", code, errOut)
	}
	out := c.ok("fleet", "login", b.URL(), "--username", "ops", "--password", "s3cret", "--json")
	(&goldens{t: t}).compare("fleet_login", strings.ReplaceAll(out, b.URL(), "<broker>")) // a fresh port per run
	if out := c.ok("fleet", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("fleet ls with the stored password: %q", out)
	}
	if _, errOut, code := c.run("fleet", "ls", "--username", "someone-else"); code != 1 || !strings.Contains(errOut, "not Authorized") {
		t.Errorf("another username with the stored password: exit %d\n%s", code, errOut)
	}
}
