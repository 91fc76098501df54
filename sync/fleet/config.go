package fleet

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgefn/edgefn/internal/strictyaml"
	"github.com/edgefn/edgefn/internal/tlsclient"
	"github.com/edgefn/edgefn/sync/uplink"
)

// Bounds of fleet.status_every.
const (
	MinStatusEvery = 30 * time.Second
	MaxStatusEvery = time.Hour
)

// Config is the agent config's fleet section. Credentials and TLS are as
// in uplinks[].mqtt.
type Config struct {
	// Broker is the cloud broker URL: tcp:// or mqtt:// (plain), ssl://,
	// tls:// or mqtts:// (TLS). Required.
	Broker string `yaml:"broker"`
	// Groups are this gateway's groups, besides its own gateway_id; their
	// documents apply in this order, the gateway's own last.
	Groups []string `yaml:"groups"`
	// TopicPrefix defaults to DefaultPrefix.
	TopicPrefix string `yaml:"topic_prefix"`
	// ClientID defaults to "edgefn-fleet-<gateway_id>".
	ClientID string           `yaml:"client_id"`
	Username string           `yaml:"username"`
	Password string           `yaml:"password"`
	TLS      tlsclient.Config `yaml:"tls"`
	// HealthWindow is the span of each function's health in the status
	// (DefaultHealthWindow; MinHealthWindow to MaxHealthWindow).
	HealthWindow time.Duration `yaml:"health_window"`
	// StatusEvery is how often the status is republished when nothing
	// changed (default 1m, 30s to 1h): brokers that meter every message
	// (AWS IoT Core) want it longer.
	StatusEvery time.Duration `yaml:"status_every"`
	// FetchTimeout bounds the background fetch of one module (default 2m,
	// 1s to 1h): a module with a missing chunk is reported as such after
	// it, and tried again with the backoff of a function not applied.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// ModuleTLS is the TLS of modules named by an https URL: ca_file
	// replaces the system roots, cert_file/key_file for mutual TLS.
	ModuleTLS tlsclient.Config `yaml:"module_tls"`
}

func fieldErr(field, format string, args ...any) error {
	return &strictyaml.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks the config without I/O beyond checking that TLS files
// exist, returning every problem, each a *strictyaml.FieldError.
func (c Config) Validate() error {
	var errs []error
	if err := uplink.CheckBroker(c.Broker); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, g := range c.Groups {
		if err := CheckName(g); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("groups[%d]", i), "%v", err))
		}
		if seen[g] {
			errs = append(errs, fieldErr(fmt.Sprintf("groups[%d]", i), "%q listed twice", g))
		}
		seen[g] = true
	}
	if p := c.TopicPrefix; p != "" && (strings.ContainsAny(p, "+#") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
		errs = append(errs, fieldErr("topic_prefix", "%q: no wildcards, no leading or trailing '/'", p))
	}
	if p := c.TopicPrefix; strings.Count(p, "/") > MaxPrefixSlashes {
		errs = append(errs, fieldErr("topic_prefix", "%q: at most %d levels: the deepest fleet topic, <prefix>/blobs/<sha256>/<chunk>, adds 4 slashes and AWS IoT Core allows 7", p, MaxPrefixSlashes+1))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, fieldErr("password", "set without username"))
	}
	errs = append(errs, uplink.TLSProblems(c.TLS, "tls.")...)
	errs = append(errs, uplink.TLSProblems(c.ModuleTLS, "module_tls.")...)
	if err := CheckHealthWindow(c.HealthWindow); err != nil {
		errs = append(errs, fieldErr("health_window", "%v", err))
	}
	if d := c.StatusEvery; d != 0 && (d < MinStatusEvery || d > MaxStatusEvery) {
		errs = append(errs, fieldErr("status_every", "%v: want %v to %v", d, MinStatusEvery, MaxStatusEvery))
	}
	if d := c.FetchTimeout; d != 0 && (d < time.Second || d > time.Hour) {
		errs = append(errs, fieldErr("fetch_timeout", "%v: want 1s to 1h", d))
	}
	return errors.Join(errs...)
}
