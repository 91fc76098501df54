package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one agent's admin API. Build it with NewClient.
type Client struct {
	// URL is the agent's admin URL (http(s)://host:port), Token its API
	// token.
	URL   string
	Token string
	// HTTP does the requests: NewClient's checks the agent's certificate
	// against a pinned fingerprint.
	HTTP *http.Client
}

// NewClient is a client of the agent at base with token; an https agent's
// certificate must have the fingerprint pin (sha256:<hex>, as the agent
// prints it): its certificate is self-signed, so it is pinned on first
// use, like ssh, rather than checked against a CA. An empty pin accepts
// any certificate (edgefn login, before it pins one); seen, when not nil,
// receives the presented fingerprint.
func NewClient(base, token, pin string, seen *string) *Client {
	return &Client{URL: strings.TrimRight(base, "/"), Token: token, HTTP: PinnedHTTPClient(base, pin, seen)}
}

// Fingerprint is the fingerprint of a DER certificate: sha256:<hex>.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PinError says the agent presented another certificate than the pinned
// one.
type PinError struct {
	URL, Want, Got string
}

func (e *PinError) Error() string {
	return fmt.Sprintf("certificate of %s does not match the pinned fingerprint: pinned %s, presented %s\n"+
		"  refusing to talk to it: someone may be intercepting the connection. If the agent's certificate was\n"+
		"  replaced on purpose (data dir reset), check the new fingerprint on the agent and run\n"+
		"  edgefn login %s --token TOKEN --fingerprint <new fingerprint>", e.URL, e.Want, e.Got, e.URL)
}

// TokenError is a 401 from the agent.
type TokenError struct{ URL string }

func (e *TokenError) Error() string {
	return fmt.Sprintf("token refused by %s: run edgefn login %s --token \"$(cat DATA_DIR/api.token)\"", e.URL, e.URL)
}

// StatusError is an error answer of the agent (or, Status 0, a problem
// found before asking it).
type StatusError struct {
	Status   int
	Message  string
	Problems []string
}

func (e *StatusError) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	return e.Message + ":\n  " + strings.Join(e.Problems, "\n  ")
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// PinnedHTTPClient makes an HTTP client that checks the server certificate
// against the fingerprint pin instead of a CA (see NewClient).
func PinnedHTTPClient(base, pin string, seen *string) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Verification is VerifyConnection's pin check.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the agent presented no certificate")
				}
				got := Fingerprint(cs.PeerCertificates[0].Raw)
				if seen != nil {
					*seen = got
				}
				if pin != "" && !strings.EqualFold(got, pin) {
					return &PinError{URL: base, Want: pin, Got: got}
				}
				return nil
			},
		},
	}
	return &http.Client{Transport: tr}
}

// maxAnswer bounds the size of an answer the client reads.
const maxAnswer = 64 << 20

// Do sends a request with the token and decodes a JSON answer into out
// (when not nil). header adds request headers.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, contentType string, header http.Header, out any) error {
	resp, err := c.Open(ctx, method, path, body, contentType, header)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return c.decode(resp, out)
}

// Open sends a request with the token and returns the answer when its
// status is 2xx (for streams: the caller closes the body), else the error
// it carries.
func (c *Client) Open(ctx context.Context, method, path string, body io.Reader, contentType string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var pe *PinError
		if errors.As(err, &pe) {
			return nil, pe
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the agent at %s: %w (is it running? is --gateway right?)", c.URL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, c.decode(resp, nil)
	}
	return resp, nil
}

func (c *Client) decode(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", c.URL, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return &TokenError{URL: c.URL}
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s answered %s: %s", c.URL, resp.Status, strings.TrimSpace(string(b)))
		}
		return &StatusError{Status: resp.StatusCode, Message: e.Error, Problems: e.Problems}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s answered something that is not the expected JSON (%v): is it an edgefn agent?", c.URL, err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, "GET", path, nil, "", nil, out)
}

func fnPath(name string) string { return "/v1/functions/" + url.PathEscape(name) }

// Functions lists the deployed functions (GET /v1/functions).
func (c *Client) Functions(ctx context.Context) ([]Function, error) {
	out := []Function{}
	return out, c.get(ctx, "/v1/functions", &out)
}

// Function describes one function with its versions (GET
// /v1/functions/{name}).
func (c *Client) Function(ctx context.Context, name string) (Function, error) {
	var out Function
	return out, c.get(ctx, fnPath(name), &out)
}

// Remove drains and removes a function (DELETE /v1/functions/{name}).
func (c *Client) Remove(ctx context.Context, name string) (Removed, error) {
	var out Removed
	return out, c.Do(ctx, "DELETE", fnPath(name), nil, "", nil, &out)
}

// Rollback activates version to of a function (0: the one before the
// active one), with a signed statement (JSON) when signed is not nil
// (POST /v1/functions/{name}/rollback).
func (c *Client) Rollback(ctx context.Context, name string, to int, signed []byte) (Version, error) {
	p := fnPath(name) + "/rollback"
	if to > 0 {
		p += "?to=" + strconv.Itoa(to)
	}
	var body io.Reader
	if signed != nil {
		body = bytes.NewReader(signed)
	}
	var out Version
	return out, c.Do(ctx, "POST", p, body, "application/json", nil, &out)
}

// InvokeRequest is an event for POST /v1/functions/{name}/invoke: the
// payload is the body, Meta the query, Source and Subject headers (empty:
// an HTTP event whose subject is the function's name).
type InvokeRequest struct {
	Payload         []byte
	Meta            map[string]string
	Source, Subject string
}

// Invoke runs a function once and waits for its effects to commit.
func (c *Client) Invoke(ctx context.Context, name string, req InvokeRequest) (Invocation, error) {
	p := fnPath(name) + "/invoke"
	if len(req.Meta) > 0 {
		q := url.Values{}
		for k, v := range req.Meta {
			q.Set(k, v)
		}
		p += "?" + q.Encode()
	}
	h := http.Header{}
	if req.Source != "" {
		h.Set(HeaderSource, req.Source)
	}
	if req.Subject != "" {
		h.Set(HeaderSubject, req.Subject)
	}
	var out Invocation
	return out, c.Do(ctx, "POST", p, bytes.NewReader(req.Payload), "application/octet-stream", h, &out)
}

// DeployRequest is the upload of POST /v1/functions (multipart).
type DeployRequest struct {
	// File is the manifest's file name (for the agent's error messages).
	File     string
	Manifest []byte
	// WasmName is the module's file name, Wasm its content.
	WasmName string
	Wasm     []byte
	// Signed is a signed activation statement (JSON), if any.
	Signed []byte
	// Progress, when not nil, is called with the module bytes sent so far.
	Progress func(sent int64)
}

// Deploy uploads a function and activates it. The body is streamed with
// the module's sha256, so a body cut short is refused by the agent.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (Version, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeDeployBody(mw, req))
	}()
	var out Version
	err := c.Do(ctx, "POST", "/v1/functions", pr, mw.FormDataContentType(), nil, &out)
	pr.CloseWithError(errors.New("request finished"))
	<-done
	return out, err
}

func writeDeployBody(mw *multipart.Writer, req DeployRequest) error {
	sum := sha256.Sum256(req.Wasm)
	fields := [][2]string{{"file", req.File}, {"wasm_sha256", hex.EncodeToString(sum[:])}}
	if req.Signed != nil {
		fields = append(fields, [2]string{"activation", string(req.Signed)})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	fw, err := mw.CreateFormFile("manifest", "function.yaml")
	if err != nil {
		return err
	}
	if _, err := fw.Write(req.Manifest); err != nil {
		return err
	}
	fw, err = mw.CreateFormFile("wasm", req.WasmName)
	if err != nil {
		return err
	}
	const chunk = 64 << 10
	for off := 0; off < len(req.Wasm); off += chunk {
		end := min(off+chunk, len(req.Wasm))
		if _, err := fw.Write(req.Wasm[off:end]); err != nil {
			return err
		}
		if req.Progress != nil {
			req.Progress(int64(end))
		}
	}
	return mw.Close()
}

// Status reports the agent and its parts (GET /v1/status).
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.get(ctx, "/v1/status", &out)
}

// LogsQuery selects log lines: Since is a duration back from now (1h), an
// RFC 3339 time or unix milliseconds; Limit the most recent lines (0: the
// agent's default); After the id of the last line already seen.
type LogsQuery struct {
	Since string
	Limit int
	After int64
}

// Logs reads a function's log ring (GET /v1/functions/{name}/logs).
func (c *Client) Logs(ctx context.Context, name string, q LogsQuery) (Logs, error) {
	v := url.Values{}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	var out Logs
	return out, c.get(ctx, fnPath(name)+"/logs?"+v.Encode(), &out)
}

// Usage meters the functions since a duration back from now or an RFC 3339
// time ("": the last 24 hours) (GET /v1/usage).
func (c *Client) Usage(ctx context.Context, since string) (Usage, error) {
	p := "/v1/usage"
	if since != "" {
		p += "?since=" + url.QueryEscape(since)
	}
	var out Usage
	return out, c.get(ctx, p, &out)
}

// Outbox reports the outbox with at most deadLetters dead letters (GET
// /v1/outbox).
func (c *Client) Outbox(ctx context.Context, deadLetters int) (Outbox, error) {
	var out Outbox
	return out, c.get(ctx, "/v1/outbox?dead_letters="+strconv.Itoa(deadLetters), &out)
}

// PendingRecords returns the oldest n records waiting in the outbox, of
// one function when function is not "" (GET /v1/outbox/records).
func (c *Client) PendingRecords(ctx context.Context, function string, n int) (PendingRecords, error) {
	v := url.Values{"n": {strconv.Itoa(n)}}
	if function != "" {
		v.Set("function", function)
	}
	var out PendingRecords
	return out, c.get(ctx, "/v1/outbox/records?"+v.Encode(), &out)
}

// GPIO lists the GPIO pins (GET /v1/gpio).
func (c *Client) GPIO(ctx context.Context) (GPIO, error) {
	var out GPIO
	return out, c.get(ctx, "/v1/gpio", &out)
}

// Pulse drives a simulated pin to the opposite level for width, then back
// (POST /v1/gpio/{pin}/pulse).
func (c *Client) Pulse(ctx context.Context, pin string, width time.Duration) (PinChange, error) {
	var out PinChange
	return out, c.Do(ctx, "POST", "/v1/gpio/"+url.PathEscape(pin)+"/pulse?width="+url.QueryEscape(width.String()), nil, "", nil, &out)
}

// SetPin drives a simulated input pin (POST /v1/gpio/{pin}/level).
func (c *Client) SetPin(ctx context.Context, pin string, high bool) (PinChange, error) {
	var out PinChange
	return out, c.Do(ctx, "POST", "/v1/gpio/"+url.PathEscape(pin)+"/level?high="+strconv.FormatBool(high), nil, "", nil, &out)
}

// Traffic opens the stream of MQTT messages matching filter, the last n
// kept ones first (GET /v1/traffic); the caller reads the server-sent
// events and closes the body.
func (c *Client) Traffic(ctx context.Context, filter string, n int) (*http.Response, error) {
	q := url.Values{"filter": {filter}, "n": {strconv.Itoa(n)}}
	return c.Open(ctx, "GET", "/v1/traffic?"+q.Encode(), nil, "", http.Header{"Accept": {"text/event-stream"}})
}
