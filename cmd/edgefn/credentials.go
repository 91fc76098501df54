package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// credentials is the workstation's credentials file: one entry per agent,
// with the token and the pinned certificate fingerprint.
type credentials struct {
	// Default is the URL used when neither --gateway nor EDGEFN_GATEWAY is
	// given: the last one logged in to.
	Default  string                  `json:"default,omitempty"`
	Gateways map[string]gatewayCreds `json:"gateways"`
	// FleetDefault is the cloud broker of edgefn fleet commands given no
	// --broker: the last one edgefn fleet login stored.
	FleetDefault string                 `json:"fleet_default,omitempty"`
	Fleet        map[string]brokerCreds `json:"fleet,omitempty"`

	path string
}

// brokerCreds is what edgefn fleet login stored for one cloud broker.
type brokerCreds struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// CA, Cert and Key are absolute paths of PEM files (TLS, mTLS).
	CA    string    `json:"ca,omitempty"`
	Cert  string    `json:"cert,omitempty"`
	Key   string    `json:"key_file,omitempty"`
	Added time.Time `json:"added"`
}

// gatewayCreds is what login stored for one agent.
type gatewayCreds struct {
	Token string `json:"token"`
	// Fingerprint pins the agent's TLS certificate ("sha256:<hex>"); empty
	// for plain-HTTP (loopback) agents.
	Fingerprint string    `json:"fingerprint,omitempty"`
	Gateway     string    `json:"gateway_id,omitempty"`
	Added       time.Time `json:"added"`
}

// credentialsPath is os.UserConfigDir()/edgefn/credentials.json.
func credentialsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config dir for the credentials file: %w (set $HOME or $XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(dir, "edgefn", "credentials.json"), nil
}

// loadCredentials reads the credentials file; a missing file is empty.
func loadCredentials() (*credentials, error) {
	p, err := credentialsPath()
	if err != nil {
		return nil, err
	}
	c := &credentials{Gateways: map[string]gatewayCreds{}, path: p}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("credentials file %s: %v (fix or delete it, then edgefn login)", p, err)
	}
	if c.Gateways == nil {
		c.Gateways = map[string]gatewayCreds{}
	}
	return c, nil
}

// save writes the file with mode 0600 (its directory 0700), atomically.
func (c *credentials) save() error {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".credentials-*")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// normalizeURL trims what does not identify an agent: a trailing slash.
// A URL without a scheme gets https://.
func normalizeURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	if u != "" && !strings.Contains(u, "://") {
		u = "https://" + u
	}
	return u
}
