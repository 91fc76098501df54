package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edgefn.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.Embedded.Listen != ":1883" || c.Admin.Listen != DefaultAdminListen || c.Outbox.Durability != "full" {
		t.Errorf("defaults: %+v", c)
	}
	if c.DefaultLimits() != edgefn.DefaultLimits {
		t.Errorf("default limits = %+v", c.DefaultLimits())
	}
}

func TestLoadConfigShipped(t *testing.T) {
	c, err := LoadConfig("../configs/edgefn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.GPIO.Backend != "simulated" || c.DefaultLimits().Timeout != 100*time.Millisecond {
		t.Errorf("shipped config: %+v", c)
	}
	if !strings.HasSuffix(c.DataDir, "data") || !filepath.IsAbs(c.DataDir) && !strings.HasPrefix(c.DataDir, "../") {
		t.Errorf("data dir = %q", c.DataDir)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "gatway_id: x\n", []string{"edgefn.yaml:1: unknown key gatway_id"}},
		{"nested unknown", "outbox:\n  max_byte: 1MiB\n", []string{"edgefn.yaml:2: unknown key max_byte"}},
		{"bad size", "outbox:\n  max_bytes: 1MB\n", []string{"edgefn.yaml:2:", `unknown unit "MB"`}},
		{"bad duration", "outbox:\n  max_age: forever\n", []string{"edgefn.yaml:2:", "not a duration"}},
		{"bad policy", "outbox:\n  on_full: panic\n", []string{`outbox.on_full: "panic": use drop_oldest or reject_new`}},
		{"plain admin off loopback", "admin:\n  listen: 0.0.0.0:8787\n  tls: \"off\"\n", []string{"refuses to listen there without TLS"}},
		{"uplink both", "uplinks:\n  - http: {url: http://x}\n    mqtt: {broker: tcp://y}\n", []string{"uplinks[0]: set http or mqtt, not both"}},
		{"uplink bad url", "uplinks:\n  - http: {url: ftp://x}\n", []string{"uplinks[0].http: url"}},
		{"uplink typo", "uplinks:\n  - http: {url: http://x, bearer: y}\n", []string{"edgefn.yaml:2: unknown key bearer"}},
		{"gpio backend", "gpio:\n  backend: sysfs\n", []string{`gpio.backend: "sysfs"`}},
		{"default over max", "limits:\n  default: {memory: 64MiB}\n  max: {memory: 32MiB}\n", []string{"limits.memory 64MiB is over the agent's maximum 32MiB"}},
		{"several at once", "log_level: loud\ngpio:\n  backend: x\n", []string{"log_level", "gpio.backend"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
