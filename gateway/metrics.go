package gateway

import (
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn/gateway/api"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox"
)

// metrics are the agent's Prometheus metrics, on a registry of their own
// (no global state).
type metrics struct {
	reg          *prometheus.Registry
	invocations  *prometheus.CounterVec
	failures     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	latency      *prometheus.HistogramVec
	starts       *prometheus.CounterVec
	drops        *prometheus.CounterVec
	chainDrops   *prometheus.CounterVec
	effectErrors *prometheus.CounterVec
}

func newMetrics() *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	m := &metrics{
		reg:         prometheus.NewRegistry(),
		invocations: counter("edgefn_invocations_total", "Invocations by function and outcome (ok or a failure reason).", "function", "outcome"),
		failures:    counter("edgefn_failures_total", "Failed invocations by function and reason.", "function", "reason"),
		duration: histogram("edgefn_invocation_duration_seconds", "Time inside the sandbox per invocation.",
			[]float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}, "function"),
		latency: histogram("edgefn_event_commit_latency_seconds", "From an event entering the queue to its effects being durable.",
			[]float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5}, "function"),
		starts:       counter("edgefn_starts_total", "Instance starts by function and kind (cold or warm).", "function", "kind"),
		drops:        counter("edgefn_drops_total", "Events dropped before running, by function and reason.", "function", "reason"),
		chainDrops:   counter("edgefn_chain_drops_total", "Publishes dropped because they would trigger events past max_chain_depth, by publishing function.", "function"),
		effectErrors: counter("edgefn_effect_errors_total", "Publishes and GPIO writes that failed after their commit.", "kind"),
	}
	m.reg.MustRegister(m.invocations, m.failures, m.duration, m.latency, m.starts, m.drops, m.chainDrops, m.effectErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) effectFailed(kind string) { m.effectErrors.WithLabelValues(kind).Inc() }

// fnStats are one function's counters for status and usage, kept in memory
// since the agent started (usage over longer spans comes from the outbox's
// invocation records).
type fnStats struct {
	m    *metrics
	name string
	// The metric children of the common outcomes, looked up once: every
	// event updates them.
	ok                     prometheus.Counter
	coldStarts, warmStarts prometheus.Counter
	duration               prometheus.Observer
	latency                prometheus.Observer
	chainDrops             prometheus.Counter // created with the function: the series is there at zero

	chainDropped  atomic.Int64
	chainReported atomic.Int64 // chainDropped when last logged
	chainLog      every

	mu          sync.Mutex
	invocations int64
	errors      map[edgefn.Reason]int64
	cold, warm  int64
	durations   ring // sandbox durations of recent invocations
	latencies   ring // event -> commit latencies of recent invocations
	gbSeconds   float64
	last        time.Time
	hist        history // per second and per minute, for the console
}

func newFnStats(m *metrics, name string) *fnStats {
	// Series a dashboard panel plots exist from the start, at zero.
	m.drops.WithLabelValues(name, string(edgefn.ReasonQueueFull))
	return &fnStats{
		m: m, name: name, errors: map[edgefn.Reason]int64{},
		ok:         m.invocations.WithLabelValues(name, "ok"),
		coldStarts: m.starts.WithLabelValues(name, "cold"),
		warmStarts: m.starts.WithLabelValues(name, "warm"),
		duration:   m.duration.WithLabelValues(name),
		latency:    m.latency.WithLabelValues(name),
		chainDrops: m.chainDrops.WithLabelValues(name),
	}
}

// seriesFor makes the series a function's triggers can move exist at zero
// from its activation: a file trigger's rejected drops.
func (s *fnStats) seriesFor(m *edgefn.Manifest) {
	if m == nil {
		return
	}
	for _, t := range m.Triggers {
		if t.Kind() == edgefn.SourceFile {
			s.m.drops.WithLabelValues(s.name, string(edgefn.ReasonRejected))
			return
		}
	}
}

func reasonOf(err error) edgefn.Reason {
	if err == nil {
		return ""
	}
	var f *edgefn.Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return edgefn.ReasonInternal
}

func (s *fnStats) observe(v *version, res *sandbox.Result, commitErr error, latency time.Duration) {
	reason := reasonOf(res.Err)
	if commitErr != nil {
		reason = reasonOf(commitErr)
		if reason == edgefn.ReasonInternal {
			reason = edgefn.ReasonStorage
		}
	}
	if reason == "" {
		s.ok.Inc()
	} else {
		s.m.failures.WithLabelValues(s.name, string(reason)).Inc()
		s.m.invocations.WithLabelValues(s.name, string(reason)).Inc()
	}
	s.duration.Observe(res.Duration.Seconds())
	s.latency.Observe(latency.Seconds())
	if res.Cold {
		s.coldStarts.Inc()
	} else {
		s.warmStarts.Inc()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.invocations++
	if reason != "" {
		s.errors[reason]++
	}
	if res.Cold {
		s.cold++
	} else {
		s.warm++
	}
	s.durations.add(res.Duration)
	s.latencies.add(latency)
	s.gbSeconds += float64(v.limits.Memory) / float64(edgefn.GiB) * res.Duration.Seconds()
	s.last = time.Now()
	s.hist.add(s.last, res.Duration, reason != "")
}

// chainLogInterval is how often a function's chain drops are logged at
// most.
const chainLogInterval = 10 * time.Second

// chainDrop counts a publish dropped at max_chain_depth and logs the
// drops at most once per chainLogInterval.
func (s *fnStats) chainDrop(log *slog.Logger, topic string, depth int) {
	s.chainDrops.Inc()
	n := s.chainDropped.Add(1)
	if !s.chainLog.allow(chainLogInterval) {
		return
	}
	since := n - s.chainReported.Swap(n)
	log.Warn("publish dropped: chain of functions too deep (max_chain_depth)", "function", s.name, "topic", topic,
		"depth", depth, "dropped_since_last_report", since, "dropped_total", n)
}

func (s *fnStats) dropped(reason edgefn.Reason) {
	s.m.drops.WithLabelValues(s.name, string(reason)).Inc()
	s.mu.Lock()
	s.errors[reason]++
	s.mu.Unlock()
}

// FunctionStats is a function's live counters as status reports them
// (on the wire: api.FunctionStats).
type FunctionStats struct {
	Invocations            int64
	Errors                 map[edgefn.Reason]int64
	Cold, Warm             int64
	P50, P99               time.Duration
	LatencyP50, LatencyP99 time.Duration
	GBSeconds              float64
	Last                   time.Time
	QueueDepth             int
	Dropped                int64
	// ChainDropped counts publishes dropped at max_chain_depth.
	ChainDropped int64
}

func (s FunctionStats) wire() *api.FunctionStats {
	out := &api.FunctionStats{Invocations: s.Invocations, Cold: s.Cold, Warm: s.Warm,
		P50MS: api.Millis(s.P50), P99MS: api.Millis(s.P99), LatencyP50MS: api.Millis(s.LatencyP50), LatencyP99MS: api.Millis(s.LatencyP99),
		GBSeconds: s.GBSeconds, Last: s.Last, QueueDepth: s.QueueDepth, Dropped: s.Dropped, ChainDropped: s.ChainDropped}
	out.Errors = reasonCounts(s.Errors)
	return out
}

// reasonCounts is m keyed by strings, nil when it counts nothing.
func reasonCounts(m map[edgefn.Reason]int64) map[string]int64 {
	var out map[string]int64
	for k, v := range m {
		if v == 0 {
			continue
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[string(k)] = v
	}
	return out
}

func (s *fnStats) snapshot() FunctionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := make(map[edgefn.Reason]int64, len(s.errors))
	for k, v := range s.errors {
		errs[k] = v
	}
	return FunctionStats{
		Invocations: s.invocations, Errors: errs, Cold: s.cold, Warm: s.warm,
		P50: s.durations.quantile(0.5), P99: s.durations.quantile(0.99),
		LatencyP50: s.latencies.quantile(0.5), LatencyP99: s.latencies.quantile(0.99),
		GBSeconds: s.gbSeconds, Last: s.last, ChainDropped: s.chainDropped.Load(),
	}
}

// ring keeps the last ringSize durations for percentiles.
type ring struct {
	buf  [ringSize]time.Duration
	n    int
	next int
}

const ringSize = 1024

func (r *ring) add(d time.Duration) {
	r.buf[r.next] = d
	r.next = (r.next + 1) % ringSize
	if r.n < ringSize {
		r.n++
	}
}

func (r *ring) quantile(q float64) time.Duration {
	if r.n == 0 {
		return 0
	}
	s := make([]time.Duration, r.n)
	copy(s, r.buf[:r.n])
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(r.n)+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= r.n {
		i = r.n - 1
	}
	return s[i]
}

// every lets something happen at most once per interval, from any number
// of goroutines (a warning about a flood, logged once, not per event).
type every struct{ last atomic.Int64 }

func (e *every) allow(interval time.Duration) bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(interval) && e.last.CompareAndSwap(last, now)
}
