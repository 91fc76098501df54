package fleet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// ModuleClient is the HTTP client for modules named by an https URL: TLS
// as given (nil: the system roots), at most 5 redirects and only to https,
// no idle connections kept (fetches are rare), bounded handshake and
// response header waits (the caller's context bounds the whole fetch).
func ModuleClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			TLSClientConfig:        tc,
			TLSHandshakeTimeout:    15 * time.Second,
			ResponseHeaderTimeout:  30 * time.Second,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s: only https", req.URL.Redacted())
			}
			return nil
		},
	}
}

// CheckURL refuses a module URL that is not https or names credentials.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("module url: %v", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("module url %q: want https://host/path", u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("module url %q: credentials in the URL are not accepted", u.Redacted())
	}
	return nil
}

// FetchURL downloads the module m names by URL and checks it against its
// size and SHA-256: it reads at most m.Size+1 bytes, and refuses a module
// above maxSize before asking for it.
func FetchURL(ctx context.Context, c *http.Client, m Module, maxSize int64) ([]byte, error) {
	if err := CheckURL(m.URL); err != nil {
		return nil, err
	}
	if m.Size > maxSize {
		return nil, fmt.Errorf("module of %d bytes is above the %d this gateway fetches", m.Size, maxSize)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("module %.12s: %w", m.SHA256, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("module %.12s: GET %s: %s", m.SHA256, req.URL.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, m.Size+1))
	if err != nil {
		return nil, fmt.Errorf("module %.12s: GET %s: %w", m.SHA256, req.URL.Redacted(), err)
	}
	if int64(len(b)) > m.Size {
		return nil, fmt.Errorf("module %.12s: %w: the server sends more than the %d bytes the document names", m.SHA256, ErrBlobMismatch, m.Size)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != m.Size || hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, fmt.Errorf("module %.12s: %w (%d bytes, sha256 %x...)", m.SHA256, ErrBlobMismatch, len(b), sum[:6])
	}
	return b, nil
}
