// Package metrics is caddy-balancer's Prometheus collector: the balancer
// metrics, read at scrape time from the engine's live state and from each
// member's Recorder (recorder.go), which the request path feeds with atomics
// only. Every series has the labels balancer (the name without balancer://)
// and member (the member URL).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbset/caddy-balancer/balancer"
)

var (
	metricLabels = []string{"balancer", "member"}

	descElected = prometheus.NewDesc("caddy_balancer_member_elected_total",
		"Times the member was chosen for a request attempt (httpd's Elected).", metricLabels, nil)
	descBusy = prometheus.NewDesc("caddy_balancer_member_requests_in_flight",
		"Requests the member is serving now (httpd's Busy).", metricLabels, nil)
	descSent = prometheus.NewDesc("caddy_balancer_member_sent_bytes_total",
		"Bytes sent to the member (httpd's To).", metricLabels, nil)
	descReceived = prometheus.NewDesc("caddy_balancer_member_received_bytes_total",
		"Bytes read from the member (httpd's From).", metricLabels, nil)
	descRetries = prometheus.NewDesc("caddy_balancer_member_consecutive_retries",
		"Times the member was retried since its last successful connection (httpd's Retries).", metricLabels, nil)
	descEffLF = prometheus.NewDesc("caddy_balancer_member_effective_loadfactor",
		"The member's loadfactor in force: its loadfactor, or less while it ramps up after coming back (slowstart).", metricLabels, nil)
	descUsable = prometheus.NewDesc("caddy_balancer_member_usable",
		"1 if the member can be chosen (its status string ends in Ok), else 0.", metricLabels, nil)
	descStatus = prometheus.NewDesc("caddy_balancer_member_status",
		"1 if the member has the status flag (httpd's letters O I N G U D S E H F C R), else 0.",
		append(append([]string(nil), metricLabels...), "flag"), nil)
	descHC = prometheus.NewDesc("caddy_balancer_member_health_checks_total",
		"Health checks of the member by result (pass or fail).",
		append(append([]string(nil), metricLabels...), "result"), nil)
	descFleetConnected = prometheus.NewDesc("caddy_balancer_fleet_connected",
		"1 if the fleet's store (Redis or Caddy's storage) answers this node, else 0.", []string{"balancer", "store", "node"}, nil)
	descFleetPending = prometheus.NewDesc("caddy_balancer_fleet_pending_changes",
		"Run-time changes made on this node that the fleet's store has not taken yet.", []string{"balancer", "store", "node"}, nil)
	descPersistFailures = prometheus.NewDesc("caddy_balancer_persist_failures_total",
		"Writes of the balancer's state to storage that failed (persist on): the changes stayed in memory.",
		[]string{"balancer"}, nil)
	descAttempts = prometheus.NewDesc("caddy_balancer_member_attempts_total",
		"Request attempts sent to the member by outcome: the status class of its answer (1xx ... 5xx), "+
			"connect_failure, timeout (no response headers in time), error (connected, no valid answer) "+
			"or canceled (the client went away first).",
		append(append([]string(nil), metricLabels...), "outcome"), nil)
	descHeader = prometheus.NewDesc("caddy_balancer_member_header_duration_seconds",
		"Time from handing a request attempt to the transport (connecting included) until the member's response headers arrived.",
		metricLabels, nil)
	descExchange = prometheus.NewDesc("caddy_balancer_member_exchange_duration_seconds",
		"Time from handing a request attempt to the transport until the member's answer was read to its end and closed "+
			"(not observed for upgraded connections such as WebSockets).",
		metricLabels, nil)
)

// statusFlag is one flag reported by caddy_balancer_member_status.
type statusFlag struct {
	flag   balancer.Status
	letter string
}

// statusFlags are the flags reported by caddy_balancer_member_status.
var statusFlags = func() []statusFlag {
	var out []statusFlag
	for _, c := range "OINGUDSEHRFC" {
		f, _ := balancer.FlagForLetter(byte(c))
		out = append(out, statusFlag{f, string(c)})
	}
	return out
}()

// Collector collects the metrics of the balancers Balancers returns.
type Collector struct {
	// Balancers lists the live balancers.
	Balancers func() []*balancer.Balancer
}

// Describe implements prometheus.Collector.
func (Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descElected, descBusy, descSent, descReceived, descRetries, descEffLF, descUsable, descStatus, descHC,
		descAttempts, descHeader, descExchange, descPersistFailures, descFleetConnected, descFleetPending} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.Balancers() {
		name := b.Name()
		d := b.Durability()
		if d.Persist {
			ch <- prometheus.MustNewConstMetric(descPersistFailures, prometheus.CounterValue, float64(d.PersistFailures), name)
		}
		if f := d.Fleet; f != nil {
			ch <- prometheus.MustNewConstMetric(descFleetConnected, prometheus.GaugeValue, b01(f.Connected), name, f.Store, f.Node)
			ch <- prometheus.MustNewConstMetric(descFleetPending, prometheus.GaugeValue, float64(f.Pending), name, f.Store, f.Node)
		}
		for _, m := range b.Members() {
			st := m.State()
			l := []string{name, st.Name}
			ch <- prometheus.MustNewConstMetric(descElected, prometheus.CounterValue, float64(st.Elected), l...)
			ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, float64(st.Busy), l...)
			ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(st.Transfer), l...)
			ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(st.Read), l...)
			ch <- prometheus.MustNewConstMetric(descRetries, prometheus.GaugeValue, float64(st.Retries), l...)
			ch <- prometheus.MustNewConstMetric(descEffLF, prometheus.GaugeValue, float64(st.EffectiveLoadFactor)/100, l...)
			ch <- prometheus.MustNewConstMetric(descUsable, prometheus.GaugeValue, b01(st.Status.Usable()), l...)
			for _, f := range statusFlags {
				ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, b01(st.Status&f.flag != 0), name, st.Name, f.letter)
			}
			pass, fail := m.HCCounts()
			ch <- prometheus.MustNewConstMetric(descHC, prometheus.CounterValue, float64(pass), name, st.Name, "pass")
			ch <- prometheus.MustNewConstMetric(descHC, prometheus.CounterValue, float64(fail), name, st.Name, "fail")
			rec := For(m)
			for o, n := range rec.Outcomes() {
				ch <- prometheus.MustNewConstMetric(descAttempts, prometheus.CounterValue, float64(n), name, st.Name, Outcome(o).String())
			}
			ch <- constHistogram(descHeader, rec.HeaderLatency(), l)
			ch <- constHistogram(descExchange, rec.ExchangeLatency(), l)
		}
	}
}

// constHistogram is h as a Prometheus histogram.
func constHistogram(d *prometheus.Desc, h Histogram, labels []string) prometheus.Metric {
	buckets := make(map[float64]uint64, NumBuckets)
	var cum uint64
	for i, le := range Buckets {
		cum += h.Counts[i]
		buckets[le] = cum
	}
	return prometheus.MustNewConstHistogram(d, cum+h.Counts[NumBuckets], h.Sum.Seconds(), buckets, labels...)
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
