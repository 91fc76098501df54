package fleet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// Health holds the counters since the agent started (Invocations,
	// Failures) and the p99 of recent invocations; the agent turns them
	// into health over its window.
	Health Health
	// P99Since, if set, is the p99 duration of the invocations since a
	// moment (the gateway's per-minute histograms: whole minutes).
	P99Since func(since time.Time) time.Duration
}

// Health is a function's record over the status's window: the last
// fleet.health_window, or since its version was activated if that is
// later (Window says how long it covers).
type Health struct {
	Invocations int64            `json:"invocations"`
	Failures    map[string]int64 `json:"failures,omitempty"` // by reason
	P99         Millis           `json:"p99_ms"`
	Window      Millis           `json:"window_ms"`
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
	// Counts are the invocations and the failures (drops included) of
	// every function since the agent started, from memory: the agent polls
	// them to publish its status soon after failures start.
	Counts() (invocations, failures int64)
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
	// Pending are the functions the documents name that are not active
	// (in this version) yet: their module is being fetched, waits for a
	// fetch slot, or failed (the reason, also in Errors).
	Pending []PendingFunction `json:"pending,omitempty"`
}

// States of a pending function.
const (
	PendingFetching = "fetching" // its module is being fetched in the background
	PendingQueued   = "queued"   // waiting for a fetch slot (fetch caps)
	PendingRetrying = "retrying" // the broker could not be reached: tried again soon
	PendingFailed   = "failed"   // not applied: Reason says why; tried again after a backoff
)

// PendingFunction is a function a document names that is not active yet.
type PendingFunction struct {
	Name   string `json:"name"`
	Hash   string `json:"hash"` // module sha256
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
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
	// FetchTimeout bounds fetching one module (default 2m). Fetches run
	// in the background, one per module hash: a slow or incomplete one
	// never holds up the agent's loop.
	FetchTimeout time.Duration
	// MaxFetches caps the fetches running at once (default 2);
	// MaxFetchBytes the sum of their modules' sizes (default MaxModule).
	// A fetch beyond either waits for a slot.
	MaxFetches    int
	MaxFetchBytes int64
	// HealthWindow is the span of the health in the status (default
	// DefaultHealthWindow).
	HealthWindow time.Duration
	// HealthPoll is how often the agent looks for new failures, to publish
	// its status soon after them (default 5s; at most one status per poll).
	HealthPoll time.Duration
	// Retry is the first wait before a function that failed to apply is
	// tried again; the wait doubles up to RetryMax (defaults 10s, 10m).
	Retry, RetryMax time.Duration
	// HTTP fetches modules named by an https URL (default: a client with
	// the system roots).
	HTTP *http.Client
}

// Agent keeps a gateway at the desired state its fleet documents name.
type Agent struct {
	o      AgentOptions
	cfg    Config
	topics Topics
	ledger *Ledger
	log    *slog.Logger
	wake   chan struct{}

	health *healthTracker // used by Run's goroutine only
	// followUntil: after its own document changed (a canary), the
	// gateway publishes its health at each poll where it changed, until
	// then. Run's goroutine only.
	followUntil time.Time
	retries     map[string]retry     // function: when to try again; Run's goroutine only
	jobs        map[string]*fetchJob // module sha256: its background fetch; Run's goroutine only
	fetched     chan struct{}        // a background fetch ended
	fetchWG     sync.WaitGroup

	mu      sync.Mutex
	inbox   map[string][]byte // target: newest payload not yet handled
	docErrs map[string]string // target: why its newest document was refused
	fnErrs  map[string]string // function: why it was not applied
	pending []PendingFunction // functions not active yet, by name
}

// fetchJob is the background fetch of one module; wasm and err are set
// before done is closed.
type fetchJob struct {
	size   int64
	cancel context.CancelFunc
	done   chan struct{}
	wasm   []byte
	err    error
}

// retry is the backoff of a function entry that failed to apply.
type retry struct {
	entry    string // the entry's statement: a new entry is tried at once
	attempts int
	next     time.Time
}

// NewAgent checks the options; Run connects.
func NewAgent(cfg Config, o AgentOptions) (*Agent, error) {
	if len(o.Trusted) == 0 {
		return nil, errors.New("fleet needs admin.trusted_keys: a fleet document is only applied when signed by a trusted key")
	}
	if err := CheckName(o.GatewayID); err != nil {
		return nil, fmt.Errorf("gateway_id %v", err)
	}
	o.MaxModule = cmp.Or(o.MaxModule, 64<<20)
	o.StatusEvery = cmp.Or(o.StatusEvery, time.Minute)
	o.FetchTimeout = cmp.Or(o.FetchTimeout, 2*time.Minute)
	o.MaxFetches = cmp.Or(o.MaxFetches, 2)
	o.MaxFetchBytes = cmp.Or(o.MaxFetchBytes, o.MaxModule)
	o.HealthPoll = cmp.Or(o.HealthPoll, 5*time.Second)
	o.Retry = cmp.Or(o.Retry, 10*time.Second)
	o.RetryMax = cmp.Or(o.RetryMax, 10*time.Minute)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := CheckHealthWindow(o.HealthWindow); err != nil {
		return nil, fmt.Errorf("health_window %v", err)
	}
	if o.HTTP == nil {
		o.HTTP = ModuleClient(nil)
	}
	l, err := OpenLedger(filepath.Join(o.DataDir, "fleet.json"))
	if err != nil {
		return nil, err
	}
	return &Agent{o: o, cfg: cfg, topics: Topics{Prefix: cfg.TopicPrefix}, ledger: l, log: o.Log,
		wake: make(chan struct{}, 1), inbox: map[string][]byte{}, docErrs: map[string]string{}, fnErrs: map[string]string{},
		health: newHealthTracker(o.HealthWindow), retries: map[string]retry{},
		jobs: map[string]*fetchJob{}, fetched: make(chan struct{}, 1)}, nil
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
	// Background fetches end with Run.
	ctx, stop := context.WithCancel(ctx)
	defer a.fetchWG.Wait()
	defer stop()
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
	a.reconcile(ctx, nil, true)
	cn, err := Connect(ctx, d, a.topics)
	if err != nil {
		return err
	}
	defer cn.Close()
	tick := time.NewTicker(a.o.StatusEvery)
	defer tick.Stop()
	poll := time.NewTicker(a.o.HealthPoll)
	defer poll.Stop()
	retryTimer := time.NewTimer(time.Hour)
	defer retryTimer.Stop()
	armRetry := func() {
		retryTimer.Stop()
		if at, ok := a.nextRetry(); ok {
			retryTimer.Reset(max(time.Until(at), 0))
		}
	}
	armRetry()
	var last []byte
	invocations, failures := a.o.Gateway.Counts()
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
			a.reconcile(ctx, func(target string) []byte { return in[target] }, true)
			armRetry()
			publish(false)
		case <-retryTimer.C:
			a.reconcile(ctx, nil, false)
			armRetry()
			publish(false)
		case <-a.fetched:
			a.reconcile(ctx, nil, false)
			armRetry()
			publish(false)
		case <-poll.C:
			// New failures are news for a canary watch: publish now
			// rather than at the next minute; so is any change of health
			// while a canary is followed.
			inv, fails := a.o.Gateway.Counts()
			if fails != failures || (inv != invocations && time.Now().Before(a.followUntil)) {
				publish(false)
			}
			invocations, failures = inv, fails
		case <-tick.C:
			publish(true)
		}
	}
}

// nextRetry is the earliest time a failed function is due again.
func (a *Agent) nextRetry() (time.Time, bool) {
	var at time.Time
	for _, r := range a.retries {
		if r.next.IsZero() {
			continue // being fetched: its end wakes the loop
		}
		if at.IsZero() || r.next.Before(at) {
			at = r.next
		}
	}
	return at, !at.IsZero()
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
	if target == Target(KindGateway, a.o.GatewayID) {
		a.followUntil = time.Now().Add(a.health.window)
	}
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

// retryDelay is the first wait before the agent tries again to apply
// functions whose module it could not fetch for want of the broker; the
// wait doubles up to retryUnreachableMax (the broker's return is awaited,
// not hammered).
const (
	retryDelay          = 2 * time.Second
	retryUnreachableMax = 30 * time.Second
)

// errUnreachable marks a function not applied because the broker could
// not be reached or the connection dropped while fetching: the agent
// retries it and does not report it as refused.
var errUnreachable = errors.New("broker unreachable")

// reconcile accepts the new payloads (arrived(target), nil for none), then
// makes the gateway run the desired set of the accepted documents. A
// function that failed to apply is tried again when its entry changes,
// with all (a document arrived, the agent started), or once its backoff
// has passed.
func (a *Agent) reconcile(ctx context.Context, arrived func(string) []byte, all bool) {
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
		return
	}
	byName := map[string]Installed{}
	for _, in := range have {
		byName[in.Name] = in
	}
	a.mu.Lock()
	prevErrs := a.fnErrs
	a.mu.Unlock()
	fnErrs := map[string]string{}
	retries := map[string]retry{}
	var pending []PendingFunction
	used := map[string]bool{} // modules whose fetch is wanted or consumed
	now := time.Now()
	applied := false
	for _, f := range want {
		in, ok := byName[f.Name]
		man := sha256.Sum256(f.Manifest)
		if ok && in.ModuleSHA256 == f.Module.SHA256 && in.ManifestSHA == hex.EncodeToString(man[:]) {
			continue
		}
		p := PendingFunction{Name: f.Name, Hash: f.Module.SHA256}
		r, failedBefore := a.retries[f.Name]
		if failedBefore && r.entry == f.Activation.Statement && !all && now.Before(r.next) {
			retries[f.Name], fnErrs[f.Name] = r, prevErrs[f.Name]
			p.State, p.Reason = PendingFailed, prevErrs[f.Name]
			if p.Reason == "" {
				p.State = PendingRetrying
			}
			pending = append(pending, p)
			continue
		}
		if r.entry != f.Activation.Statement {
			r = retry{entry: f.Activation.Statement}
		}
		wasm, waiting, err := a.module(ctx, f, used)
		if waiting != "" {
			// Not ready: the fetch's end wakes the loop; no backoff runs
			// meanwhile (attempts are kept).
			r.next = time.Time{}
			retries[f.Name] = r
			p.State, p.Reason = waiting, ""
			if waiting == PendingQueued {
				p.Reason = fmt.Sprintf("waiting for a fetch slot (at most %d fetches, %d bytes at once)", a.o.MaxFetches, a.o.MaxFetchBytes)
			}
			pending = append(pending, p)
			continue
		}
		if err == nil {
			err = a.activate(ctx, f, wasm)
		}
		if err != nil {
			r.attempts++
			first, most := a.o.Retry, a.o.RetryMax
			unreachable := errors.Is(err, errUnreachable) && ctx.Err() == nil
			if unreachable {
				first, most = retryDelay, retryUnreachableMax
			}
			wait := min(first<<min(r.attempts-1, 16), most)
			r.next = time.Now().Add(wait)
			retries[f.Name] = r
			if unreachable {
				// Not refused: reported only in the log, tried again.
				a.log.Info("fleet: module not fetched, will retry", "function", f.Name, "retry_in", wait, "err", err)
				p.State, p.Reason = PendingRetrying, err.Error()
				pending = append(pending, p)
				continue
			}
			a.log.Warn("fleet: function not applied", "function", f.Name, "attempt", r.attempts, "retry_in", wait, "err", err)
			fnErrs[f.Name] = err.Error()
			p.State, p.Reason = PendingFailed, err.Error()
			pending = append(pending, p)
			continue
		}
		applied = true
	}
	a.retries = retries
	a.settleFetches(used)
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
	a.pending = pending
	a.mu.Unlock()
	if applied {
		// The health of a new version starts at its activation.
		if have, err := a.o.Gateway.Installed(ctx); err == nil {
			a.health.observe(time.Now(), have)
		}
	}
}

// module returns f's module once its background fetch ended (wasm or
// err); until then it starts the fetch, or leaves the running one, and
// says what the function waits for (PendingFetching, PendingQueued).
// used collects the module hashes the pass wants.
func (a *Agent) module(ctx context.Context, f Function, used map[string]bool) ([]byte, string, error) {
	key := f.Module.SHA256
	used[key] = true
	if j := a.jobs[key]; j != nil {
		select {
		case <-j.done:
			return j.wasm, "", j.err
		default:
			return nil, PendingFetching, nil
		}
	}
	if f.Module.Size > a.o.MaxModule {
		return nil, "", fmt.Errorf("module of %d bytes is above the %d this gateway fetches", f.Module.Size, a.o.MaxModule)
	}
	// The running fetches hold the slots: one that ended is forgotten at
	// the end of this pass (settleFetches).
	n, bytes := 0, int64(0)
	for _, j := range a.jobs {
		select {
		case <-j.done:
		default:
			n, bytes = n+1, bytes+j.size
		}
	}
	if n >= a.o.MaxFetches || (n > 0 && bytes+f.Module.Size > a.o.MaxFetchBytes) {
		return nil, PendingQueued, nil
	}
	fctx, cancel := context.WithTimeout(ctx, a.o.FetchTimeout)
	j := &fetchJob{size: f.Module.Size, cancel: cancel, done: make(chan struct{})}
	a.jobs[key] = j
	a.fetchWG.Add(1)
	go func() {
		defer a.fetchWG.Done()
		defer cancel()
		j.wasm, j.err = a.fetch(fctx, cancel, f.Module)
		close(j.done)
		select {
		case a.fetched <- struct{}{}:
		default:
		}
	}()
	a.log.Info("fleet: fetching module", "function", f.Name, "module", key[:12], "bytes", f.Module.Size)
	return nil, PendingFetching, nil
}

// settleFetches forgets the fetches that ended (their result was used by
// this pass, or nobody wants it any more) and cancels the running ones no
// function wants any more.
func (a *Agent) settleFetches(used map[string]bool) {
	for key, j := range a.jobs {
		select {
		case <-j.done:
			delete(a.jobs, key)
		default:
			if !used[key] {
				j.cancel()
			}
		}
	}
}

// fetch gets module m within fctx (cancel ends it early).
func (a *Agent) fetch(fctx context.Context, cancel context.CancelFunc, m Module) ([]byte, error) {
	if m.URL != "" {
		return FetchURL(fctx, a.o.HTTP, m, a.o.MaxModule)
	}
	lost := make(chan struct{})
	cn, err := a.fetchConn(fctx, m.SHA256, func() { close(lost); cancel() })
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	wasm, err := cn.FetchBlob(fctx, m, a.o.MaxModule)
	cn.Close()
	select {
	case <-lost:
		return nil, fmt.Errorf("%w: connection lost while fetching the module", errUnreachable)
	default:
	}
	var mc *MissingChunksError
	if errors.As(err, &mc) && errors.Is(err, context.DeadlineExceeded) {
		mc.After = a.o.FetchTimeout
	}
	return wasm, err
}

// activate deploys a fetched module.
func (a *Agent) activate(ctx context.Context, f Function, wasm []byte) error {
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
func (a *Agent) fetchConn(ctx context.Context, sha string, lost func()) (*Conn, error) {
	d := a.o.Dial
	// One client id per module: fetches run side by side.
	d.ClientID = "edgefn-fleet-" + a.o.GatewayID + "-fetch-" + sha[:min(len(sha), 12)]
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
	health := a.health.observe(time.Now(), have)
	for _, in := range have {
		st.Functions = append(st.Functions, StatusFunction{Name: in.Name, Version: in.Version, Hash: in.ModuleSHA256, Origin: in.Origin, Health: health[in.Name]})
	}
	slices.SortFunc(st.Functions, func(x, y StatusFunction) int { return strings.Compare(x.Name, y.Name) })
	a.mu.Lock()
	for t, msg := range a.docErrs {
		st.Errors = append(st.Errors, t+": "+msg)
	}
	for n, msg := range a.fnErrs {
		st.Errors = append(st.Errors, "function "+n+": "+msg)
	}
	st.Pending = slices.Clone(a.pending)
	a.mu.Unlock()
	slices.Sort(st.Errors)
	return st
}
