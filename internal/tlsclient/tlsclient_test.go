package tlsclient

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProblems(t *testing.T) {
	if (Config{}).IsSet() || !(Config{ServerName: "x"}).IsSet() {
		t.Error("IsSet")
	}
	errs := Config{CertFile: "/nonexistent/c.pem", CAFile: "/nonexistent/ca.pem"}.Problems()
	var got []string
	for _, e := range errs {
		var p *Problem
		if !errors.As(e, &p) {
			t.Fatalf("%v is not a *Problem", e)
		}
		got = append(got, e.Error())
	}
	want := []string{
		"cert_file: cert_file and key_file must be given together",
		`ca_file: "/nonexistent/ca.pem": no such file or directory`,
		`cert_file: "/nonexistent/c.pem": no such file or directory`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoad(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Config{CAFile: ca}).Load(); err == nil || !strings.HasPrefix(err.Error(), "ca_file: ") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA: %v", err)
	}
	c, err := Config{ServerName: "broker.local"}.Load()
	if err != nil || c.ServerName != "broker.local" || c.MinVersion == 0 || c.InsecureSkipVerify {
		t.Errorf("Load = %+v, %v", c, err)
	}
}
