package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgefn/edgefn/internal/activation"
)

// Origins of a function in a status document.
const (
	OriginFleet = "fleet" // placed by a fleet document; removed when no document names it
	OriginLocal = "local" // deployed through the admin API or the functions dir; left alone
)

// Installed is a function active on the gateway.
type Installed struct {
	Name         string
	Version      int
	ModuleSHA256 string
	ManifestSHA  string
	Origin       string // OriginFleet or OriginLocal
	Health       Health
}

// Health is a function's recent record.
type Health struct {
	Invocations int64            `json:"invocations"`
	Failures    map[string]int64 `json:"failures,omitempty"` // by reason
	P99         time.Duration    `json:"p99_ns"`
}

// Gateway is what the agent needs from the gateway's registry.
type Gateway interface {
	// Installed lists the active functions.
	Installed(ctx context.Context) ([]Installed, error)
	// Deploy verifies sg (the gateway's signed-activation check, with its
	// persisted per-function sequence), stores and activates the content
	// atomically, with origin fleet.
	Deploy(ctx context.Context, manifest, wasm []byte, sg activation.Signed) (version int, err error)
	// Remove removes a function.
	Remove(ctx context.Context, name string) error
}

// StatusDoc is the retained document at Topics.Status(gateway).
type StatusDoc struct {
	Gateway   string            `json:"gateway"`
	Online    bool              `json:"online"`
	Groups    []string          `json:"groups"`
	Updated   time.Time         `json:"updated,omitzero"`
	Documents map[string]uint64 `json:"documents,omitempty"` // target: last accepted sequence
	Functions []StatusFunction  `json:"functions"`
	// Errors say why a document or a function was not applied: the gateway
	// keeps what it had.
	Errors []string `json:"errors,omitempty"`
}

// StatusFunction is one function in a status document.
type StatusFunction struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Hash    string `json:"hash"` // module sha256
	Origin  string `json:"origin"`
	Health
}

// AgentOptions are what NewAgent needs besides the config.
type AgentOptions struct {
	GatewayID string
	Trusted   []ed25519.PublicKey
	DataDir   string // the ledger lives here
	Gateway   Gateway
	Dial      Dial // broker, credentials, TLS; the agent sets the will and client id
	Log       *slog.Logger
	// MaxModule caps a fetched module's size (default 64 MiB).
	MaxModule int64
	// StatusEvery is how often the status is republished (default 1m).
	StatusEvery time.Duration
	// FetchTimeout bounds fetching one module (default 2m).
	FetchTimeout time.Duration
}

// Agent keeps a gateway at the desired state its fleet documents name.
type Agent struct {
	o      AgentOptions
	cfg    Config
	topics Topics
	ledger *Ledger
	log    *slog.Logger
	wake   chan struct{}

	mu      sync.Mutex
	inbox   map[string][]byte // target: newest payload not yet handled
	docErrs map[string]string // target: why its newest document was refused
	fnErrs  map[string]string // function: why it was not applied
}

// NewAgent checks the options; Run connects.
func NewAgent(cfg Config, o AgentOptions) (*Agent, error) {
	if len(o.Trusted) == 0 {
		return nil, errors.New("fleet needs admin.trusted_keys: a fleet document is only applied when signed by a trusted key")
	}
	if err := CheckName(o.GatewayID); err != nil {
		return nil, fmt.Errorf("gateway_id %v", err)
	}
	if o.MaxModule == 0 {
		o.MaxModule = 64 << 20
	}
	if o.StatusEvery == 0 {
		o.StatusEvery = time.Minute
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l, err := OpenLedger(filepath.Join(o.DataDir, "fleet.json"))
	if err != nil {
		return nil, err
	}
	return &Agent{o: o, cfg: cfg, topics: Topics{Prefix: cfg.TopicPrefix}, ledger: l, log: o.Log,
		wake: make(chan struct{}, 1), inbox: map[string][]byte{}, docErrs: map[string]string{}, fnErrs: map[string]string{}}, nil
}

// targets are the documents that apply, in order: groups in config order,
// the gateway's own last.
func (a *Agent) targets() []string {
	var out []string
	for _, g := range a.cfg.Groups {
		out = append(out, Target(KindGroup, g))
	}
	return append(out, Target(KindGateway, a.o.GatewayID))
}

func (a *Agent) topicOf(target string) string {
	kind, name, _ := cut(target)
	return a.topics.Desired(kind, name)
}

func cut(target string) (kind, name string, ok bool) {
	for i := range target {
		if target[i] == '/' {
			return target[:i], target[i+1:], true
		}
	}
	return "", target, false
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run applies the ledger's documents, connects, subscribes to the
// documents of its targets and applies each newer one as it arrives, and
// publishes the status on change and every StatusEvery, until ctx ends;
// then it publishes itself offline and disconnects.
func (a *Agent) Run(ctx context.Context) error {
	d := a.o.Dial
	if d.ClientID == "" {
		d.ClientID = "edgefn-fleet-" + a.o.GatewayID
	}
	d.AutoReconnect = true
	d.WillTopic = a.topics.Status(a.o.GatewayID)
	d.WillPayload, _ = json.Marshal(StatusDoc{Gateway: a.o.GatewayID, Online: false, Groups: a.cfg.Groups, Functions: []StatusFunction{}})
	connected := make(chan struct{}, 1)
	d.OnConnect = func(cn *Conn) {
		for _, t := range a.targets() {
			t := t
			err := cn.Subscribe(ctx, a.topicOf(t), func(_ string, p []byte, _ bool) {
				a.mu.Lock()
				a.inbox[t] = append([]byte(nil), p...)
				a.mu.Unlock()
				a.poke()
			})
			if err != nil {
				a.log.Warn("fleet subscribe", "target", t, "err", err)
			}
		}
		select {
		case connected <- struct{}{}:
		default:
		}
	}
	// Reconcile with what was accepted before, broker or not (what needs
	// a module from the broker is retried once connected).
	a.reconcile(ctx, nil)
	cn, err := Connect(ctx, d, a.topics)
	if err != nil {
		return err
	}
	defer cn.Close()
	tick := time.NewTicker(a.o.StatusEvery)
	defer tick.Stop()
	// retry fires while a function could not be applied because the
	// broker was unreachable (a broker restart mid-rollout).
	var retry <-chan time.Time
	var last []byte
	publish := func(force bool) {
		st := a.status(ctx, true)
		p, _ := json.Marshal(st)
		cmp, _ := json.Marshal(struct {
			StatusDoc
			Updated bool `json:"updated,omitempty"`
		}{StatusDoc: st})
		if !force && bytes.Equal(cmp, last) {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := cn.Publish(pctx, a.topics.Status(a.o.GatewayID), p, true); err != nil {
			a.log.Warn("fleet status", "err", err)
			return
		}
		last = cmp
	}
	for {
		select {
		case <-ctx.Done():
			st := a.status(context.Background(), false)
			p, _ := json.Marshal(st)
			octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = cn.Publish(octx, a.topics.Status(a.o.GatewayID), p, true)
			cancel()
			return nil
		case <-connected:
			publish(true)
		case <-a.wake:
			a.mu.Lock()
			in := a.inbox
			a.inbox = map[string][]byte{}
			a.mu.Unlock()
			retry = a.retryAfter(a.reconcile(ctx, func(target string) []byte { return in[target] }))
			publish(false)
		case <-retry:
			retry = a.retryAfter(a.reconcile(ctx, nil))
			publish(false)
		case <-tick.C:
			publish(true)
		}
	}
}

// accept verifies a newly arrived payload for target and records it in
// the ledger; a refused one leaves the ledger as it was and is reported.
func (a *Agent) accept(target string, payload []byte) {
	if len(payload) == 0 {
		// A cleared retained topic is not signed: keep the last
		// accepted document (remove functions with a signed document
		// that no longer names them).
		if _, ok := a.ledger.Get(target); ok {
			a.setDocErr(target, "document cleared on the broker without a signed replacement: keeping the last accepted one")
		}
		return
	}
	if e, ok := a.ledger.Get(target); ok {
		if js, _ := json.Marshal(e.Signed); bytes.Equal(js, payload) {
			return // the retained copy of what was accepted
		}
	}
	refuse := func(err error) {
		a.log.Warn("fleet document refused", "target", target, "err", err)
		a.setDocErr(target, err.Error())
	}
	sd, err := ParseSigned(payload)
	if err != nil {
		refuse(err)
		return
	}
	d, err := sd.Verify(a.o.Trusted, target)
	if err != nil {
		refuse(err)
		return
	}
	if err := a.ledger.Check(target, d.Sequence); err != nil {
		refuse(err)
		return
	}
	if err := a.ledger.Record(target, LedgerEntry{Sequence: d.Sequence, Signed: sd}); err != nil {
		refuse(err)
		return
	}
	a.setDocErr(target, "")
	a.log.Info("fleet document accepted", "target", target, "sequence", d.Sequence, "functions", len(d.Functions))
}

func (a *Agent) setDocErr(target, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg == "" {
		delete(a.docErrs, target)
	} else {
		a.docErrs[target] = msg
	}
}

// retryDelay is how long the agent waits before it tries again to apply
// functions whose module it could not fetch for want of the broker.
const retryDelay = 2 * time.Second

func (a *Agent) retryAfter(again bool) <-chan time.Time {
	if !again {
		return nil
	}
	return time.After(retryDelay)
}

// errUnreachable marks a function not applied because the broker could
// not be reached or the connection dropped while fetching: the agent
// retries it and does not report it as refused.
var errUnreachable = errors.New("broker unreachable")

// reconcile accepts the new payloads (arrived(target), nil for none), then
// makes the gateway run the desired set of the accepted documents. It
// reports whether a function must be tried again (errUnreachable).
func (a *Agent) reconcile(ctx context.Context, arrived func(string) []byte) (again bool) {
	var docs []Document
	for _, t := range a.targets() {
		if arrived != nil {
			if p := arrived(t); p != nil {
				a.accept(t, p)
			}
		}
		e, ok := a.ledger.Get(t)
		if !ok {
			continue
		}
		d, err := e.Signed.Verify(a.o.Trusted, t)
		if err != nil {
			// A key removed from admin.trusted_keys since.
			a.setDocErr(t, "last accepted document no longer verifies: "+err.Error())
			continue
		}
		docs = append(docs, d)
	}
	want := Desired(docs...)
	have, err := a.o.Gateway.Installed(ctx)
	if err != nil {
		a.log.Warn("fleet: list functions", "err", err)
		return false
	}
	byName := map[string]Installed{}
	for _, in := range have {
		byName[in.Name] = in
	}
	fnErrs := map[string]string{}
	for _, f := range want {
		in, ok := byName[f.Name]
		man := sha256.Sum256(f.Manifest)
		if ok && in.ModuleSHA256 == f.Module.SHA256 && in.ManifestSHA == hex.EncodeToString(man[:]) {
			continue
		}
		if err := a.apply(ctx, f); errors.Is(err, errUnreachable) && ctx.Err() == nil {
			a.log.Info("fleet: module not fetched, will retry", "function", f.Name, "err", err)
			again = true
		} else if err != nil {
			a.log.Warn("fleet: function not applied", "function", f.Name, "err", err)
			fnErrs[f.Name] = err.Error()
		}
	}
	named := map[string]bool{}
	for _, f := range want {
		named[f.Name] = true
	}
	for _, in := range have {
		if in.Origin == OriginFleet && !named[in.Name] && len(docs) > 0 {
			if err := a.o.Gateway.Remove(ctx, in.Name); err != nil {
				fnErrs[in.Name] = "remove: " + err.Error()
			} else {
				a.log.Info("fleet: removed", "function", in.Name)
			}
		}
	}
	a.mu.Lock()
	a.fnErrs = fnErrs
	a.mu.Unlock()
	return again
}

func (a *Agent) apply(ctx context.Context, f Function) error {
	if f.Module.URL != "" && f.Module.ChunkSize == 0 {
		return errors.New("modules by url are not supported yet: publish the module as chunks")
	}
	fctx, cancel := context.WithTimeout(ctx, a.o.FetchTimeout)
	defer cancel()
	lost := make(chan struct{})
	cn, err := a.fetchConn(fctx, func() { close(lost); cancel() })
	if err != nil {
		return fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer cn.Close()
	wasm, err := cn.FetchBlob(fctx, f.Module, a.o.MaxModule)
	select {
	case <-lost:
		return fmt.Errorf("%w: connection lost while fetching the module", errUnreachable)
	default:
	}
	if err != nil {
		return err
	}
	v, err := a.o.Gateway.Deploy(ctx, f.Manifest, wasm, f.Activation)
	if err != nil {
		return err
	}
	a.log.Info("fleet: activated", "function", f.Name, "version", v, "module", f.Module.SHA256[:12])
	return nil
}

// fetchConn is a short-lived connection for fetching blobs, so that the
// main connection's handlers never wait for it; lost runs (once) if the
// connection drops.
func (a *Agent) fetchConn(ctx context.Context, lost func()) (*Conn, error) {
	d := a.o.Dial
	d.ClientID = "edgefn-fleet-" + a.o.GatewayID + "-fetch"
	d.OnConnect, d.WillTopic, d.AutoReconnect = nil, "", false
	d.OnLost = lost
	return Connect(ctx, d, a.topics)
}

// status builds the status document.
func (a *Agent) status(ctx context.Context, online bool) StatusDoc {
	st := StatusDoc{Gateway: a.o.GatewayID, Online: online, Groups: a.cfg.Groups, Updated: time.Now().UTC(),
		Documents: map[string]uint64{}, Functions: []StatusFunction{}}
	if st.Groups == nil {
		st.Groups = []string{}
	}
	for _, t := range a.targets() {
		if e, ok := a.ledger.Get(t); ok {
			st.Documents[t] = e.Sequence
		}
	}
	have, err := a.o.Gateway.Installed(ctx)
	if err != nil {
		st.Errors = append(st.Errors, "list functions: "+err.Error())
	}
	for _, in := range have {
		st.Functions = append(st.Functions, StatusFunction{Name: in.Name, Version: in.Version, Hash: in.ModuleSHA256, Origin: in.Origin, Health: in.Health})
	}
	slices.SortFunc(st.Functions, func(x, y StatusFunction) int { return strings.Compare(x.Name, y.Name) })
	a.mu.Lock()
	for t, msg := range a.docErrs {
		st.Errors = append(st.Errors, t+": "+msg)
	}
	for n, msg := range a.fnErrs {
		st.Errors = append(st.Errors, "function "+n+": "+msg)
	}
	a.mu.Unlock()
	slices.Sort(st.Errors)
	return st
}
