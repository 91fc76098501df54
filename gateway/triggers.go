package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/triggers"
)

// openGPIO opens the configured GPIO backend ("none" gives a backend with
// no pins, so gpio_read and gpio_write answer "not available").
func (a *Agent) openGPIO() (*devices.GPIO, error) {
	d, err := devices.Open(devices.Config{Backend: a.cfg.GPIO.Backend, Pins: a.cfg.GPIO.Pins, Logger: a.log.With("part", "gpio")})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// setupTriggers creates the event sources and wires them to the gateway:
// the broker (embedded or external), timers and GPIO edges. Each gets a
// start (run under the intake group) and a stop, and is told about
// routing changes.
func (a *Agent) setupTriggers(_ context.Context, devs *devices.GPIO) error {
	g, cfg, log := a.Host, a.cfg, a.log
	var subs interface {
		SetSubscriptions([]triggers.Subscription) error
	}
	var observed interface{ Observe(func(triggers.Seen)) }
	if cfg.Broker.External == nil {
		bc := cfg.Broker.Embedded
		if bc.TLS.Listen != "" && bc.TLS.CertFile == "" {
			host, _, _ := net.SplitHostPort(bc.TLS.Listen)
			hn, _ := os.Hostname()
			cert, fp, err := ensureCertFiles(cfg.DataDir, "broker", "broker.crt", "broker.key", []string{host, hn})
			if err != nil {
				return err
			}
			bc.TLS.Certificate = &cert
			log.Info("embedded broker TLS certificate", "file", filepath.Join(cfg.DataDir, "broker.crt"), "fingerprint", fp)
		}
		b, err := triggers.NewBroker(bc, g, log.With("part", "broker"))
		if err != nil {
			return err
		}
		// Start now so a taken port fails the agent before it says ready.
		if err := b.Start(); err != nil {
			return err
		}
		a.brokerAddr = b.Addr()
		g.pub, subs, observed = b, b, b
		g.statusParts.broker = func() *api.Broker { return embeddedBrokerWire(b.Status()) }
		g.metrics.reg.MustRegister(newBrokerCollector(b))
		a.stops = append(a.stops, b.Close)
	} else {
		m, err := triggers.NewMQTT(*cfg.Broker.External, g, log.With("part", "mqtt"))
		if err != nil {
			return err
		}
		g.pub, subs, observed = m, m, m
		addr := strings.Join(cfg.Broker.External.Brokers, ", ")
		g.statusParts.broker = func() *api.Broker { return externalBrokerWire(addr, m.Status()) }
		a.starts = append(a.starts, func(ctx context.Context, eg *errgroup.Group) error {
			eg.Go(func() error { return m.Run(ctx) })
			return nil
		})
	}
	timers := triggers.NewTimers(g, log.With("part", "timers"))
	g.statusParts.timers = func() []api.Timer { return timersWire(timers.Stats()) }
	gp := triggers.NewGPIO(devs, g, log.With("part", "gpio"))
	g.statusParts.gpio = func() *api.GPIO { return gpioWire(devs, gp.Stats()) }
	files := triggers.NewFiles(fileSink{g}, log.With("part", "files"))
	g.statusParts.files = func() []api.FileWatch { return fileWatchesWire(files.Stats()) }
	a.starts = append(a.starts, func(ctx context.Context, eg *errgroup.Group) error {
		eg.Go(func() error { return timers.Run(ctx) })
		eg.Go(func() error { return gp.Run(ctx) })
		eg.Go(func() error { return files.Run(ctx) })
		return nil
	})
	a.stops = append(a.stops, func(context.Context) error { return devs.Close() })
	a.wireConsole(devs, observed)
	g.onRoutes = append(g.onRoutes, func(ms map[string]*edgefn.Manifest, r *routes) {
		var ss []triggers.Subscription
		for f, q := range r.subscriptions() {
			ss = append(ss, triggers.Subscription{Filter: f, QoS: q})
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].Filter < ss[j].Filter })
		if err := subs.SetSubscriptions(ss); err != nil {
			log.Error("mqtt subscriptions", "err", err)
		}
		var specs []triggers.TimerSpec
		for _, t := range timerSpecs(ms) {
			specs = append(specs, triggers.TimerSpecOf(t))
		}
		if err := timers.Set(specs); err != nil {
			log.Error("timers", "err", err)
		}
		var ws []triggers.GPIOWatch
		for _, t := range gpioWatches(ms) {
			ws = append(ws, triggers.GPIOWatchOf(t))
		}
		if err := gp.Set(ws); err != nil {
			log.Error("gpio watches", "err", err)
		}
		if err := files.Set(fileWatches(ms)); err != nil {
			log.Error("file triggers", "err", err)
		}
	})
	g.extraRoutes["GET /v1/gpio"] = func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, gpioWire(devs, nil))
	}
	g.extraRoutes["POST /v1/gpio/{pin}/pulse"] = func(w http.ResponseWriter, r *http.Request) {
		width := 10 * time.Millisecond
		if s := r.URL.Query().Get("width"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > 10*time.Second {
				writeError(w, http.StatusBadRequest, fmt.Errorf("width=%q: want a duration up to 10s", s))
				return
			}
			width = d
		}
		if err := devs.Pulse(r.PathValue("pin"), width); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, api.PinChange{Pin: r.PathValue("pin"), WidthMS: api.Millis(width)})
	}
	g.extraRoutes["POST /v1/gpio/{pin}/level"] = func(w http.ResponseWriter, r *http.Request) {
		high, err := strconv.ParseBool(r.URL.Query().Get("high"))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("high=%q: want true or false", r.URL.Query().Get("high")))
			return
		}
		if err := devs.Inject(r.PathValue("pin"), high); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, api.PinChange{Pin: r.PathValue("pin"), High: high})
	}
	return nil
}
