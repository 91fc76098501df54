package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/triggers"
)

// Config is the agent config, read from configs/edgefn.yaml by LoadConfig.
// Every field has a working default so an empty file runs the agent on its
// embedded broker with data in ./data.
type Config struct {
	// GatewayID names this device in record ids ("<gateway_id>:<seq>") and
	// in the MQTT client id. Default: the host name.
	GatewayID string `yaml:"gateway_id"`
	// DataDir holds the outbox, the compile cache, the deployed functions,
	// the API token and the TLS certificate. Default ./data. Relative paths
	// are resolved against the config file's directory.
	DataDir string `yaml:"data_dir"`
	// FunctionsDir, when set, is scanned for *.yaml manifests at start.
	FunctionsDir string `yaml:"functions_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`

	Broker  BrokerConfig   `yaml:"broker"`
	Admin   AdminConfig    `yaml:"admin"`
	Uplinks []UplinkConfig `yaml:"uplinks"`
	Outbox  OutboxConfig   `yaml:"outbox"`
	GPIO    GPIOConfig     `yaml:"gpio"`
	Limits  LimitsConfig   `yaml:"limits"`
	// ShutdownGrace bounds each step of shutdown (drain, commit, sync).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// QueueSize is the bounded queue length per function.
	QueueSize int `yaml:"queue_size"`

	// path is the file the config was read from.
	path string
}

// BrokerConfig picks the MQTT broker: the embedded one (the default) or an
// external one when External is set. See docs/mqtt.md for their fields.
type BrokerConfig struct {
	Embedded triggers.BrokerConfig `yaml:"embedded"`
	External *triggers.MQTTConfig  `yaml:"external"`
}

// AdminConfig configures the admin HTTP API.
type AdminConfig struct {
	// Listen defaults to 127.0.0.1:8787. A non-loopback address requires
	// TLS and a token.
	Listen string `yaml:"listen"`
	// TLS is "auto" (a self-signed certificate in the data dir, the
	// default), "off" (loopback only), or certificate files.
	TLS      string `yaml:"tls"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TrustedKeys lists ed25519 public keys (base64) whose signatures
	// deploys must carry; empty means unsigned deploys are accepted.
	TrustedKeys []string `yaml:"trusted_keys"`
	// MaxUpload bounds a deploy's size.
	MaxUpload edgefn.Size `yaml:"max_upload"`
}

// UplinkConfig is the cloud uplink: exactly one of HTTP and MQTT is set.
// See docs/uplink.md for their fields.
type UplinkConfig struct {
	HTTP *uplink.HTTPConfig `yaml:"http"`
	MQTT *uplink.MQTTConfig `yaml:"mqtt"`
}

// OutboxConfig sets the outbox's durability and budgets.
type OutboxConfig struct {
	Durability string      `yaml:"durability"`
	MaxBytes   edgefn.Size `yaml:"max_bytes"`
	MaxAge     Duration    `yaml:"max_age"`
	OnFull     string      `yaml:"on_full"`
}

// GPIOConfig picks the GPIO backend.
type GPIOConfig struct {
	// Backend is periph, simulated or none (default simulated when no GPIO
	// chip is present would hide mistakes, so the default is none).
	Backend string `yaml:"backend"`
	// Pins lists the simulated chip's pins (default GPIO0..GPIO27).
	Pins []string `yaml:"pins"`
}

// LimitsConfig holds the agent-wide default and maximum function limits.
type LimitsConfig struct {
	Default LimitsYAML `yaml:"default"`
	Max     LimitsYAML `yaml:"max"`
}

// LimitsYAML is edgefn.Limits as written in the agent config.
type LimitsYAML struct {
	Memory       edgefn.Size `yaml:"memory"`
	Timeout      Duration    `yaml:"timeout"`
	Concurrency  int         `yaml:"concurrency"`
	MaxOutput    edgefn.Size `yaml:"max_output"`
	MaxPublishes int         `yaml:"max_publishes"`
	MaxLog       edgefn.Size `yaml:"max_log"`
	KeepWarm     Duration    `yaml:"keep_warm"`
	MaxDepth     int         `yaml:"max_depth"`
}

// Limits converts to the domain type.
func (l LimitsYAML) Limits() edgefn.Limits {
	return edgefn.Limits{
		Memory: l.Memory, Timeout: time.Duration(l.Timeout), Concurrency: l.Concurrency,
		MaxOutput: l.MaxOutput, MaxPublishes: l.MaxPublishes, MaxLog: l.MaxLog,
		KeepWarm: time.Duration(l.KeepWarm), MaxDepth: l.MaxDepth,
	}
}

// Duration is a time.Duration written in Go syntax ("50ms", "720h").
type Duration time.Duration

// UnmarshalYAML decodes a duration, reporting the line of a bad value and
// letting the decoder go on to report other problems.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q: not a duration, use for example 50ms, 30s or 720h", n.Line, n.Value)}}
	case v < 0:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q: must not be negative", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Default admin and broker addresses.
const (
	DefaultAdminListen  = "127.0.0.1:8787"
	DefaultBrokerListen = ":1883"
)

// LoadConfig reads and validates the agent config at path. An empty path
// means all defaults. Errors name the file, line and field; every problem is
// reported at once.
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(path, data, c); err != nil {
			return nil, err
		}
		c.path = path
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var (
	typeNameRE  = regexp.MustCompile(` in type [\w.]+`)
	gatewayIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// decodeStrict decodes YAML refusing unknown keys, and rewrites yaml.v3's
// messages to name the file and line the way manifest errors do.
func decodeStrict(file string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil // an empty file: all defaults
	}
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		m = typeNameRE.ReplaceAllString(m, "")
		m = strings.Replace(m, "field ", "unknown key ", 1)
		m = strings.Replace(m, " not found", "", 1)
		if strings.HasPrefix(m, "line ") {
			errs = append(errs, fmt.Errorf("%s:%s", file, strings.TrimPrefix(m, "line ")))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", file, m))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.GatewayID == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.GatewayID = h
		} else {
			c.GatewayID = "edgefn"
		}
	}
	base := "."
	if c.path != "" {
		base = filepath.Dir(c.path)
	}
	if c.DataDir == "" {
		c.DataDir = "data"
		base = "."
	}
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(base, c.DataDir)
	}
	if c.FunctionsDir != "" && !filepath.IsAbs(c.FunctionsDir) && c.path != "" {
		c.FunctionsDir = filepath.Join(filepath.Dir(c.path), c.FunctionsDir)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Broker.External == nil && c.Broker.Embedded.Listen == "" {
		c.Broker.Embedded.Listen = DefaultBrokerListen
	}
	if c.Broker.External != nil && c.Broker.External.ClientID == "" {
		c.Broker.External.ClientID = "edgefn-" + c.GatewayID
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Admin.TLS == "" {
		c.Admin.TLS = "auto"
	}
	if c.Admin.MaxUpload == 0 {
		c.Admin.MaxUpload = 32 * edgefn.MiB
	}
	if c.Outbox.Durability == "" {
		c.Outbox.Durability = "full"
	}
	if c.Outbox.OnFull == "" {
		c.Outbox.OnFull = "drop_oldest"
	}
	if c.Outbox.MaxBytes == 0 {
		c.Outbox.MaxBytes = 256 * edgefn.MiB
	}
	if c.GPIO.Backend == "" {
		c.GPIO.Backend = "none"
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(5 * time.Second)
	}
	if c.QueueSize == 0 {
		c.QueueSize = 64
	}
}

// DefaultLimits returns the agent's default limits for functions.
func (c *Config) DefaultLimits() edgefn.Limits {
	return c.Limits.Default.Limits().WithDefaults(edgefn.DefaultLimits)
}

// MaxLimits returns the agent's maxima (zero fields: no maximum).
func (c *Config) MaxLimits() edgefn.Limits { return c.Limits.Max.Limits() }

// Validate checks the config without touching the network or the disk and
// returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		name := c.path
		if name == "" {
			name = "config"
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(format, args...)))
	}
	if !gatewayIDRE.MatchString(c.GatewayID) {
		bad("gateway_id", "%q: use letters, digits, '.', '-' or '_' (at most 63)", c.GatewayID)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q: use debug, info, warn or error", c.LogLevel)
	}
	if c.Broker.External != nil {
		for _, e := range problems(c.Broker.External.Validate()) {
			bad("broker.external", "%s", e)
		}
	} else {
		for _, e := range problems(c.Broker.Embedded.Validate()) {
			bad("broker.embedded", "%s", e)
		}
	}
	if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		bad("admin.listen", "%q: use host:port", c.Admin.Listen)
	}
	switch c.Admin.TLS {
	case "auto", "off":
	case "files":
		if c.Admin.CertFile == "" || c.Admin.KeyFile == "" {
			bad("admin.tls", "files needs cert_file and key_file")
		}
	default:
		bad("admin.tls", "%q: use auto, off or files", c.Admin.TLS)
	}
	if c.Admin.TLS == "off" && !isLoopbackListen(c.Admin.Listen) {
		bad("admin.listen", "%q is not loopback: the admin API refuses to listen there without TLS (set admin.tls: auto)", c.Admin.Listen)
	}
	if len(c.Uplinks) > 1 {
		// Each uplink confirms (and so deletes) what it delivered; two
		// draining one outbox would each miss what the other confirmed.
		bad("uplinks", "%d uplinks: one is supported (records are deleted once the cloud confirms them)", len(c.Uplinks))
	}
	for i, u := range c.Uplinks {
		f := fmt.Sprintf("uplinks[%d]", i)
		switch {
		case u.HTTP != nil && u.MQTT != nil:
			bad(f, "set http or mqtt, not both")
		case u.HTTP != nil:
			for _, e := range problems(u.HTTP.Validate()) {
				bad(f+".http", "%s", e)
			}
		case u.MQTT != nil:
			for _, e := range problems(u.MQTT.Validate()) {
				bad(f+".mqtt", "%s", e)
			}
		default:
			bad(f, "set http or mqtt")
		}
	}
	switch c.Outbox.Durability {
	case "full", "normal":
	default:
		bad("outbox.durability", "%q: use full or normal", c.Outbox.Durability)
	}
	switch c.Outbox.OnFull {
	case "drop_oldest", "reject_new":
	default:
		bad("outbox.on_full", "%q: use drop_oldest or reject_new", c.Outbox.OnFull)
	}
	switch c.GPIO.Backend {
	case "periph", "simulated", "none":
	default:
		bad("gpio.backend", "%q: use periph, simulated or none", c.GPIO.Backend)
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<16 {
		bad("queue_size", "%d: use 1 to 65536", c.QueueSize)
	}
	for _, e := range edgefn.CheckLimits(c.DefaultLimits(), c.MaxLimits()) {
		bad("limits.default", "%v", e)
	}
	return errors.Join(errs...)
}

func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
