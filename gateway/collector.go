package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports gauges read at scrape time: queue depths and
// workers per function, the outbox backlog and its age, drops by reason,
// and the uplink's state. Reading them when scraped keeps the hot path free
// of gauge updates.
type stateCollector struct {
	g *Host

	queueDepth, workers, backlog, backlogAge, outboxBytes, outboxDrops, uplinkOnline, uplinkBacklog, uplinkLastSuccess *prometheus.Desc
}

func newStateCollector(g *Host) *stateCollector {
	return &stateCollector{
		g:                 g,
		queueDepth:        prometheus.NewDesc("edgefn_queue_depth", "Events waiting in a function's queue.", []string{"function"}, nil),
		workers:           prometheus.NewDesc("edgefn_workers", "Workers (warm invocations in progress or waiting) of a function.", []string{"function"}, nil),
		backlog:           prometheus.NewDesc("edgefn_outbox_backlog_records", "Records in the outbox not yet confirmed by the cloud.", []string{"function"}, nil),
		backlogAge:        prometheus.NewDesc("edgefn_outbox_oldest_age_seconds", "Age of the oldest record waiting in the outbox.", nil, nil),
		outboxBytes:       prometheus.NewDesc("edgefn_outbox_bytes", "Payload bytes waiting in the outbox.", nil, nil),
		outboxDrops:       prometheus.NewDesc("edgefn_outbox_drops_total", "Records the outbox dropped or refused, by reason.", []string{"reason"}, nil),
		uplinkOnline:      prometheus.NewDesc("edgefn_uplink_online", "1 when the last uplink attempt reached the cloud.", []string{"uplink"}, nil),
		uplinkBacklog:     prometheus.NewDesc("edgefn_uplink_backlog_records", "Records the uplink still has to deliver.", []string{"uplink"}, nil),
		uplinkLastSuccess: prometheus.NewDesc("edgefn_uplink_last_success_timestamp_seconds", "When the cloud last confirmed records.", []string{"uplink"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueDepth, c.workers, c.backlog, c.backlogAge, c.outboxBytes, c.outboxDrops, c.uplinkOnline, c.uplinkBacklog, c.uplinkLastSuccess} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	g.mu.RLock()
	for name, d := range g.fns {
		ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(d.q.depth()), name)
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(d.q.currentWorkers()), name)
	}
	g.mu.RUnlock()
	if g.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := g.store.Stats(ctx)
		cancel()
		if err == nil {
			for name, b := range st.Functions {
				ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(b.Depth), name)
			}
			ch <- prometheus.MustNewConstMetric(c.backlogAge, prometheus.GaugeValue, st.OldestAge.Seconds())
			ch <- prometheus.MustNewConstMetric(c.outboxBytes, prometheus.GaugeValue, float64(st.Bytes))
			for reason, n := range st.Drops {
				ch <- prometheus.MustNewConstMetric(c.outboxDrops, prometheus.CounterValue, float64(n), reason)
			}
		}
	}
	ups := g.uplinkStates()
	if len(ups) == 0 {
		// No uplink configured: the series exist anyway (offline, with
		// the outbox's backlog), so dashboards show the records piling up.
		var depth int64
		if g.store != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if st, err := g.store.Stats(ctx); err == nil {
				depth = st.Depth
			}
			cancel()
		}
		ch <- prometheus.MustNewConstMetric(c.uplinkOnline, prometheus.GaugeValue, 0, "none")
		ch <- prometheus.MustNewConstMetric(c.uplinkBacklog, prometheus.GaugeValue, float64(depth), "none")
	}
	for _, u := range ups {
		online := 0.0
		if u.Online {
			online = 1
		}
		ch <- prometheus.MustNewConstMetric(c.uplinkOnline, prometheus.GaugeValue, online, u.Name)
		ch <- prometheus.MustNewConstMetric(c.uplinkBacklog, prometheus.GaugeValue, float64(u.Backlog), u.Name)
		if !u.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.uplinkLastSuccess, prometheus.GaugeValue, float64(u.LastSuccess.UnixNano())/1e9, u.Name)
		}
	}
}
