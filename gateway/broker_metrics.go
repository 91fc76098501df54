package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgefn/edgefn/triggers"
)

// brokerCollector reports the embedded broker's clients and refusals at
// scrape time from its Status.
type brokerCollector struct {
	b                                          *triggers.Broker
	refused, dropped, clients, sockets, retain *prometheus.Desc
}

func newBrokerCollector(b *triggers.Broker) *brokerCollector {
	return &brokerCollector{
		b:       b,
		refused: prometheus.NewDesc("edgefn_broker_refused_total", "What the embedded broker refused, by reason: auth (connections), acl (publishes, subscriptions, deliveries), bad_connect (first packet not a CONNECT or over max_connect_size), connect_timeout, sockets (over 2 × max_clients), retained (over the retained budget), panic (a malformed packet crashed the connection's handler).", []string{"reason"}, nil),
		dropped: prometheus.NewDesc("edgefn_broker_dropped_total", "Messages the embedded broker dropped because a client's queue (max_queued) was full.", nil, nil),
		clients: prometheus.NewDesc("edgefn_broker_clients", "Clients connected to the embedded broker.", nil, nil),
		sockets: prometheus.NewDesc("edgefn_broker_sockets", "Sockets open on the embedded broker, clients or not yet.", nil, nil),
		retain:  prometheus.NewDesc("edgefn_broker_retained_bytes", "Payload bytes of the embedded broker's retained messages.", nil, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.dropped, c.clients, c.sockets, c.retain} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Status()
	for reason, n := range map[string]uint64{"auth": st.AuthRefused, "acl": st.ACLDenied, "bad_connect": st.BadConnects,
		"connect_timeout": st.ConnectTimeouts, "sockets": st.SocketsRefused, "retained": st.RetainedRefused, "panic": st.HandlerPanics} {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(st.Clients))
	ch <- prometheus.MustNewConstMetric(c.sockets, prometheus.GaugeValue, float64(st.Sockets))
	ch <- prometheus.MustNewConstMetric(c.retain, prometheus.GaugeValue, float64(st.RetainedBytes))
}
