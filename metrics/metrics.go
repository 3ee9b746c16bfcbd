// Package metrics is caddy-balancer's Prometheus collector: the balancer
// metrics, read from the engine's live state at scrape time, so that they
// cost nothing on the request path. Every series has the labels balancer
// (the name without balancer://) and member (the member URL).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbset/caddy-balancer/balancer"
)

var (
	metricLabels = []string{"balancer", "member"}

	descElected = prometheus.NewDesc("caddy_balancer_member_elected_total",
		"Times the member was chosen for a request attempt (httpd's Elected).", metricLabels, nil)
	descBusy = prometheus.NewDesc("caddy_balancer_member_busy",
		"Requests the member is serving now (httpd's Busy).", metricLabels, nil)
	descBytesTo = prometheus.NewDesc("caddy_balancer_member_bytes_to_total",
		"Bytes sent to the member (httpd's To).", metricLabels, nil)
	descBytesFrom = prometheus.NewDesc("caddy_balancer_member_bytes_from_total",
		"Bytes read from the member (httpd's From).", metricLabels, nil)
	descRetries = prometheus.NewDesc("caddy_balancer_member_retries",
		"Times the member was retried since its last successful connection (httpd's Retries).", metricLabels, nil)
	descEffLF = prometheus.NewDesc("caddy_balancer_member_effective_loadfactor",
		"The member's loadfactor in force: its loadfactor, or less while it ramps up after coming back (slowstart).", metricLabels, nil)
	descUsable = prometheus.NewDesc("caddy_balancer_member_usable",
		"1 if the member can be chosen (its status string ends in Ok), else 0.", metricLabels, nil)
	descStatus = prometheus.NewDesc("caddy_balancer_member_status",
		"1 if the member has the status flag (httpd's letters O I N G U D S E H F C R), else 0.",
		append(append([]string(nil), metricLabels...), "flag"), nil)
	descHC = prometheus.NewDesc("caddy_balancer_member_healthcheck_total",
		"Health checks of the member by result (pass or fail).",
		append(append([]string(nil), metricLabels...), "result"), nil)
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
	for _, d := range []*prometheus.Desc{descElected, descBusy, descBytesTo, descBytesFrom, descRetries, descEffLF, descUsable, descStatus, descHC} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.Balancers() {
		name := b.Name()
		for _, m := range b.Members() {
			st := m.State()
			l := []string{name, st.Name}
			ch <- prometheus.MustNewConstMetric(descElected, prometheus.CounterValue, float64(st.Elected), l...)
			ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, float64(st.Busy), l...)
			ch <- prometheus.MustNewConstMetric(descBytesTo, prometheus.CounterValue, float64(st.Transfer), l...)
			ch <- prometheus.MustNewConstMetric(descBytesFrom, prometheus.CounterValue, float64(st.Read), l...)
			ch <- prometheus.MustNewConstMetric(descRetries, prometheus.GaugeValue, float64(st.Retries), l...)
			ch <- prometheus.MustNewConstMetric(descEffLF, prometheus.GaugeValue, float64(st.EffectiveLoadFactor)/100, l...)
			ch <- prometheus.MustNewConstMetric(descUsable, prometheus.GaugeValue, b01(st.Status.Usable()), l...)
			for _, f := range statusFlags {
				ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, b01(st.Status&f.flag != 0), name, st.Name, f.letter)
			}
			pass, fail := m.HCCounts()
			ch <- prometheus.MustNewConstMetric(descHC, prometheus.CounterValue, float64(pass), name, st.Name, "pass")
			ch <- prometheus.MustNewConstMetric(descHC, prometheus.CounterValue, float64(fail), name, st.Name, "fail")
		}
	}
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
