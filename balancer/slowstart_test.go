package balancer

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

// Slow start (slowstart.go). The expected shares are the ramp's definition:
// a member's weight is lbfactor × elapsed / window (at least 1, a hundredth
// of loadfactor 1), and its share of the requests is its weight over the sum
// of the weights of the members competing.

// expectedWeight restates the ramp: lbfactor × elapsed / window, at least 1.
func expectedWeight(lf int, elapsed, window time.Duration) int {
	if elapsed >= window {
		return lf
	}
	return max(1, int(int64(lf)*int64(elapsed)/int64(window)))
}

// rampBalancer is two members a and b (loadfactor 1) with a slow-start
// window of 10s and a fake clock.
func rampBalancer(t *testing.T, method string) (*Balancer, *testClock) {
	t.Helper()
	clk := &testClock{t: testEpoch}
	b := newTestBalancer(t, Config{LBMethod: method, ForceRecovery: true, SlowStart: 10 * time.Second,
		Members: []MemberConfig{{URL: "http://a"}, {URL: "http://b"}}}, clk)
	return b, clk
}

func setFlags(t *testing.T, b *Balancer, member, change string) {
	t.Helper()
	set, clear, err := ParseStatusChange(change)
	if err != nil {
		t.Fatal(err)
	}
	name := "http://" + member
	if _, err := b.Apply(Edit{Members: []MemberEdit{{Name: name, Set: set, Clear: clear}}}, ReasonAPI); err != nil {
		t.Fatalf("%s %s: %v", member, change, err)
	}
}

// served runs n requests one after another; with traffic, each request
// moves 500 bytes to its member and 1500 back. It returns how many b served.
func served(t *testing.T, b *Balancer, n int, traffic bool) int {
	t.Helper()
	got := 0
	for i := 0; i < n; i++ {
		p, err := b.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if traffic {
			p.Member.AddTraffic(500, 1500)
		}
		if memberLabel(p.Member) == "b" {
			got++
		}
		p.Member.Release()
	}
	return got
}

// TestSlowStartShare: after b is disabled and enabled again, its share of
// the requests in each second of the 10s window is weight/(100+weight), for
// byrequests, bybusyness (requests one at a time: ties on busy) and bytraffic
// (b comes back with far fewer bytes counted than a: without slow start it
// would take every request until it caught up); at the end of the window it
// is its configured share, one half.
func TestSlowStartShare(t *testing.T) {
	const window, perSlice = 10 * time.Second, 400
	for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
		t.Run(method, func(t *testing.T) {
			b, clk := rampBalancer(t, method)
			traffic := method == "bytraffic"
			served(t, b, 100, traffic)
			setFlags(t, b, "b", "+D")
			served(t, b, 300, traffic) // a alone: b falls behind in bytes
			start := clk.t
			setFlags(t, b, "b", "-D")
			for k := 0; k <= 11; k++ {
				clk.t = start.Add(time.Duration(k) * time.Second)
				w := expectedWeight(100, time.Duration(k)*time.Second, window)
				if got := stateOf(t, b, "b").EffectiveLoadFactor; got != w {
					t.Errorf("second %d: effective loadfactor %d, want %d", k, got, w)
				}
				want := float64(perSlice) * float64(w) / float64(100+w)
				got := served(t, b, perSlice, traffic)
				if math.Abs(float64(got)-want) > 3 {
					t.Errorf("second %d (weight %d): b served %d of %d, want %.1f", k, w, got, perSlice, want)
				}
			}
		})
	}
}

// TestSlowStartBusyness: with 40 requests in flight at all times, the
// ramping member holds weight/lbfactor of what its peer holds, so its share
// of the requests is weight/(100+weight); without slow start bybusyness
// would hand it every request until it held as many as its peer.
func TestSlowStartBusyness(t *testing.T) {
	const window, inFlight, perSlice = 10 * time.Second, 40, 800
	b, clk := rampBalancer(t, "bybusyness")
	var queue []*Member
	run := func(n int) (gotB int) {
		for i := 0; i < n; i++ {
			p, err := b.Pick(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if memberLabel(p.Member) == "b" {
				gotB++
			}
			queue = append(queue, p.Member)
			if len(queue) > inFlight {
				queue[0].Release()
				queue = queue[1:]
			}
		}
		return gotB
	}
	run(200)
	setFlags(t, b, "b", "+D")
	run(200) // a now holds every request in flight
	start := clk.t
	setFlags(t, b, "b", "-D")
	for _, k := range []int{1, 3, 5, 8, 10} {
		clk.t = start.Add(time.Duration(k) * time.Second)
		w := expectedWeight(100, time.Duration(k)*time.Second, window)
		run(inFlight) // let the in-flight mix settle at this weight
		want := float64(perSlice) * float64(w) / float64(100+w)
		if got := run(perSlice); math.Abs(float64(got)-want) > 0.05*perSlice {
			t.Errorf("second %d (weight %d): b served %d of %d, want %.1f", k, w, got, perSlice, want)
		}
	}
}

// TestSlowStartTriggers: which changes start a ramp, and with which window.
func TestSlowStartTriggers(t *testing.T) {
	five, zero := 5*time.Second, time.Duration(0)
	type step func(t *testing.T, b *Balancer, clk *testClock)
	flags := func(change string) step {
		return func(t *testing.T, b *Balancer, _ *testClock) { setFlags(t, b, "b", change) }
	}
	connectFail := func(t *testing.T, b *Balancer, _ *testClock) {
		memberByLabel(t, b, "b").ConnectFailed()
	}
	retryLater := func(t *testing.T, b *Balancer, clk *testClock) {
		clk.t = clk.t.Add(61 * time.Second)
		pickN(t, b, 2, nil) // the chooser examines b and lifts E
	}
	hc := func(pass bool) step {
		return func(t *testing.T, b *Balancer, clk *testClock) { memberByLabel(t, b, "b").HCResult(pass, clk.t) }
	}
	cases := []struct {
		name        string
		balancerSS  time.Duration
		memberSS    *time.Duration
		down, up    step
		wantWindow  time.Duration
		wantRamping bool
	}{
		{"out of D", 10 * time.Second, nil, flags("+D"), flags("-D"), 10 * time.Second, true},
		{"out of S", 10 * time.Second, nil, flags("+S"), flags("-S"), 10 * time.Second, true},
		{"out of C (manager)", 10 * time.Second, nil, flags("+C"), flags("-C"), 10 * time.Second, true},
		{"out of C (health check)", 10 * time.Second, nil, hc(false), hc(true), 10 * time.Second, true},
		{"out of E (retry)", 10 * time.Second, nil, connectFail, retryLater, 10 * time.Second, true},
		{"member's own window", 0, &five, flags("+D"), flags("-D"), 5 * time.Second, true},
		{"member turns it off", 10 * time.Second, &zero, flags("+D"), flags("-D"), 0, false},
		{"not configured", 0, nil, flags("+D"), flags("-D"), 0, false},
		{"out of N is no comeback", 10 * time.Second, nil, flags("+N"), flags("-N"), 10 * time.Second, false},
		{"D while N stays", 10 * time.Second, nil, flags("+N+D"), flags("-D"), 10 * time.Second, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &testClock{t: testEpoch}
			b := newTestBalancer(t, Config{ForceRecovery: true, SlowStart: c.balancerSS, Members: []MemberConfig{
				{URL: "http://a"}, {URL: "http://b", LoadFactor: 300, SlowStart: c.memberSS,
					HealthCheck: HealthCheck{Method: "GET", Interval: time.Second}}}}, clk)
			if s := stateOf(t, b, "b"); s.EffectiveLoadFactor != 300 || !s.SlowStartEnds.IsZero() {
				t.Fatalf("at start: %+v, want no ramp", s)
			}
			c.down(t, b, clk)
			c.up(t, b, clk)
			upAt := clk.t
			s := stateOf(t, b, "b")
			if s.SlowStart != c.wantWindow {
				t.Errorf("window %v, want %v", s.SlowStart, c.wantWindow)
			}
			if !c.wantRamping {
				if s.EffectiveLoadFactor != 300 || !s.SlowStartEnds.IsZero() {
					t.Fatalf("after %s: effective %d, ends %v; want 300 and no ramp", c.name, s.EffectiveLoadFactor, s.SlowStartEnds)
				}
				return
			}
			if !s.Status.Usable() || s.EffectiveLoadFactor != 1 || !s.SlowStartEnds.Equal(upAt.Add(c.wantWindow)) {
				t.Fatalf("just back: %s effective %d ends %v; want usable, 1, %v", s.Status, s.EffectiveLoadFactor, s.SlowStartEnds, upAt.Add(c.wantWindow))
			}
			clk.t = upAt.Add(c.wantWindow / 2)
			if got := stateOf(t, b, "b").EffectiveLoadFactor; got != 150 {
				t.Errorf("half way: effective %d, want 150", got)
			}
			clk.t = upAt.Add(c.wantWindow)
			pickN(t, b, 1, nil)
			if s := stateOf(t, b, "b"); s.EffectiveLoadFactor != 300 || !s.SlowStartEnds.IsZero() {
				t.Errorf("after the window: effective %d, ends %v; want 300, no ramp", s.EffectiveLoadFactor, s.SlowStartEnds)
			}
		})
	}
}

// TestSlowStartRunTimeMembers: a member added at run time ramps from the
// moment it is usable: at once if added enabled, when enabled otherwise; a
// member restored from saved state does not.
func TestSlowStartRunTimeMembers(t *testing.T) {
	clk := &testClock{t: testEpoch}
	b := newTestBalancer(t, Config{ForceRecovery: true, Growth: 3, SlowStart: 20 * time.Second,
		Members: []MemberConfig{{URL: "http://a"}}}, clk)
	if _, err := b.Apply(Edit{Add: []MemberConfig{{URL: "http://c"}}}, ReasonAPI); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, b, "c"); s.EffectiveLoadFactor != 1 || !s.SlowStartEnds.Equal(testEpoch.Add(20*time.Second)) {
		t.Fatalf("added enabled: effective %d ends %v", s.EffectiveLoadFactor, s.SlowStartEnds)
	}
	if _, err := b.Apply(Edit{Add: []MemberConfig{{URL: "http://d", Status: Disabled}}}, ReasonManager); err != nil {
		t.Fatal(err)
	}
	clk.t = testEpoch.Add(5 * time.Second)
	if s := stateOf(t, b, "d"); s.EffectiveLoadFactor != 100 || !s.SlowStartEnds.IsZero() {
		t.Fatalf("added disabled: effective %d ends %v, want no ramp yet", s.EffectiveLoadFactor, s.SlowStartEnds)
	}
	setFlags(t, b, "d", "-D")
	if s := stateOf(t, b, "d"); s.EffectiveLoadFactor != 1 || !s.SlowStartEnds.Equal(clk.t.Add(20*time.Second)) {
		t.Fatalf("enabled: effective %d ends %v", s.EffectiveLoadFactor, s.SlowStartEnds)
	}
	if _, err := b.Apply(Edit{Add: []MemberConfig{{URL: "http://e"}}}, ReasonRestore); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, b, "e"); s.EffectiveLoadFactor != 100 || !s.SlowStartEnds.IsZero() {
		t.Fatalf("restored: effective %d ends %v, want no ramp", s.EffectiveLoadFactor, s.SlowStartEnds)
	}
}

// TestSlowStartAbortedByError: a ramping member that goes into error stops
// ramping, and ramps again from the start when it comes back.
func TestSlowStartAbortedByError(t *testing.T) {
	b, clk := rampBalancer(t, "byrequests")
	setFlags(t, b, "b", "+D")
	setFlags(t, b, "b", "-D")
	clk.t = clk.t.Add(4 * time.Second)
	if got := stateOf(t, b, "b").EffectiveLoadFactor; got != 40 {
		t.Fatalf("4s in: %d, want 40", got)
	}
	memberByLabel(t, b, "b").ConnectFailed()
	if s := stateOf(t, b, "b"); !s.SlowStartEnds.IsZero() {
		t.Fatalf("in error, still ramping until %v", s.SlowStartEnds)
	}
	clk.t = clk.t.Add(61 * time.Second)
	pickN(t, b, 2, nil) // retry lifts E
	if s := stateOf(t, b, "b"); s.EffectiveLoadFactor != 1 || !s.SlowStartEnds.Equal(clk.t.Add(10*time.Second)) {
		t.Fatalf("back from error: effective %d ends %v", s.EffectiveLoadFactor, s.SlowStartEnds)
	}
}

// countingClock counts its calls.
type countingClock struct {
	t     time.Time
	calls int
}

func (c *countingClock) Now() time.Time { c.calls++; return c.t }

// TestSlowStartClockOnlyWhileRamping: with slow start configured, selections
// read no clock while no member ramps; during a ramp one read per selection;
// none again once the ramp is over.
func TestSlowStartClockOnlyWhileRamping(t *testing.T) {
	for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
		clk := &countingClock{t: testEpoch}
		b := newTestBalancer(t, Config{LBMethod: method, ForceRecovery: true, SlowStart: 10 * time.Second,
			Members: []MemberConfig{{URL: "http://a"}, {URL: "http://b"}}}, nil)
		b.Now = clk.Now
		pickN(t, b, 50, nil)
		if clk.calls != 0 {
			t.Fatalf("%s: %d clock reads in 50 selections with nothing ramping", method, clk.calls)
		}
		setFlags(t, b, "b", "+D")
		setFlags(t, b, "b", "-D")
		before := clk.calls
		pickN(t, b, 50, nil)
		if got := clk.calls - before; got != 50 {
			t.Fatalf("%s: %d clock reads in 50 selections during a ramp, want 50", method, got)
		}
		clk.t = clk.t.Add(10 * time.Second)
		pickN(t, b, 1, nil) // ends the ramp
		before = clk.calls
		pickN(t, b, 50, nil)
		if got := clk.calls - before; got != 0 {
			t.Fatalf("%s: %d clock reads in 50 selections after the ramp", method, got)
		}
	}
}

// TestSlowStartRemovedWhileRamping: a member removed (or dropped by a
// reload) while it ramps no longer keeps the balancer in slow-start mode:
// selections read no clock.
func TestSlowStartRemovedWhileRamping(t *testing.T) {
	clk := &countingClock{t: testEpoch}
	cfg := Config{Name: "test", ForceRecovery: true, Growth: 1, SlowStart: time.Hour,
		Members: []MemberConfig{{URL: "http://a"}, {URL: "http://b"}}}
	b := newTestBalancer(t, cfg, nil)
	b.Now = clk.Now
	if _, err := b.Apply(Edit{Add: []MemberConfig{{URL: "http://c"}}}, ReasonAPI); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(Edit{Remove: []string{"http://c"}}, ReasonAPI); err != nil {
		t.Fatal(err)
	}
	before := clk.calls
	pickN(t, b, 20, nil)
	if got := clk.calls - before; got != 0 {
		t.Fatalf("%d clock reads in 20 selections after the ramping member was removed", got)
	}
	setFlags(t, b, "b", "+D")
	setFlags(t, b, "b", "-D")
	cfg.Members[1].Route = "changed" // a reload replaces b
	if err := b.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	before = clk.calls
	pickN(t, b, 20, nil)
	if got := clk.calls - before; got != 0 {
		t.Fatalf("%d clock reads in 20 selections after a reload replaced the ramping member", got)
	}
}

// TestSlowStartNoAllocation: a selection during a ramp allocates nothing.
func TestSlowStartNoAllocation(t *testing.T) {
	for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
		b, clk := rampBalancer(t, method)
		setFlags(t, b, "b", "+D")
		setFlags(t, b, "b", "-D")
		clk.t = clk.t.Add(3 * time.Second)
		allocs := testing.AllocsPerRun(1000, func() {
			p, err := b.Pick(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Member.AddTraffic(100, 100)
			p.Member.Release()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per selection during a ramp", method, allocs)
		}
		if s := stateOf(t, b, "b"); s.SlowStartEnds.IsZero() {
			t.Fatalf("%s: not ramping any more", method)
		}
	}
}

// TestSlowStartSticky: sticky requests still reach a ramping member, and
// they count towards its share as httpd's "update on sticky" counts them
// (every usable member gains its weight, the sticky member loses the
// total): with one request in ten sticky for b, b serves weight/(100+weight)
// of all the requests.
func TestSlowStartSticky(t *testing.T) {
	clk := &testClock{t: testEpoch}
	b := newTestBalancer(t, Config{ForceRecovery: true, SlowStart: 10 * time.Second,
		StickySession: "ROUTEID", StickyPath: "ROUTEID", StickySeparator: '.',
		Members: []MemberConfig{{URL: "http://a", Route: "ra"}, {URL: "http://b", Route: "rb"}}}, clk)
	setFlags(t, b, "b", "+D")
	setFlags(t, b, "b", "-D")
	clk.t = clk.t.Add(2 * time.Second) // weight 20
	sticky := &Request{URL: "balancer://test/", Cookie: "ROUTEID=x.rb"}
	gotB := 0
	for i := 0; i < 1200; i++ {
		req := (*Request)(nil)
		if i%10 == 0 {
			req = sticky
		}
		got := pickN(t, b, 1, req)[0]
		if req != nil && got != "b" {
			t.Fatalf("sticky request for rb went to %s", got)
		}
		if got == "b" {
			gotB++
		}
	}
	if want := 1200.0 * 20 / 120; math.Abs(float64(gotB)-want) > 3 {
		t.Fatalf("b served %d of 1200, want %.0f", gotB, want)
	}
}

// TestRampWeight: the ramp at its edges.
func TestRampWeight(t *testing.T) {
	w := int64(10 * time.Second)
	for _, c := range []struct {
		lf      int
		elapsed int64
		want    int
	}{
		{100, 0, 1}, {100, -5, 1}, {100, w / 1000, 1}, {100, w / 10, 10}, {100, w / 2, 50},
		{10000, w / 2, 5000}, {10000, w - 1, 9999}, {250, w, 250}, {250, 2 * w, 250},
	} {
		if got := rampWeight(c.lf, c.elapsed, w); got != c.want {
			t.Errorf("rampWeight(%d, %d) = %d, want %d", c.lf, c.elapsed, got, c.want)
		}
	}
	// The longest window times the largest lbfactor stays within int64.
	if got := rampWeight(MaxLoadFactor*100, int64(MaxSlowStart)-1, int64(MaxSlowStart)); got != MaxLoadFactor*100-1 {
		t.Errorf("at the longest window: %d", got)
	}
	if err := CheckSlowStart(MaxSlowStart + 1); err == nil {
		t.Error("a window over 24h accepted")
	}
	if err := CheckSlowStart(-time.Second); err == nil || err.Error() != fmt.Sprintf("slowstart must be %s, not -1s", rules["slowstart"]) {
		t.Errorf("negative window: %v", err)
	}
}

// BenchmarkPickRamping is BenchmarkPick/flat while one member ramps up
// (slow start): each selection reads the clock and brings the ramp up to
// date.
//
//	go test -run '^$' -bench PickRamping -benchmem ./balancer/
func BenchmarkPickRamping(b *testing.B) {
	ctx := context.Background()
	for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
		for _, n := range []int{8, 1024} {
			b.Run(fmt.Sprintf("%s/n=%d", method, n), func(b *testing.B) {
				cfg := Config{Name: "bench", LBMethod: method, ForceRecovery: true, SlowStart: time.Hour, Members: benchLayout("flat", n)}
				bal, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				ms := bal.Members()
				for i, m := range ms {
					m.AddTraffic(int64(i)*1_000_003+12_345, int64(i)*7_000_001+999_999)
				}
				name := ms[n/2].Name()
				for _, change := range []Status{Disabled, 0} {
					e := MemberEdit{Name: name, Set: change, Clear: Disabled &^ change}
					if _, err := bal.Apply(Edit{Members: []MemberEdit{e}}, ReasonAPI); err != nil {
						b.Fatal(err)
					}
				}
				if ms[n/2].State().SlowStartEnds.IsZero() {
					b.Fatal("not ramping")
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					p, err := bal.Pick(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					p.Member.Release()
				}
			})
		}
	}
}
