package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbset/caddy-balancer/balancer"
)

// answer records an attempt answered with code, its headers after d.
func answer(r *Recorder, code int, d time.Duration) {
	r.Outcome(StatusOutcome(code))
	r.Headers(d)
}

func newMembers(t testing.TB, urls ...string) (*balancer.Balancer, []*balancer.Member) {
	t.Helper()
	cfg := balancer.Config{Name: "m"}
	for _, u := range urls {
		cfg.Members = append(cfg.Members, balancer.MemberConfig{URL: u})
	}
	b, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, b.Members()
}

// An observation goes to the first bucket whose bound is not below it, as a
// Prometheus histogram's le ("less or equal") buckets count it.
func TestHistogramBuckets(t *testing.T) {
	var r Recorder
	for _, d := range []time.Duration{
		0, 500 * time.Microsecond, time.Millisecond, // le 0.001
		time.Millisecond + 1,   // le 0.0025
		10 * time.Millisecond,  // le 0.01
		999 * time.Millisecond, // le 1
		10 * time.Second,       // le 10
		11 * time.Second,       // +Inf
	} {
		answer(&r, 200, d)
	}
	h := r.HeaderLatency()
	want := [NumBuckets + 1]uint64{3, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1}
	if h.Counts != want {
		t.Fatalf("buckets %v, want %v", h.Counts, want)
	}
	if h.Count() != 8 {
		t.Fatalf("count %d", h.Count())
	}
	if wantSum := 500*time.Microsecond + time.Millisecond + time.Millisecond + 1 + 10*time.Millisecond + 999*time.Millisecond + 21*time.Second; h.Sum != wantSum {
		t.Fatalf("sum %v, want %v", h.Sum, wantSum)
	}
	if e := r.ExchangeLatency(); e.Count() != 0 {
		t.Fatalf("exchange histogram has %d observations; only Headers was called", e.Count())
	}
}

// Quantiles are interpolated within the bucket as histogram_quantile does.
func TestHistogramQuantile(t *testing.T) {
	var h Histogram
	if _, ok := h.Quantile(0.95); ok {
		t.Fatal("quantile of an empty histogram")
	}
	// 100 observations: 50 in (0, 1ms], 50 in (5ms, 10ms].
	h.Counts[0], h.Counts[3] = 50, 50
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.25, 500 * time.Microsecond},  // rank 25 of 50 in [0, 1ms]
		{0.5, time.Millisecond},         // rank 50: the top of the first bucket
		{0.95, 9500 * time.Microsecond}, // rank 95: 45/50 of (5ms, 10ms]
	} {
		got, ok := h.Quantile(c.q)
		if !ok || (got-c.want).Abs() > time.Microsecond {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	// Above the last bound: the last bound.
	var slow Histogram
	slow.Counts[NumBuckets] = 3
	if got, _ := slow.Quantile(0.5); got != 10*time.Second {
		t.Errorf("quantile in +Inf = %v, want 10s", got)
	}
}

// Sub is the observations between two readings; a histogram that went back
// (a new member of the same name) counts from zero.
func TestHistogramSub(t *testing.T) {
	var r Recorder
	answer(&r, 200, 2*time.Millisecond)
	old := r.HeaderLatency()
	answer(&r, 200, 20*time.Millisecond)
	answer(&r, 200, 30*time.Millisecond)
	d := r.HeaderLatency().Sub(old)
	if d.Count() != 2 || d.Sum != 50*time.Millisecond || d.Counts[4] != 1 || d.Counts[5] != 1 {
		t.Fatalf("difference %+v", d)
	}
	var fresh Recorder
	answer(&fresh, 200, time.Millisecond)
	if d := fresh.HeaderLatency().Sub(r.HeaderLatency()); d.Count() != 1 {
		t.Fatalf("difference with an older, larger histogram: %+v, want the newer one whole", d)
	}
}

func TestOutcomes(t *testing.T) {
	var r Recorder
	for _, code := range []int{101, 200, 204, 302, 404, 499, 500, 503, 599} {
		answer(&r, code, time.Millisecond)
	}
	r.Outcome(OutcomeConnectFailure)
	r.Outcome(OutcomeTimeout)
	r.Outcome(OutcomeTimeout)
	r.Outcome(OutcomeCanceled)
	got := map[string]uint64{}
	for o, n := range r.Outcomes() {
		got[Outcome(o).String()] = n
	}
	want := map[string]uint64{"1xx": 1, "2xx": 2, "3xx": 1, "4xx": 2, "5xx": 3, "connect_failure": 1, "timeout": 2, "error": 0, "canceled": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("outcome %s = %d, want %d", k, got[k], v)
		}
	}
}

// For attaches one recorder per member, also when many requests race for
// the first one.
func TestForOnePerMember(t *testing.T) {
	_, ms := newMembers(t, "http://a:1", "http://b:1")
	var wg sync.WaitGroup
	got := make([]*Recorder, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = For(ms[0])
			answer(got[i], 200, time.Millisecond)
		}()
	}
	wg.Wait()
	for _, r := range got {
		if r != got[0] {
			t.Fatal("two recorders for one member")
		}
	}
	if n := For(ms[0]).HeaderLatency().Count(); n != 16 {
		t.Fatalf("%d observations, want 16", n)
	}
	if For(ms[1]) == got[0] {
		t.Fatal("two members share a recorder")
	}
}

// The collector's output passes Prometheus' own lint (names, units, _total
// on counters only) and has the new series.
func TestCollectorLint(t *testing.T) {
	b, ms := newMembers(t, "http://a:1")
	answer(For(ms[0]), 200, 3*time.Millisecond)
	For(ms[0]).Exchange(7 * time.Millisecond)
	c := Collector{Balancers: func() []*balancer.Balancer { return []*balancer.Balancer{b} }}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "caddy_balancer_member_header_duration_seconds", "caddy_balancer_member_exchange_duration_seconds")
	if err != nil || n != 2 {
		t.Fatalf("histograms: %d series, %v", n, err)
	}
	want := `
# HELP caddy_balancer_member_exchange_duration_seconds Time from handing a request attempt to the transport until the member's answer was read to its end and closed (not observed for upgraded connections such as WebSockets).
# TYPE caddy_balancer_member_exchange_duration_seconds histogram
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.001"} 0
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.0025"} 0
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.005"} 0
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.01"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.025"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.05"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.1"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.25"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="0.5"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="1"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="2.5"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="5"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="10"} 1
caddy_balancer_member_exchange_duration_seconds_bucket{balancer="m",member="http://a:1",le="+Inf"} 1
caddy_balancer_member_exchange_duration_seconds_sum{balancer="m",member="http://a:1"} 0.007
caddy_balancer_member_exchange_duration_seconds_count{balancer="m",member="http://a:1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "caddy_balancer_member_exchange_duration_seconds"); err != nil {
		t.Fatal(err)
	}
}
