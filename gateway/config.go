package gateway

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/strictyaml"
	"github.com/edgefn/edgefn/sync/fleet"
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
	// Fleet, when set, keeps the functions at the desired state that
	// signed documents on the cloud broker name (docs/fleet.md). It
	// requires admin.trusted_keys.
	Fleet  *fleet.Config `yaml:"fleet"`
	Outbox OutboxConfig  `yaml:"outbox"`
	GPIO   GPIOConfig    `yaml:"gpio"`
	Limits LimitsConfig  `yaml:"limits"`
	Grants GrantsConfig  `yaml:"grants"`
	// ShutdownGrace bounds each step of shutdown (drain, commit, sync).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// QueueSize is the bounded queue length per function.
	QueueSize int `yaml:"queue_size"`
	// MaxChainDepth bounds chains of functions triggering each other
	// through their publishes (default 8): a publish of an invocation at
	// this depth is dropped, counted and logged (docs/mqtt.md, Chain depth).
	MaxChainDepth int `yaml:"max_chain_depth"`
	// MemoryLimit is the Go runtime's soft memory limit
	// (debug.SetMemoryLimit): the garbage collector collects more often as
	// the agent's Go memory (heap, stacks, guest memories) nears it, and
	// returns freed memory to the OS to stay under it. Default: GOMEMLIMIT
	// from the environment when set, else a quarter of MemTotal. Soft: the
	// agent goes over it rather than stop (the collector then takes at most
	// about half the CPU).
	MemoryLimit edgefn.Size `yaml:"memory_limit"`

	// path is the file the config was read from, doc where each field was
	// in it (nil for a config built in code).
	path string
	doc  *strictyaml.Doc
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
	// HeaderTimeout bounds reading a request's headers (default 10s),
	// ReadTimeout the whole request with its body (default 2m: a deploy
	// over a slow link), WriteTimeout writing a response (default 2m; the
	// event streams are exempt, each of their writes has 30s) and
	// IdleTimeout a kept-alive connection between requests (default 2m).
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	ReadTimeout   time.Duration `yaml:"read_timeout"`
	WriteTimeout  time.Duration `yaml:"write_timeout"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
}

// UplinkConfig is the cloud uplink: exactly one of HTTP and MQTT is set.
// See docs/uplink.md for their fields.
type UplinkConfig struct {
	HTTP *uplink.HTTPConfig `yaml:"http"`
	MQTT *uplink.MQTTConfig `yaml:"mqtt"`
}

// OutboxConfig sets the outbox's durability and budgets.
type OutboxConfig struct {
	Durability string        `yaml:"durability"`
	MaxBytes   edgefn.Size   `yaml:"max_bytes"`
	MaxAge     time.Duration `yaml:"max_age"`
	OnFull     string        `yaml:"on_full"`
}

// GPIOConfig picks the GPIO backend.
type GPIOConfig struct {
	// Backend is periph, simulated or none (default simulated when no GPIO
	// chip is present would hide mistakes, so the default is none).
	Backend string `yaml:"backend"`
	// Pins lists the simulated chip's pins (default GPIO0..GPIO27).
	Pins []string `yaml:"pins"`
}

// LimitsConfig holds the agent-wide default and maximum function limits
// (the fields of edgefn.LimitFields). A zero field of Default takes
// edgefn.DefaultLimits; a zero field of Max takes edgefn.DefaultMaxLimits.
type LimitsConfig struct {
	Default edgefn.Limits `yaml:"default"`
	Max     edgefn.Limits `yaml:"max"`
}

// GrantsConfig holds the ceilings on what a manifest's allow section may
// grant; a deploy asking for more is refused.
type GrantsConfig struct {
	Max GrantCeilings `yaml:"max"`
}

// GrantCeilings are the grants a function may be given.
type GrantCeilings struct {
	// Publish lists the MQTT filters a publish grant must fall within.
	// Unset: DefaultPublishCeiling, every topic but "$" ones, and not "#"
	// itself. An empty list allows no publish grant.
	Publish []string `yaml:"publish"`
	// PublishToTriggers lists the filters within which a publish grant may
	// reach a topic another function is triggered by (chains of
	// functions). Unset: none may.
	PublishToTriggers []string `yaml:"publish_to_triggers"`
	// Files lists the directories file triggers may watch: a trigger's
	// directory (symbolic links resolved) must be one of them or inside
	// one. Relative paths resolve next to the config file. Unset or empty:
	// no file trigger is allowed (a file trigger reads files into a
	// function and moves or deletes them).
	Files []string `yaml:"files"`
}

// DefaultPublishCeiling is grants.max.publish when the agent config does
// not set it: a grant of "#" or of a "$" topic such as "$SYS/#" needs the
// operator to list it.
var DefaultPublishCeiling = []string{"+/#"}

// Default admin and broker addresses.
const (
	DefaultAdminListen  = "127.0.0.1:8787"
	DefaultBrokerListen = ":1883"
)

// DefaultMaxChainDepth is max_chain_depth when the config does not set it.
const DefaultMaxChainDepth = 8

// Bounds of memory_limit. Without it (and without GOMEMLIMIT) the limit is
// a quarter of the device's memory (MemTotal), like a JVM's default heap:
// far above what the agent uses at rest (about 10 MiB of Go memory) or
// under saturation (about 30 MiB), it keeps the heap from growing into the
// memory other software needs, and a lower limit would make the collector
// run all the time on a gateway with thousands of device connections
// (about 30 KiB each, docs/performance.md).
const (
	MinMemoryLimit = 16 * edgefn.MiB
	MaxMemoryLimit = 64 * edgefn.GiB
)

// LoadConfig reads and validates the agent config at path. An empty path
// means all defaults. Errors name the file, line and field; every problem is
// reported at once. A file larger than strictyaml.MaxFileSize is refused
// before it is parsed.
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		d, err := strictyaml.ReadFile(path, c)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		c.path, c.doc = path, d
	}
	return c.finish()
}

// parseConfig is LoadConfig of data read from path.
func parseConfig(path string, data []byte) (*Config, error) {
	c := &Config{path: path}
	c.doc = strictyaml.Decode(path, data, c)
	return c.finish()
}

func (c *Config) finish() (*Config, error) {
	if c.doc != nil && c.doc.Broken() {
		return nil, c.doc.Err()
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var gatewayIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

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
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.Admin.HeaderTimeout, 10 * time.Second}, {&c.Admin.ReadTimeout, 2 * time.Minute}, {&c.Admin.WriteTimeout, 2 * time.Minute}, {&c.Admin.IdleTimeout, 2 * time.Minute}} {
		if *d.v == 0 {
			*d.v = d.def
		}
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
		c.ShutdownGrace = 5 * time.Second
	}
	if c.Grants.Max.Publish == nil {
		c.Grants.Max.Publish = DefaultPublishCeiling
	}
	for i, d := range c.Grants.Max.Files {
		if d == "" || filepath.IsAbs(d) {
			continue
		}
		if c.path != "" {
			d = filepath.Join(filepath.Dir(c.path), d)
		}
		if abs, err := filepath.Abs(d); err == nil {
			c.Grants.Max.Files[i] = abs
		}
	}
	if c.QueueSize == 0 {
		c.QueueSize = 64
	}
	if c.MaxChainDepth == 0 {
		c.MaxChainDepth = DefaultMaxChainDepth
	}
}

// memoryLimit is the soft memory limit the agent sets and where it comes
// from ("memory_limit", "GOMEMLIMIT" or "MemTotal/4"); 0 with GOMEMLIMIT
// (the runtime already applied it) or when memTotal fails (none).
func (c *Config) memoryLimit(getenv func(string) string, memTotal func() (int64, error)) (edgefn.Size, string) {
	switch {
	case c.MemoryLimit != 0:
		return c.MemoryLimit, "memory_limit"
	case getenv("GOMEMLIMIT") != "":
		return 0, "GOMEMLIMIT"
	}
	total, err := memTotal()
	if err != nil || total <= 0 {
		return 0, "none (MemTotal unknown)"
	}
	return max(edgefn.Size(total/4), MinMemoryLimit), "MemTotal/4"
}

// DefaultLimits returns the agent's default limits for functions.
func (c *Config) DefaultLimits() edgefn.Limits {
	return c.Limits.Default.WithDefaults(edgefn.DefaultLimits)
}

// MaxLimits returns the agent's maxima: limits.max, its zero fields taken
// from edgefn.DefaultMaxLimits.
func (c *Config) MaxLimits() edgefn.Limits {
	return c.Limits.Max.WithDefaults(edgefn.DefaultMaxLimits)
}

// Validate checks the config without touching the network or the disk and
// returns every problem at once.
func (c *Config) Validate() error {
	d := strictyaml.New("config")
	if c.doc != nil {
		d = c.doc.Clone()
	}
	// Problems join those found while decoding; a field whose value
	// could not be decoded is not reported again.
	bad := d.Errorf
	if !gatewayIDRE.MatchString(c.GatewayID) {
		bad("gateway_id", "%s: use letters, digits, '.', '-' or '_' (at most 63)", strictyaml.Quote(c.GatewayID))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%s: use debug, info, warn or error", strictyaml.Quote(c.LogLevel))
	}
	if c.Broker.External != nil {
		d.Report("broker.external", c.Broker.External.Validate())
	} else {
		d.Report("broker.embedded", c.Broker.Embedded.Validate())
	}
	if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		bad("admin.listen", "%s: use host:port", strictyaml.Quote(c.Admin.Listen))
	}
	switch c.Admin.TLS {
	case "auto", "off":
	case "files":
		if c.Admin.CertFile == "" || c.Admin.KeyFile == "" {
			bad("admin.tls", "files needs cert_file and key_file")
		}
	default:
		bad("admin.tls", "%s: use auto, off or files", strictyaml.Quote(c.Admin.TLS))
	}
	if c.Admin.TLS == "off" && !isLoopbackListen(c.Admin.Listen) {
		bad("admin.listen", "%s is not loopback: the admin API refuses to listen there without TLS (set admin.tls: auto)", strictyaml.Quote(c.Admin.Listen))
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
			d.Report(f+".http", u.HTTP.Validate())
		case u.MQTT != nil:
			d.Report(f+".mqtt", u.MQTT.Validate())
		default:
			bad(f, "set http or mqtt")
		}
	}
	if c.Fleet != nil {
		d.Report("fleet", c.Fleet.Validate())
		if len(c.Admin.TrustedKeys) == 0 {
			bad("fleet", "needs admin.trusted_keys: fleet documents are applied only when signed by a trusted key (edgefn keygen)")
		}
	}
	switch c.Outbox.Durability {
	case "full", "normal":
	default:
		bad("outbox.durability", "%s: use full or normal", strictyaml.Quote(c.Outbox.Durability))
	}
	switch c.Outbox.OnFull {
	case "drop_oldest", "reject_new":
	default:
		bad("outbox.on_full", "%s: use drop_oldest or reject_new", strictyaml.Quote(c.Outbox.OnFull))
	}
	switch c.GPIO.Backend {
	case "periph", "simulated", "none":
	default:
		bad("gpio.backend", "%s: use periph, simulated or none", strictyaml.Quote(c.GPIO.Backend))
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<16 {
		bad("queue_size", "%d: use 1 to 65536", c.QueueSize)
	}
	if c.MaxChainDepth < 1 || c.MaxChainDepth > 1000 {
		bad("max_chain_depth", "%d: use 1 to 1000", c.MaxChainDepth)
	}
	if l := c.MemoryLimit; l != 0 && (l < MinMemoryLimit || l > MaxMemoryLimit) {
		bad("memory_limit", "%s: use %s to %s", l, MinMemoryLimit, MaxMemoryLimit)
	}
	def, max := c.DefaultLimits(), c.MaxLimits()
	for _, f := range edgefn.LimitFields {
		for _, part := range []struct {
			name string
			l    edgefn.Limits
		}{{"default", c.Limits.Default}, {"max", c.Limits.Max}} {
			if v := f.Get(part.l); v != 0 {
				if err := f.CheckRange(v); err != nil {
					bad("limits."+part.name+"."+f.Key, "%v", err)
				}
			}
		}
		if v, m := f.Get(def), f.Get(max); v > m {
			bad("limits.default."+f.Key, "%s: over the agent's maximum %s (limits.max.%s)", f.Format(v), f.Format(m), f.Key)
		}
	}
	for _, list := range []struct {
		name    string
		filters []string
	}{{"grants.max.publish", c.Grants.Max.Publish}, {"grants.max.publish_to_triggers", c.Grants.Max.PublishToTriggers}} {
		for i, f := range list.filters {
			if !edgefn.ValidTopicFilter(f) {
				bad(fmt.Sprintf("%s[%d]", list.name, i), "%s: not a valid MQTT topic filter", strictyaml.Quote(f))
			}
		}
	}
	for i, d := range c.Grants.Max.Files {
		if !filepath.IsAbs(d) {
			bad(fmt.Sprintf("grants.max.files[%d]", i), "%s: name a directory (absolute, or relative to the config file)", strictyaml.Quote(d))
		}
	}
	return d.Err()
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
