package uplink_test

import (
	"errors"
	"testing"
	"time"

	"github.com/edgefn/edgefn/sync/uplink"
)

// TestConfigValidate: Validate names every wrong field of an uplink config,
// each in a *FieldError, and accepts a valid config.
func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg    interface{ Validate() error }
		fields []string // none: the config is valid
	}{
		{uplink.HTTPConfig{}, []string{"url"}},
		{uplink.HTTPConfig{URL: "ftp://x"}, []string{"url"}},
		{uplink.HTTPConfig{URL: "http://x", TLS: uplink.TLS{CAFile: "/nope"}}, []string{"tls", "tls.ca_file"}},
		{uplink.HTTPConfig{URL: "https://x", Timeout: -1, RetryOn: []int{500}, TLS: uplink.TLS{CertFile: "/c"},
			Batch:   uplink.Batch{MaxRecords: -1, Linger: -1},
			Backoff: uplink.Backoff{Min: 2 * time.Second, Max: time.Second}},
			[]string{"timeout", "retry_on", "tls.cert_file", "batch.max_records", "batch.linger", "backoff.min"}},
		{uplink.HTTPConfig{URL: "https://x", Headers: map[string]string{"Bad Name": "v", "X-Ok": "a\nb"}}, []string{"headers", "headers.X-Ok"}},
		{uplink.HTTPConfig{URL: "https://ingest.example.com/v1"}, nil},
		{uplink.MQTTConfig{}, []string{"broker"}},
		{uplink.MQTTConfig{Broker: "http://x:1883"}, []string{"broker"}},
		{uplink.MQTTConfig{Broker: "tcp://x:1883", Topic: "a/{fn}/#", InFlight: 70000, Password: "p", AckTimeout: -1},
			[]string{"topic", "in_flight", "password", "ack_timeout"}},
		{uplink.MQTTConfig{Broker: "mqtts://x:8883", TLS: uplink.TLS{KeyFile: "/k"}}, []string{"tls.cert_file", "tls.key_file"}},
		{uplink.MQTTConfig{Broker: "mqtts://a.iot.eu-west-1.amazonaws.com:8883", Topic: "dt/{gateway}/{function}"}, nil},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if len(c.fields) == 0 && err != nil {
			t.Errorf("%+v: valid config refused: %v", c.cfg, err)
		}
		got := fieldsOf(err)
		for _, f := range c.fields {
			if !got[f] {
				t.Errorf("%+v: error %v does not name field %q", c.cfg, err, f)
			}
		}
	}
}

// fieldsOf returns the fields named by the *FieldErrors in err.
func fieldsOf(err error) map[string]bool {
	got := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		var fe *uplink.FieldError
		if errors.As(e, &fe) {
			got[fe.Field] = true
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return got
}
