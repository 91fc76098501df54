package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config configures a TLS client. Empty fields use the system defaults
// (system roots, no client certificate, the host of the URL).
type Config struct {
	// CAFile is a PEM bundle of CAs to trust instead of the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// mutual TLS (AWS IoT Core, Azure IoT Hub X.509 auth, brokers that
	// require client certificates). Both or neither.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify accepts any server certificate. Only for tests and
	// lab setups: it must be set explicitly and is logged as a warning.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Problem is one problem of a Config: its key (ca_file...) and what is
// wrong.
type Problem struct {
	Field string
	Msg   string
}

func (p *Problem) Error() string { return p.Field + ": " + p.Msg }

// IsSet reports whether any field is set.
func (c Config) IsSet() bool { return c != Config{} }

// Problems checks the config and that its files exist, and returns every
// problem, each a *Problem.
func (c Config) Problems() []error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, &Problem{"cert_file", "cert_file and key_file must be given together"})
	}
	for _, f := range []struct{ name, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, &Problem{f.name, fmt.Sprintf("%q: %v", f.path, err)})
		}
	}
	return errs
}

// Load reads the files and builds the tls.Config (TLS 1.2 at least). Its
// error is a *Problem naming the key.
func (c Config) Load() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, &Problem{"ca_file", err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &Problem{"ca_file", fmt.Sprintf("%q: no PEM certificate found", c.CAFile)}
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, &Problem{"cert_file", fmt.Sprintf("load key pair: %v", err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
