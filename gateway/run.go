package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgefn/edgefn/gateway/internal/ratelog"
	"github.com/edgefn/edgefn/gateway/internal/sdnotify"
	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/sync/uplink"
)

// Ready describes a running agent, for the CLI to print and for tests.
type Ready struct {
	AdminURL    string
	TokenFile   string
	Fingerprint string // empty without TLS
	BrokerAddr  string // the embedded broker's TCP address, if any
}

// Agent runs a Host with everything around it: triggers, uplink, admin
// API. Build it with NewAgent and run it with Run.
type Agent struct {
	*Host
	// Version is the binary's version, shown by the console (default: the
	// module's build info).
	Version    string
	ready      chan Ready
	brokerAddr string
	uplinks    []uplink.Link
	starts     []func(ctx context.Context, g *errgroup.Group) error
	fleet      *fleetRunner // the fleet section's agent, replaced on reload
	stops      []func(ctx context.Context) error
}

// NewAgent validates the config (no I/O); Run does the rest.
func NewAgent(cfg *Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Warnings come from events (a failing function, a full queue, a
	// flooding device): a few per message and function per interval.
	log = slog.New(ratelog.New(log.Handler(), ratelog.Options{}))
	return &Agent{Host: &Host{cfg: cfg, log: log}, ready: make(chan Ready, 1)}, nil
}

// Ready receives once the agent serves events and its admin API.
func (a *Agent) Ready() <-chan Ready { return a.ready }

// Run starts the agent and serves until ctx ends, then shuts down in
// reverse: stop intake, drain invocations, final commit, final sync
// attempt, close, each step bounded by shutdown_grace.
func (a *Agent) Run(ctx context.Context) (err error) {
	cfg := a.cfg
	log := a.log
	if limit, from := cfg.memoryLimit(os.Getenv, func() (int64, error) { return procstat.MemInfo("MemTotal") }); limit > 0 {
		prev := debug.SetMemoryLimit(int64(limit))
		defer debug.SetMemoryLimit(prev)
		log.Debug("Go memory limit", "limit", limit, "from", from)
	}
	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	tightenDataDir(cfg.DataDir, log)
	store, err := outbox.Open(ctx, outbox.Config{
		Path:       filepath.Join(cfg.DataDir, "outbox.db"),
		Gateway:    cfg.GatewayID,
		Durability: outbox.Durability(cfg.Outbox.Durability),
		MaxBytes:   cfg.Outbox.MaxBytes,
		MaxAge:     time.Duration(cfg.Outbox.MaxAge),
		OnFull:     outbox.OnFull(cfg.Outbox.OnFull),
		Logger:     log.With("part", "outbox"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close outbox: %w", cerr))
		}
	}()

	devs, err := a.openGPIO()
	if err != nil {
		return err
	}
	rt, err := sandbox.New(ctx, sandbox.Config{
		CacheDir:  filepath.Join(cfg.DataDir, "cache"),
		Logger:    log.With("part", "sandbox"),
		KV:        kvAdapter{store},
		GPIO:      devs,
		MaxMemory: cfg.MaxLimits().Memory,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownGrace))
		defer cancel()
		err = errors.Join(err, rt.Close(cctx))
	}()
	g, err := newHost(cfg, log, store, rt)
	if err != nil {
		return err
	}
	g.gpio = devs
	a.Host = g

	if err := a.setupTriggers(ctx, devs); err != nil {
		return err
	}
	for _, u := range cfg.Uplinks {
		var up uplink.Link
		switch {
		case u.HTTP != nil:
			hc := *u.HTTP
			hc.StrictOrder = g.strictUplinkOrder
			up, err = uplink.NewHTTP(hc, backlogSource{store}, log.With("part", "uplink"))
		case u.MQTT != nil:
			mc := *u.MQTT
			mc.StrictOrder = g.strictUplinkOrder
			up, err = uplink.NewMQTT(mc, backlogSource{store}, log.With("part", "uplink"))
		}
		if err != nil {
			return err
		}
		a.uplinks = append(a.uplinks, up)
		g.uplinks = append(g.uplinks, up.State)
	}

	g.loadStored(ctx)
	// Loading decodes and compiles every module: tens of MiB of garbage on
	// a device that then idles. Return it to the OS now rather than when
	// the heap next doubles.
	debug.FreeOSMemory()

	a.fleet = &fleetRunner{a: a, cfg: cfg.Fleet}
	a.starts = append(a.starts, a.fleet.start)

	srv, ready, err := a.adminServer()
	if err != nil {
		return err
	}

	// Intake and uplink run until their contexts end; the uplink gets its
	// own context so it can make a final attempt after intake stops.
	intakeCtx, stopIntake := context.WithCancel(context.Background())
	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopIntake()
	defer stopUplink()
	intake, intakeCtx := errgroup.WithContext(intakeCtx)
	for _, start := range a.starts {
		if err := start(intakeCtx, intake); err != nil {
			stopIntake()
			_ = intake.Wait()
			return err
		}
	}
	ups, upCtx := errgroup.WithContext(upCtx)
	for _, u := range a.uplinks {
		ups.Go(func() error { return u.Run(upCtx) })
	}
	intake.Go(func() error { return releaseIdleMemory(intakeCtx) })
	intake.Go(func() error {
		err := srv.serve()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	// Under systemd (Type=notify): READY=1 now, WATCHDOG=1 while the outbox
	// answers, so a hung agent misses its watchdog and is restarted.
	notifier, nerr := sdnotify.New(os.Getenv, os.Getpid())
	if nerr != nil {
		log.Warn("systemd notify", "err", nerr)
	}
	if err := notifier.Ready(); err != nil {
		log.Warn("systemd notify READY", "err", err)
	}
	intake.Go(func() error {
		return notifier.Watchdog(intakeCtx, func(ctx context.Context) error {
			_, err := store.Stats(ctx)
			return err
		}, func(err error) { log.Error("watchdog ping skipped", "err", err) })
	})
	a.ready <- ready
	log.Info("agent ready", "gateway", cfg.GatewayID, "admin", ready.AdminURL, "broker", ready.BrokerAddr, "data", cfg.DataDir)

	select {
	case <-ctx.Done():
	case <-intakeCtx.Done():
		// A part failed on its own.
	}
	grace := time.Duration(cfg.ShutdownGrace)
	log.Info("shutting down", "grace_per_step", grace)
	_ = notifier.Stopping()

	// 1. Stop intake: admin API, triggers.
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	_ = srv.http.Shutdown(sctx)
	cancel()
	for i := len(a.stops) - 1; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		if err := a.stops[i](sctx); err != nil {
			log.Warn("stop", "err", err)
		}
		cancel()
	}
	stopIntake()
	runErr := intake.Wait()
	// 2. Drain invocations and their commits.
	sctx, cancel = context.WithTimeout(context.Background(), grace)
	if err := g.drain(sctx); err != nil {
		log.Warn("drain", "err", err)
	}
	cancel()
	g.bg.Wait()
	// 3. A final sync attempt, bounded.
	if len(a.uplinks) > 0 {
		a.waitDrained(store, grace)
	}
	stopUplink()
	if err := ups.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("uplink", "err", err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// Reload re-reads what can change without a restart: the manifests of
// the functions dir (changed ones are deployed as new versions). It is what
// SIGHUP does.
//
// With next (the config file read again, nil to skip) it also applies the
// log level through level (may be nil) and says which changed settings
// need a restart: the broker, admin API, uplinks, outbox, GPIO and the
// limits are wired at start. A changed fleet section restarts the fleet
// agent with it.
func (a *Agent) Reload(ctx context.Context, next *Config, level *slog.LevelVar) {
	if next != nil {
		if level != nil && next.LogLevel != a.cfg.LogLevel {
			var l slog.Level
			if err := l.UnmarshalText([]byte(next.LogLevel)); err == nil {
				level.Set(l)
				a.log.Info("reload: log level", "level", next.LogLevel)
			}
		}
		var restart []string
		for name, same := range map[string]bool{
			"gateway_id":      next.GatewayID == a.cfg.GatewayID,
			"data_dir":        next.DataDir == a.cfg.DataDir,
			"functions_dir":   next.FunctionsDir == a.cfg.FunctionsDir,
			"broker":          reflect.DeepEqual(next.Broker, a.cfg.Broker),
			"admin":           reflect.DeepEqual(next.Admin, a.cfg.Admin),
			"uplinks":         reflect.DeepEqual(next.Uplinks, a.cfg.Uplinks),
			"outbox":          next.Outbox == a.cfg.Outbox,
			"gpio":            reflect.DeepEqual(next.GPIO, a.cfg.GPIO),
			"limits":          next.Limits == a.cfg.Limits,
			"queue_size":      next.QueueSize == a.cfg.QueueSize,
			"max_chain_depth": next.MaxChainDepth == a.cfg.MaxChainDepth,
		} {
			if !same {
				restart = append(restart, name)
			}
		}
		if a.fleet != nil {
			a.fleet.reload(next.Fleet)
		}
		if len(restart) > 0 {
			sort.Strings(restart)
			a.log.Warn("reload: these settings changed and take effect at the next restart", "settings", restart)
		}
	}
	a.log.Info("reload: rescanning the functions dir", "dir", a.cfg.FunctionsDir)
	a.loadFunctionsDir(ctx)
}

// waitDrained waits until the outbox has nothing pending (the uplink
// delivered it) or grace has passed.
func (a *Agent) waitDrained(store *outbox.Store, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		recs, err := store.Pending(ctx, 0, 1, 1)
		if err != nil || len(recs) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// adminMaxHeaderBytes bounds a request's headers (the token is the only
// big one).
const adminMaxHeaderBytes = 64 << 10

// adminCipherSuites are the TLS 1.2 suites the admin API accepts: ECDHE
// with an AEAD only (no CBC, no SHA-1 MAC, no static RSA key exchange).
// TLS 1.3 suites are all AEAD and not configurable.
var adminCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

type adminSrv struct {
	http *http.Server
	ln   net.Listener
}

func (s *adminSrv) serve() error { return s.http.Serve(s.ln) }

func (a *Agent) adminServer() (*adminSrv, Ready, error) {
	cfg := a.cfg
	token, tokenPath, err := ensureToken(cfg.DataDir)
	if err != nil {
		return nil, Ready{}, fmt.Errorf("admin API token: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, Ready{}, fmt.Errorf("admin API: listen %s: %w", cfg.Admin.Listen, err)
	}
	srv := &http.Server{
		Handler:           a.handler(token),
		ReadHeaderTimeout: cfg.Admin.HeaderTimeout,
		ReadTimeout:       cfg.Admin.ReadTimeout,
		WriteTimeout:      cfg.Admin.WriteTimeout,
		IdleTimeout:       cfg.Admin.IdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		// The server's messages name the peer ("TLS handshake error from
		// 10.0.0.9:51234"): limited by their start, not the whole text.
		ErrorLog: slog.NewLogLogger(ratelog.New(a.log.Handler(), ratelog.Options{MessagePrefix: 24}), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(a.live.stop) // end the console's streams
	ready := Ready{TokenFile: tokenPath, BrokerAddr: a.brokerAddr}
	scheme := "http"
	switch cfg.Admin.TLS {
	case "auto", "files":
		var cert tls.Certificate
		var fp string
		if cfg.Admin.TLS == "auto" {
			host, _, _ := net.SplitHostPort(cfg.Admin.Listen)
			hn, _ := os.Hostname()
			cert, fp, err = ensureCert(cfg.DataDir, []string{host, hn})
		} else {
			cert, err = tls.LoadX509KeyPair(cfg.Admin.CertFile, cfg.Admin.KeyFile)
			if err == nil {
				fp = Fingerprint(cert.Certificate[0])
			}
		}
		if err != nil {
			ln.Close()
			return nil, Ready{}, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, CipherSuites: adminCipherSuites}
		ln = tls.NewListener(ln, srv.TLSConfig)
		ready.Fingerprint = fp
		scheme = "https"
	}
	ready.AdminURL = scheme + "://" + ln.Addr().String()
	return &adminSrv{http: srv, ln: ln}, ready, nil
}
