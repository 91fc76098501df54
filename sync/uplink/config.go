package uplink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/strictyaml"
	"github.com/edgefn/edgefn/internal/tlsclient"
)

// FieldError is one problem in an uplink config: the field (as named in the
// agent config file, e.g. "batch.max_records") and what is wrong with it.
// Validate joins every FieldError it finds with errors.Join; pick them out
// with errors.As.
type FieldError = strictyaml.FieldError

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// belowZero adds to errs the error "<v>: <must>" for field when v is below
// zero.
func belowZero[T ~int | ~int64](errs []error, field string, v T, must string) []error {
	if v < 0 {
		errs = append(errs, fieldErr(field, "%v: %s", v, must))
	}
	return errs
}

// orDefault sets an unset (zero) config value to its default.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Batch sizes the batches an uplink sends.
type Batch struct {
	// MaxRecords caps the records in one batch (HTTP request). Default 500.
	MaxRecords int `yaml:"max_records"`
	// MaxBytes caps the payload bytes in one batch; one record larger than
	// this is still sent, alone. Default 1MiB.
	MaxBytes edgefn.Size `yaml:"max_bytes"`
	// Linger is how long a batch that is not full waits for more records
	// before it is sent. Zero sends at once. Default 100ms.
	Linger time.Duration `yaml:"linger"`
}

func (b Batch) withDefaults() Batch {
	orDefault(&b.MaxRecords, 500)
	orDefault(&b.MaxBytes, edgefn.MiB)
	orDefault(&b.Linger, 100*time.Millisecond)
	return b
}

func (b Batch) validate(prefix string) []error {
	var errs []error
	errs = belowZero(errs, prefix+"max_records", b.MaxRecords, "must be positive")
	errs = belowZero(errs, prefix+"max_bytes", b.MaxBytes, "must be positive")
	errs = belowZero(errs, prefix+"linger", b.Linger, "must not be negative")
	return errs
}

// Backoff is the retry policy while the cloud is unreachable or failing:
// exponential from Min to Max with jitter. Max stays at a few seconds so a
// link that comes back is noticed quickly.
type Backoff struct {
	// Min is the first delay. Default 200ms.
	Min time.Duration `yaml:"min"`
	// Max caps the delay. Default 5s.
	Max time.Duration `yaml:"max"`
	// MaxRetryAfter caps how long a server's Retry-After is honored.
	// Default 5m.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
}

func (b Backoff) withDefaults() Backoff {
	orDefault(&b.Min, 200*time.Millisecond)
	orDefault(&b.Max, 5*time.Second)
	orDefault(&b.MaxRetryAfter, 5*time.Minute)
	return b
}

func (b Backoff) validate(prefix string) []error {
	var errs []error
	errs = belowZero(errs, prefix+"min", b.Min, "must not be negative")
	errs = belowZero(errs, prefix+"max", b.Max, "must not be negative")
	if b.Min > 0 && b.Max > 0 && b.Min > b.Max {
		errs = append(errs, fieldErr(prefix+"min", "%v: larger than backoff.max %v", b.Min, b.Max))
	}
	errs = belowZero(errs, prefix+"max_retry_after", b.MaxRetryAfter, "must not be negative")
	return errs
}

// TLS configures a TLS client; see tlsclient.Config.
type TLS = tlsclient.Config

func tlsProblems(c TLS, prefix string) []error {
	var errs []error
	for _, e := range c.Problems() {
		var p *tlsclient.Problem
		if errors.As(e, &p) {
			errs = append(errs, fieldErr(prefix+p.Field, "%s", p.Msg))
		}
	}
	return errs
}

// linkConfig is what HTTPConfig and MQTTConfig share for prepare.
type linkConfig[C any] interface {
	Validate() error
	withDefaults() C
	name() string
}

// prepare is the start NewHTTP and NewMQTT share: it checks that there is
// a Source to drain and that cfg is valid (kind names the uplink in the
// error), and returns cfg with its defaults and logger (a discarding one
// for nil) naming the uplink on every line.
func prepare[C linkConfig[C]](kind string, src Source, cfg C, logger *slog.Logger) (C, *slog.Logger, error) {
	if src == nil {
		return cfg, nil, fmt.Errorf("uplink %s: nil Source", kind)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("uplink %s: %w", kind, err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return cfg, logger.With("uplink", cfg.name()), nil
}

// linkTLS loads the tls: files of an uplink's config, warning on logger
// when certificate verification is off.
func linkTLS(kind string, c TLS, logger *slog.Logger) (*tls.Config, error) {
	tc, err := loadTLS(c, "tls.")
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", kind, err)
	}
	if c.InsecureSkipVerify {
		logger.Warn("TLS certificate verification is off (tls.insecure_skip_verify)")
	}
	return tc, nil
}

// loadTLS builds the tls.Config; it reads the files.
func loadTLS(c TLS, prefix string) (*tls.Config, error) {
	cfg, err := c.Load()
	var p *tlsclient.Problem
	if errors.As(err, &p) {
		return nil, fieldErr(prefix+p.Field, "%s", p.Msg)
	}
	return cfg, err
}

// HTTPConfig configures an HTTP(S) uplink.
type HTTPConfig struct {
	// Name identifies the uplink in status and logs. Default "http".
	Name string `yaml:"name"`
	// URL receives the POSTed batches (http:// or https://). Required.
	URL string `yaml:"url"`
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken string `yaml:"bearer_token"`
	// Headers are added to every request (API keys, tenant ids...).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one request, from connect to the end of the response.
	// Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// RetryOn lists 4xx statuses that are retried like a 5xx instead of
	// dead-lettering the batch. Default 401, 403, 404: those say the
	// credentials or the URL are wrong, not the records, and dead-lettering
	// everything while a token is expired would lose the queue. Set an
	// empty list to dead-letter on every 4xx but 408, 413 and 429.
	RetryOn []int   `yaml:"retry_on"`
	TLS     TLS     `yaml:"tls"`
	Batch   Batch   `yaml:"batch"`
	Backoff Backoff `yaml:"backoff"`
	// StrictOrder, when set, lists the functions whose records keep the
	// strict seq order while a backlog drains (manifest uplink.order:
	// strict); the other functions' new records take the live lane (see
	// LaneSource). It is asked at each drain point. Set by the agent.
	StrictOrder func() []string `yaml:"-"`
}

// Validate checks the config without I/O beyond checking that TLS files
// exist, and returns every problem at once, each a *FieldError.
func (c HTTPConfig) Validate() error {
	var errs []error
	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		errs = append(errs, fieldErr("url", "required, e.g. https://ingest.example.com/v1/records"))
	case err != nil:
		errs = append(errs, fieldErr("url", "%q: %v", c.URL, err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fieldErr("url", "%q: scheme must be http or https", c.URL))
	case u.Host == "":
		errs = append(errs, fieldErr("url", "%q: no host", c.URL))
	case u.Scheme == "http" && c.TLS.IsSet():
		errs = append(errs, fieldErr("tls", "set but url %q is not https", c.URL))
	}
	for k, v := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") {
			errs = append(errs, fieldErr("headers", "%q: not a valid header name", k))
		}
		if strings.ContainsAny(v, "\r\n") {
			errs = append(errs, fieldErr("headers."+k, "value contains a line break"))
		}
	}
	if strings.ContainsAny(c.BearerToken, "\r\n") {
		errs = append(errs, fieldErr("bearer_token", "contains a line break"))
	}
	for _, st := range c.RetryOn {
		if st < 400 || st > 499 {
			errs = append(errs, fieldErr("retry_on", "%d: only 4xx statuses can be listed (5xx are always retried)", st))
		}
	}
	errs = belowZero(errs, "timeout", c.Timeout, "must not be negative")
	errs = append(errs, tlsProblems(c.TLS, "tls.")...)
	errs = append(errs, c.Batch.validate("batch.")...)
	errs = append(errs, c.Backoff.validate("backoff.")...)
	return errors.Join(errs...)
}

func (c HTTPConfig) name() string { return c.Name }

func (c HTTPConfig) withDefaults() HTTPConfig {
	orDefault(&c.Name, "http")
	orDefault(&c.Timeout, 30*time.Second)
	if c.RetryOn == nil {
		c.RetryOn = []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	}
	c.Batch = c.Batch.withDefaults()
	c.Backoff = c.Backoff.withDefaults()
	return c
}

// DefaultTopic is the MQTT topic template used when none is configured.
const DefaultTopic = "edgefn/{gateway}/{function}"

// MQTTConfig configures an MQTT uplink to a cloud broker.
type MQTTConfig struct {
	// Name identifies the uplink in status and logs. Default "mqtt".
	Name string `yaml:"name"`
	// Broker is the broker URL: tcp:// or mqtt:// (plain), ssl://, tls://
	// or mqtts:// (TLS). Required.
	Broker string `yaml:"broker"`
	// ClientID is the MQTT client id; cloud brokers often tie policies to
	// it. Default "edgefn-uplink-<hostname>".
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Topic is the topic template; {gateway}, {function} and {source} are
	// replaced from each record. Default DefaultTopic.
	Topic string `yaml:"topic"`
	// InFlight is the number of publishes sent and not yet acknowledged
	// (PUBACK). Default 32, at most 65535.
	InFlight int `yaml:"in_flight"`
	// MaxBytes caps the payload bytes fetched from the outbox at once.
	// Default 1MiB.
	MaxBytes edgefn.Size `yaml:"max_bytes"`
	// KeepAlive is the MQTT keep-alive. Default 30s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ConnectTimeout bounds connecting. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// AckTimeout is how long a publish may wait for its PUBACK before the
	// connection is dropped and everything unacknowledged is resent.
	// Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	TLS        TLS           `yaml:"tls"`
	Backoff    Backoff       `yaml:"backoff"`
	// StrictOrder, when set, lists the functions whose records keep the
	// strict seq order while a backlog drains (manifest uplink.order:
	// strict); the other functions' new records take the live lane (see
	// LaneSource). It is asked at each drain point. Set by the agent.
	StrictOrder func() []string `yaml:"-"`
}

// Validate checks the config without I/O beyond checking that TLS files
// exist, and returns every problem at once, each a *FieldError.
func (c MQTTConfig) Validate() error {
	var errs []error
	if err := CheckBroker(c.Broker); err != nil {
		errs = append(errs, err)
	}
	if err := checkTopic(c.Topic); err != nil {
		errs = append(errs, fieldErr("topic", "%q: %v", c.Topic, err))
	}
	if c.InFlight < 0 || c.InFlight > 65535 {
		errs = append(errs, fieldErr("in_flight", "%d: must be between 1 and 65535", c.InFlight))
	}
	errs = belowZero(errs, "max_bytes", c.MaxBytes, "must be positive")
	errs = belowZero(errs, "keep_alive", c.KeepAlive, "must not be negative")
	errs = belowZero(errs, "connect_timeout", c.ConnectTimeout, "must not be negative")
	errs = belowZero(errs, "ack_timeout", c.AckTimeout, "must not be negative")
	if c.Password != "" && c.Username == "" {
		errs = append(errs, fieldErr("password", "set without username"))
	}
	errs = append(errs, tlsProblems(c.TLS, "tls.")...)
	errs = append(errs, c.Backoff.validate("backoff.")...)
	return errors.Join(errs...)
}

// CheckBroker checks an MQTT broker URL (the "broker" field): tcp:// or
// mqtt:// (plain), ssl://, tls:// or mqtts:// (TLS), with a host.
func CheckBroker(broker string) error {
	switch u, err := url.Parse(broker); {
	case broker == "":
		return fieldErr("broker", "required, e.g. mqtts://broker.example.com:8883")
	case err != nil:
		return fieldErr("broker", "%q: %v", broker, err)
	case !map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true}[u.Scheme]:
		return fieldErr("broker", "%q: scheme must be tcp, mqtt, ssl, tls or mqtts", broker)
	case u.Host == "":
		return fieldErr("broker", "%q: no host", broker)
	}
	return nil
}

// TLSProblems are the problems of a TLS client config, each a *FieldError
// named prefix+field.
func TLSProblems(c TLS, prefix string) []error { return tlsProblems(c, prefix) }

// checkTopic accepts an empty template (the default) or one whose
// placeholders are known and that has no wildcards.
func checkTopic(tpl string) error {
	if tpl == "" {
		return nil
	}
	if strings.ContainsAny(tpl, "+#") {
		return errors.New("wildcards + and # are not allowed in a publish topic")
	}
	rest := tpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return errors.New("unclosed {")
		}
		if name := rest[i+1 : i+j]; !topicField(name) {
			return fmt.Errorf("unknown placeholder {%s}, use {gateway}, {function} or {source}", name)
		}
		rest = rest[i+j+1:]
	}
	return nil
}

func topicField(name string) bool {
	return name == "gateway" || name == "function" || name == "source"
}

func (c MQTTConfig) name() string { return c.Name }

func (c MQTTConfig) withDefaults() MQTTConfig {
	orDefault(&c.Name, "mqtt")
	if c.ClientID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "device"
		}
		c.ClientID = "edgefn-uplink-" + host
	}
	orDefault(&c.Topic, DefaultTopic)
	orDefault(&c.InFlight, 32)
	orDefault(&c.MaxBytes, edgefn.MiB)
	orDefault(&c.KeepAlive, 30*time.Second)
	orDefault(&c.ConnectTimeout, 10*time.Second)
	orDefault(&c.AckTimeout, 30*time.Second)
	c.Backoff = c.Backoff.withDefaults()
	return c
}
