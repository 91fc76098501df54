package gateway

import (
	"errors"
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

// memory_limit wins over GOMEMLIMIT (then left as the Go runtime applied
// it), which wins over a quarter of the device's memory.
func TestMemoryLimitSource(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	gib := func() (int64, error) { return 1 << 30, nil }
	unknown := func() (int64, error) { return 0, errors.New("no /proc/meminfo") }
	c, err := LoadConfig(writeConfig(t, "memory_limit: 48MiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c        *Config
		env      string
		memTotal func() (int64, error)
		limit    edgefn.Size
		from     string
	}{
		{c, "160MiB", gib, 48 * edgefn.MiB, "memory_limit"},
		{&Config{}, "160MiB", gib, 0, "GOMEMLIMIT"},
		{&Config{}, "", gib, 256 * edgefn.MiB, "MemTotal/4"},
		{&Config{}, "", unknown, 0, "none (MemTotal unknown)"},
	} {
		if l, from := tc.c.memoryLimit(env(tc.env), tc.memTotal); l != tc.limit || from != tc.from {
			t.Errorf("memory_limit %s, GOMEMLIMIT %q: got %s from %s, want %s from %s", tc.c.MemoryLimit, tc.env, l, from, tc.limit, tc.from)
		}
	}
}

// grants.max.files entries resolve next to the config file.
func TestLoadConfigFileRoots(t *testing.T) {
	p := writeConfig(t, "grants:\n  max:\n    files: [inbox, /var/lib/edgefn/inbox]\n")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(filepath.Dir(p), "inbox"), "/var/lib/edgefn/inbox"}; strings.Join(c.Grants.Max.Files, " ") != strings.Join(want, " ") {
		t.Errorf("grants.max.files = %q, want %q", c.Grants.Max.Files, want)
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
	if abs, _ := filepath.Abs("../examples/c-file-stats/inbox"); len(c.Grants.Max.Files) != 1 || c.Grants.Max.Files[0] != abs {
		t.Errorf("grants.max.files = %q, want [%s]", c.Grants.Max.Files, abs)
	}
	if !strings.HasSuffix(c.DataDir, "data") || !filepath.IsAbs(c.DataDir) && !strings.HasPrefix(c.DataDir, "../") {
		t.Errorf("data dir = %q", c.DataDir)
	}
}

// The packaged config reads without problems and keeps the built-in
// ceilings for the limits it does not name.
func TestLoadConfigPackaged(t *testing.T) {
	c, err := LoadConfig("../configs/edgefn.packaged.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := c.MaxLimits(); m.Memory != 64*edgefn.MiB || m.MaxOutput != 4*edgefn.MiB || m.MaxLog != 64*edgefn.KiB {
		t.Errorf("maxima = %+v", m)
	}
	if len(c.Grants.Max.Publish) != 1 || c.Grants.Max.Publish[0] != "+/#" {
		t.Errorf("grants.max.publish = %q", c.Grants.Max.Publish)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "gatway_id: x\n", []string{`edgefn.yaml:1: gatway_id: unknown key "gatway_id", did you mean "gateway_id"?`}},
		{"nested unknown", "outbox:\n  max_byte: 1MiB\n", []string{`edgefn.yaml:2: outbox.max_byte: unknown key "max_byte", did you mean "max_bytes"?`}},
		{"bad size", "outbox:\n  max_bytes: 1MB\n", []string{"edgefn.yaml:2:", `unknown unit "MB"`}},
		{"bad duration", "outbox:\n  max_age: forever\n", []string{"edgefn.yaml:2:", "not a duration"}},
		{"bad policy", "outbox:\n  on_full: panic\n", []string{`outbox.on_full: "panic": use drop_oldest or reject_new`}},
		{"plain admin off loopback", "admin:\n  listen: 0.0.0.0:8787\n  tls: \"off\"\n", []string{"refuses to listen there without TLS"}},
		{"uplink both", "uplinks:\n  - http: {url: http://x}\n    mqtt: {broker: tcp://y}\n", []string{"uplinks[0]: set http or mqtt, not both"}},
		{"uplink bad url", "uplinks:\n  - http: {url: ftp://x}\n", []string{`edgefn.yaml:2: uplinks[0].http.url: "ftp://x": scheme must be http or https`}},
		{"uplink typo", "uplinks:\n  - http: {url: http://x, bearer: y}\n", []string{`edgefn.yaml:2: uplinks[0].http.bearer: unknown key "bearer"`}},
		{"gpio backend", "gpio:\n  backend: sysfs\n", []string{`gpio.backend: "sysfs"`}},
		{"default over max", "limits:\n  default: {memory: 64MiB}\n  max: {memory: 32MiB}\n", []string{"edgefn.yaml:2: limits.default.memory: 64MiB: over the agent's maximum 32MiB (limits.max.memory)"}},
		{"default over default max", "limits:\n  default: {max_output: 8MiB}\n", []string{"edgefn.yaml:2: limits.default.max_output: 8MiB: over the agent's maximum 4MiB"}},
		{"max out of range", "limits:\n  max:\n    concurrency: 5000\n", []string{"edgefn.yaml:3: limits.max.concurrency: 5000: out of range, use 1 to 1024"}},
		{"unknown limit", "limits:\n  max:\n    max_outptu: 1MiB\n", []string{`edgefn.yaml:3: limits.max.max_outptu: unknown key "max_outptu", did you mean "max_output"?`}},
		{"empty files root", "grants:\n  max:\n    files: [\"\"]\n", []string{`edgefn.yaml:3: grants.max.files[0]: "": name a directory`}},
		{"bad grant ceiling", "grants:\n  max:\n    publish: [\"a/#/b\"]\n", []string{`edgefn.yaml:3: grants.max.publish[0]: "a/#/b": not a valid MQTT topic filter`}},
		{"old keepalive spelling", "broker:\n  external:\n    brokers: [tcp://127.0.0.1:1883]\n    keepalive: 30s\n", []string{`edgefn.yaml:4: broker.external.keepalive: unknown key "keepalive", did you mean "keep_alive"?`}},
		{"external broker field", "broker:\n  external:\n    client_id: x\n    brokers:\n      - tcp://h\n      - ws://x\n    tls: {cert_file: /nonexistent.pem}\n", []string{
			`edgefn.yaml:6: broker.external.brokers[1]: "ws://x": scheme "ws" not supported`,
			`edgefn.yaml:7: broker.external.tls.cert_file: cert_file and key_file must be given together`}},
		{"bad duration typed", "shutdown_grace: 5\n", []string{`edgefn.yaml:1: shutdown_grace: "5": not a duration`}},
		{"long value cut", "log_level: " + strings.Repeat("x", 5000) + "\n", []string{`log_level: "xxxxxxxx`, "… (5000 bytes): use debug"}},
		{"several at once", "log_level: loud\ngpio:\n  backend: x\n", []string{"log_level", "gpio.backend"}},
		{"memory limit too low", "memory_limit: 4MiB\n", []string{"edgefn.yaml:1: memory_limit: 4MiB: use 16MiB to 64GiB"}},
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
			if len(err.Error()) > 1000 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// A config file far larger than any real one is refused before it is
// parsed, with a short error (a 100 MB file took 4 s and 790 MB to parse
// and was echoed whole in the error).
func TestLoadConfigTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edgefn.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("gateway_id: " + strings.Repeat("x", 100) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(p)
	if err == nil {
		t.Fatal("a 100 MB config was accepted")
	}
	if !strings.Contains(err.Error(), "larger than the 1024 KiB a config or manifest file may be") || len(err.Error()) > 300 {
		t.Errorf("error = %q", err)
	}
}

// Any bytes as a config: an error or a valid config, never a panic, and
// errors stay short.
func FuzzParseConfig(f *testing.F) {
	shipped, err := os.ReadFile("../configs/edgefn.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped)
	f.Add([]byte("limits:\n  max: {max_output: 4GiB}\ngrants:\n  max:\n    publish: [\"#\"]\n"))
	f.Add([]byte("uplinks:\n  - http: {url: https://x, tls: {ca_file: /nope}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig("edgefn.yaml", data)
		if err == nil && c == nil {
			t.Fatal("no config and no error")
		}
		if err != nil && len(err.Error()) > 64<<10 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}

// Fields added by other parts (broker users with ACLs, a *bool, sizes and
// durations deep in a list) need nothing but their struct tags.
func TestLoadConfigNestedFields(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, `broker:
  embedded:
    listen: "127.0.0.1:0"
    local_full_access: false
    max_packet_size: 64KiB
    users:
      - username: sensor1
        password: change-me
        publish: ["sensors/%u/#"]
        subscribe: "actuators/%u/#"
uplinks:
  - http:
      url: https://ingest.example.com/v1
      headers: {X-Tenant: t1}
      batch: {max_bytes: 512KiB, linger: 50ms}
shutdown_grace: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Broker.Embedded
	if e.LocalFullAccess == nil || *e.LocalFullAccess || e.MaxPacketSize != 64*edgefn.KiB || len(e.Users) != 1 ||
		e.Users[0].Publish[0] != "sensors/%u/#" || len(e.Users[0].Subscribe) != 1 {
		t.Errorf("broker: %+v", e)
	}
	h := c.Uplinks[0].HTTP
	if h.Headers["X-Tenant"] != "t1" || h.Batch.MaxBytes != 512*edgefn.KiB || h.Batch.Linger != 50*time.Millisecond || c.ShutdownGrace != 2*time.Second {
		t.Errorf("uplink: %+v, shutdown_grace %v", h, c.ShutdownGrace)
	}
}

// TestConfigEmbeddedBroker: the embedded broker's ACLs, limits and TLS
// listener decode from the agent config as docs/mqtt.md writes them, and
// mistakes are reported with their line.
func TestConfigEmbeddedBroker(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, `broker:
  embedded:
    users:
      - username: sensor1
        password: change-me
        publish: ["sensors/%u/#"]
        subscribe: ["actuators/%u/#"]
    anonymous: {publish: ["tools/#"]}
    local_full_access: false
    max_packet_size: 64KiB
    connect_timeout: 3s
    max_clients: 50
    tls:
      listen: ":8883"
      client_ca_file: ca.pem
      client_certs: require
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Broker.Embedded
	if u := e.Users[0]; u.Publish[0] != "sensors/%u/#" || u.Subscribe[0] != "actuators/%u/#" || e.Anonymous.Publish[0] != "tools/#" ||
		e.LocalFullAccess == nil || *e.LocalFullAccess || e.MaxPacketSize != 64<<10 || e.ConnectTimeout != 3*time.Second ||
		e.MaxClients != 50 || e.TLS.Listen != ":8883" || e.TLS.ClientCerts != "require" {
		t.Errorf("decoded %+v", e)
	}
	_, err = LoadConfig(writeConfig(t, "broker:\n  embedded:\n    users:\n      - username: s\n        password: p\n        publsh: [\"x\"]\n        subscribe: [\"a+\"]\n"))
	for _, want := range []string{"edgefn.yaml:6", "publsh", "edgefn.yaml:7: broker.embedded.users[0].subscribe[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig = %v, want it to mention %q", err, want)
		}
	}
}
