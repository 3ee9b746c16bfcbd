package live

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/metrics"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newBalancer is a sticky balancer (cookie S) with members http://a:1
// (route ra) and http://b:1 (route rb), the first checked by TCP.
func newBalancer(t *testing.T) *balancer.Balancer {
	t.Helper()
	b, err := balancer.New(balancer.Config{Name: "web", StickySession: "S", StickySeparator: '.', Growth: 2, Members: []balancer.MemberConfig{
		{URL: "http://a:1", Route: "ra", HealthCheck: balancer.HealthCheck{Method: "TCP", Interval: 2 * time.Second}},
		{URL: "http://b:1", Route: "rb", LoadFactor: 300},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request sends n requests with route's cookie, each answered 200 after d;
// with hold, they stay in flight.
func request(t *testing.T, b *balancer.Balancer, route string, n int, d time.Duration, hold bool) {
	t.Helper()
	for range n {
		p, err := b.Pick(context.Background(), &balancer.Request{Cookie: "S=x." + route})
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.Route() != route {
			t.Fatalf("picked %s, want route %s", p.Member.Name(), route)
		}
		rec := metrics.For(p.Member)
		rec.Outcome(metrics.StatusOutcome(200))
		rec.Headers(d)
		if !hold {
			p.Member.Release()
		}
	}
}

func member(t *testing.T, d BalancerData, name string) MemberData {
	t.Helper()
	for _, m := range d.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no member %s in %+v", name, d.Members)
	return MemberData{}
}

func values(s []*float64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		if v == nil {
			out[i] = math.NaN()
		} else {
			out[i] = *v
		}
	}
	return out
}

func same(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.IsNaN(a[i]) != math.IsNaN(b[i]) || (!math.IsNaN(a[i]) && math.Abs(a[i]-b[i]) > 1e-6) {
			return false
		}
	}
	return true
}

var null = math.NaN()

// The charts are the differences between samples: requests per second,
// latency percentiles and means per interval, requests in flight at its end;
// the current figures are the last interval's, which runs to now.
func TestSamplerRatesAndLatency(t *testing.T) {
	b := newBalancer(t)
	s := NewSampler(b, 5*time.Second, 60)
	s.Take(t0)
	request(t, b, "ra", 10, 2*time.Millisecond, false)
	s.Take(t0.Add(5 * time.Second))
	request(t, b, "ra", 18, 3*time.Millisecond, false)
	request(t, b, "ra", 2, 3*time.Millisecond, true) // still in flight
	request(t, b, "rb", 1, 40*time.Millisecond, false)
	d := s.Data(t0.Add(10 * time.Second))

	if d.Name != "web" || d.StickySession != "S" || d.LBMethod != "byrequests" || d.Nonce == "" {
		t.Fatalf("balancer %+v", d)
	}
	if want := []int64{t0.Add(5 * time.Second).UnixMilli(), t0.Add(10 * time.Second).UnixMilli()}; len(d.Times) != 2 || d.Times[0] != want[0] || d.Times[1] != want[1] {
		t.Fatalf("times %v, want %v", d.Times, want)
	}
	if d.WindowSeconds != 10 {
		t.Fatalf("window %vs, want 10", d.WindowSeconds)
	}
	a := member(t, d, "http://a:1")
	if got := values(a.Series.Rate); !same(got, []float64{2, 4}) {
		t.Errorf("a rate %v, want [2 4] (10 then 20 requests in 5 s)", got)
	}
	if a.Rate == nil || *a.Rate != 4 || a.Requests != 30 || a.Busy != 2 {
		t.Errorf("a now: rate %v requests %d busy %d, want 4 30 2", a.Rate, a.Requests, a.Busy)
	}
	if got := values(a.Series.Busy); !same(got, []float64{0, 2}) {
		t.Errorf("a in flight %v, want [0 2]", got)
	}
	// 2 ms is in (1ms, 2.5ms]: the 95th percentile is 95% into that bucket;
	// 3 ms in (2.5ms, 5ms].
	if got := values(a.Series.LatencyP95); !same(got, []float64{2.425, 4.875}) {
		t.Errorf("a p95 %v, want [2.425 4.875]", got)
	}
	if got := values(a.Series.LatencyMean); !same(got, []float64{2, 3}) {
		t.Errorf("a mean %v, want [2 3]", got)
	}
	bm := member(t, d, "http://b:1")
	if got := values(bm.Series.Rate); !same(got, []float64{0, 0.2}) {
		t.Errorf("b rate %v, want [0 0.2]", got)
	}
	if got := values(bm.Series.LatencyMean); !same(got, []float64{null, 40}) {
		t.Errorf("b mean %v, want [null 40]: no answer in the first interval", got)
	}
	if bm.LoadFactor != 3 || bm.EffectiveLoadFactor != 3 || bm.Route != "rb" || bm.Status != "Init Ok" || bm.Flags != "O" || !bm.Usable {
		t.Errorf("b state %+v", bm)
	}
	if bm.HC != nil {
		t.Errorf("b is not checked, HC %+v", bm.HC)
	}
}

// A sample younger than a second is left out: the last interval runs from
// the one before it to now, so the current rate is never that of a few
// milliseconds.
func TestSamplerLastIntervalAtLeastASecond(t *testing.T) {
	b := newBalancer(t)
	s := NewSampler(b, 5*time.Second, 60)
	s.Take(t0)
	request(t, b, "ra", 11, time.Millisecond, false)
	s.Take(t0.Add(5 * time.Second))
	d := s.Data(t0.Add(5500 * time.Millisecond))
	a := member(t, d, "http://a:1")
	if got := values(a.Series.Rate); !same(got, []float64{2}) {
		t.Fatalf("rate %v, want [2]: 11 requests over 5.5 s", got)
	}
	// Just started, nothing older than a second: the requests since the
	// first sample count, but there is no rate yet.
	s = NewSampler(b, 5*time.Second, 60)
	s.Take(t0)
	request(t, b, "ra", 3, time.Millisecond, false)
	d = s.Data(t0.Add(500 * time.Millisecond))
	if a := member(t, d, "http://a:1"); len(d.Times) != 1 || a.Rate != nil || a.Requests != 3 || a.LatencyMean == nil || *a.LatencyMean != 1 {
		t.Fatalf("with one sample 0.5 s old: times %v, rate %v, requests %d, mean latency %v; want 1 interval, no rate, 3, 1 ms",
			d.Times, a.Rate, a.Requests, a.LatencyMean)
	}
}

// The ring keeps the last slots samples.
func TestSamplerRing(t *testing.T) {
	b := newBalancer(t)
	s := NewSampler(b, 5*time.Second, 3)
	for i := range 5 {
		request(t, b, "ra", i, time.Millisecond, false) // 0, 1, 2, 3, 4 requests before sample i
		s.Take(t0.Add(time.Duration(i) * 5 * time.Second))
	}
	d := s.Data(t0.Add(25 * time.Second))
	if d.WindowSeconds != 15 || len(d.Times) != 3 {
		t.Fatalf("window %vs with %d intervals, want 15s and 3 (samples 2, 3, 4 and now)", d.WindowSeconds, len(d.Times))
	}
	a := member(t, d, "http://a:1")
	if got := values(a.Series.Rate); !same(got, []float64{0.6, 0.8, 0}) || a.Requests != 7 {
		t.Fatalf("rate %v requests %d, want [0.6 0.8 0] and 7", got, a.Requests)
	}
}

// A member added at run time counts from zero in the interval it appeared in
// and has no values before; health checks show per interval.
func TestSamplerAddedMemberAndHealthChecks(t *testing.T) {
	b := newBalancer(t)
	s := NewSampler(b, 5*time.Second, 60)
	a := b.FindMemberByName("http://a:1")
	s.Take(t0)
	a.HCResult(true, t0.Add(time.Second))
	a.HCResult(true, t0.Add(3*time.Second))
	s.Take(t0.Add(5 * time.Second))
	if _, err := b.Apply(balancer.Edit{Add: []balancer.MemberConfig{{URL: "http://c:1", Route: "rc"}}}, balancer.ReasonAPI); err != nil {
		t.Fatal(err)
	}
	request(t, b, "rc", 5, time.Millisecond, false)
	a.HCResult(false, t0.Add(6*time.Second))
	s.Take(t0.Add(10 * time.Second))
	request(t, b, "rc", 10, time.Millisecond, false)
	d := s.Data(t0.Add(15 * time.Second))

	c := member(t, d, "http://c:1")
	if got := values(c.Series.Rate); !same(got, []float64{null, 1, 2}) || c.Requests != 15 {
		t.Fatalf("added member: rate %v requests %d, want [null 1 2] and 15", got, c.Requests)
	}
	am := member(t, d, "http://a:1")
	if got := values(am.Series.HCPass); !same(got, []float64{2, 0, 0}) {
		t.Errorf("passes %v, want [2 0 0]", got)
	}
	if got := values(am.Series.HCFail); !same(got, []float64{0, 1, 0}) {
		t.Errorf("fails %v, want [0 1 0]", got)
	}
	if am.HC == nil || am.HC.Method != "TCP" || am.HC.IntervalSeconds != 2 || am.HC.Passes != 2 || am.HC.Fails != 1 || !am.HC.Failed {
		t.Errorf("health %+v, want TCP every 2s, 2 passed, 1 failed, HcFl (hcfails 1)", am.HC)
	}
	if am.Flags != "OC" || am.Usable {
		t.Errorf("flags %q usable %v, want OC false", am.Flags, am.Usable)
	}
}

// Errors are 5xx answers and failed attempts, not 4xx or canceled ones.
func TestSamplerErrors(t *testing.T) {
	b := newBalancer(t)
	s := NewSampler(b, 5*time.Second, 60)
	a := b.FindMemberByName("http://a:1")
	rec := metrics.For(a)
	s.Take(t0)
	rec.Outcome(metrics.StatusOutcome(503))
	rec.Outcome(metrics.StatusOutcome(404))
	rec.Outcome(metrics.OutcomeConnectFailure)
	rec.Outcome(metrics.OutcomeTimeout)
	rec.Outcome(metrics.OutcomeCanceled)
	d := s.Data(t0.Add(5 * time.Second))
	if am := member(t, d, "http://a:1"); am.Errors != 3 || !same(values(am.Series.Errors), []float64{3}) {
		t.Fatalf("errors %d %v, want 3 (503, connect failure, timeout)", am.Errors, values(am.Series.Errors))
	}
}

// StartSampler takes a sample at once; Stop ends its goroutine.
func TestSamplerStartStop(t *testing.T) {
	b := newBalancer(t)
	s := StartSampler(b, time.Hour, 60)
	s.mu.Lock()
	n := s.n
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d samples after start, want 1", n)
	}
	s.Stop()
	select {
	case <-s.done:
	default:
		t.Fatal("sampler goroutine still running after Stop")
	}
}
