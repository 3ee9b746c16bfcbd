package manager

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Tests of httpd's form semantics (form.go) and C numerics (numeric.go).
// Expected values come from docs/behaviour.md §7.3 (httpd 2.4's
// balancer_process_balancer_worker).

func newBalancer(t *testing.T, cfg balancer.Config) *balancer.Balancer {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "mg"
	}
	b, err := balancer.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func members(urls ...string) []balancer.MemberConfig {
	out := make([]balancer.MemberConfig, len(urls))
	for i, u := range urls {
		out[i] = balancer.MemberConfig{URL: u}
	}
	return out
}

func state(t *testing.T, b *balancer.Balancer, name string) balancer.MemberState {
	t.Helper()
	for _, s := range b.States() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no member %s", name)
	return balancer.MemberState{}
}

// The manager's b_max on a balancer whose maxattempts is not in force (one
// member, none configured) is shown but not used (httpd 2.4).
func TestFormMaxAttemptsNotMarkedSet(t *testing.T) {
	b := newBalancer(t, balancer.Config{Members: members("http://a")})
	if err := apply(b, nil, map[string]string{"b_max": "3"}, "test", zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if v := b.View(); v.MaxAttempts != 3 || v.MaxAttemptsSet {
		t.Errorf("shown %d set %v", v.MaxAttempts, v.MaxAttemptsSet)
	}
	if b.MaxAttempts() != 0 {
		t.Errorf("in force %d, want 0", b.MaxAttempts())
	}
}

func TestManageFormWorkerFields(t *testing.T) {
	b := newBalancer(t, balancer.Config{Members: members("http://a", "http://b")})
	a := b.FindMember("http://a")
	form := func(p map[string]string) {
		t.Helper()
		if err := apply(b, a, p, "test", zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	}
	// w_lf: int(atof(v)*100) in 100..10000, else ignored.
	for _, c := range []struct {
		v    string
		want int
	}{{"2.5", 250}, {"0.5", 250}, {"abc", 250}, {"100.001", 10000}, {"100.01", 10000}, {"101", 10000},
		{" 1.5xyz", 150}, {"2.3", 229}, {"1e1", 1000}, {"-3", 1000}} {
		form(map[string]string{"w_lf": c.v})
		if got := state(t, b, "http://a").LoadFactor; got != c.want {
			t.Errorf("w_lf=%q: lbfactor %d, want %d", c.v, got, c.want)
		}
	}
	// w_ls: atoi, 0..99.
	for _, c := range []struct {
		v    string
		want int
	}{{"3", 3}, {"100", 3}, {"-1", 3}, {"99", 99}, {"abc", 0}, {"7x", 7}} {
		form(map[string]string{"w_ls": c.v})
		if got := state(t, b, "http://a").LBSet; got != c.want {
			t.Errorf("w_ls=%q: lbset %d, want %d", c.v, got, c.want)
		}
	}
	// w_wr / w_rr: empty or >= 64 characters clears.
	long := string(make([]byte, 64))
	for _, c := range []struct{ v, want string }{{"r1", "r1"}, {"", ""}, {"r2", "r2"}, {long, ""}, {long[:63], long[:63]}} {
		form(map[string]string{"w_wr": c.v, "w_rr": c.v})
		s := state(t, b, "http://a")
		if s.Route != c.want || s.Redirect != c.want {
			t.Errorf("w_wr/w_rr=%q (len %d): route %q redirect %q", c.v, len(c.v), s.Route, s.Redirect)
		}
	}
	// Flags: atoi != 0 sets, else clears; there is no w_status_E.
	form(map[string]string{"w_status_D": "1", "w_status_H": "5", "w_status_I": "x", "w_status_E": "1"})
	if got := state(t, b, "http://a").Status; got != balancer.Initialized|balancer.Disabled|balancer.HotStandby {
		t.Errorf("flags %s", got.Letters())
	}
	form(map[string]string{"w_status_D": "0", "w_status_H": "no", "w_status_N": "1", "w_status_R": "1",
		"w_status_S": "1", "w_status_C": "1"})
	if got := state(t, b, "http://a").Status; got != balancer.Initialized|balancer.Drain|balancer.HotSpare|balancer.Stopped|balancer.HCFail {
		t.Errorf("flags %s", got.Letters())
	}
	// E is neither set nor cleared by the manager.
	a.ConnectFailed()
	form(map[string]string{"w_status_S": "0", "w_status_C": "0", "w_status_N": "0", "w_status_R": "0", "w_status_E": "0"})
	if got := state(t, b, "http://a").Status; got != balancer.Initialized|balancer.InError {
		t.Errorf("flags %s, want OE", got.Letters())
	}
}

func TestManageFormHealthCheckFields(t *testing.T) {
	b := newBalancer(t, balancer.Config{Members: members("http://a")})
	a := b.FindMember("http://a")
	form := func(p map[string]string) balancer.HealthCheck {
		t.Helper()
		if err := apply(b, a, p, "test", zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		return a.View().HC
	}
	hc := form(map[string]string{"w_hm": "get", "w_hi": "500", "w_hp": "3", "w_hf": "2", "w_hu": "/health",
		"w_he": "%{REQUEST_STATUS} -lt 400"})
	want := balancer.HealthCheck{Method: "GET", Interval: 500 * time.Millisecond, Passes: 3, Fails: 2, URI: "/health",
		Expr: "%{REQUEST_STATUS} -lt 400"}
	if hc != want {
		t.Fatalf("hc %+v, want %+v", hc, want)
	}
	// Ignored: unknown method, interval below 100ms or unparsable, passes/fails < 1.
	hc = form(map[string]string{"w_hm": "PROVIDER", "w_hi": "99", "w_hp": "0", "w_hf": "abc"})
	if hc != want {
		t.Errorf("invalid values changed hc: %+v", hc)
	}
	hc = form(map[string]string{"w_hi": "bogus"})
	if hc != want {
		t.Errorf("w_hi=bogus changed hc: %+v", hc)
	}
	// Units: s, mi, h, ms.
	for v, d := range map[string]time.Duration{"2s": 2 * time.Second, "1mi": time.Minute, "1h": time.Hour, "250ms": 250 * time.Millisecond} {
		if got := form(map[string]string{"w_hi": v}).Interval; got != d {
			t.Errorf("w_hi=%s: %v, want %v", v, got, d)
		}
	}
	// w_hu empty clears; an invalid condition clears hcexpr.
	hc = form(map[string]string{"w_hu": "", "w_he": "%{REQUEST_STATUS} ~~~"})
	if hc.URI != "" || hc.Expr != "" {
		t.Errorf("hc %+v", hc)
	}
	// A method without a response drops the condition.
	form(map[string]string{"w_he": "%{REQUEST_STATUS} -lt 400"})
	hc = form(map[string]string{"w_hm": "TCP"})
	if hc.Method != "TCP" || hc.Expr != "" {
		t.Errorf("after TCP: %+v", hc)
	}
	if hc = form(map[string]string{"w_hm": "none"}); hc.Method != "" {
		t.Errorf("NONE: %+v", hc)
	}
}

func TestManageFormBalancerFields(t *testing.T) {
	b := newBalancer(t, balancer.Config{Members: members("http://a", "http://b")})
	form := func(p map[string]string) balancer.View {
		t.Helper()
		if err := apply(b, nil, p, "test", zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		return b.View()
	}
	// Let some lbstatus build up, then switch lbmethod: the new method resets.
	for i := 0; i < 3; i++ {
		p, err := b.Pick(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Member.Release()
	}
	v := form(map[string]string{"b_lbm": "bybusyness"})
	if v.LBMethod != "bybusyness" {
		t.Fatalf("lbmethod %s", v.LBMethod)
	}
	for _, m := range v.Members {
		if m.LBStatus != 0 {
			t.Errorf("%s lbstatus %d after switch", m.Name, m.LBStatus)
		}
	}
	if v = form(map[string]string{"b_lbm": "heartbeat"}); v.LBMethod != "bybusyness" {
		t.Errorf("unknown lbmethod switched to %s", v.LBMethod)
	}
	// b_tmo: atoi 0..7200.
	for _, c := range []struct {
		v    string
		want time.Duration
	}{{"30", 30 * time.Second}, {"7201", 30 * time.Second}, {"-1", 30 * time.Second}, {"7200", 7200 * time.Second}, {"abc", 0}} {
		if v = form(map[string]string{"b_tmo": c.v}); v.Timeout != c.want {
			t.Errorf("b_tmo=%q: %v, want %v", c.v, v.Timeout, c.want)
		}
	}
	// b_max: 0..99; in force here (two members).
	if v = form(map[string]string{"b_max": "5"}); v.MaxAttempts != 5 || b.MaxAttempts() != 5 {
		t.Errorf("b_max=5: shown %d, in force %d", v.MaxAttempts, b.MaxAttempts())
	}
	if v = form(map[string]string{"b_max": "100"}); v.MaxAttempts != 5 {
		t.Errorf("b_max=100: %d", v.MaxAttempts)
	}
	// b_sforce.
	if v = form(map[string]string{"b_sforce": "1"}); !v.NoFailover {
		t.Error("b_sforce=1")
	}
	if v = form(map[string]string{"b_sforce": "x"}); v.NoFailover {
		t.Error("b_sforce=x")
	}
	// b_ss: '|' split without trimming; '-' clears; empty or >= 63 ignored.
	if v = form(map[string]string{"b_ss": "A | b"}); v.StickySession != "A " || v.StickyPath != " b" {
		t.Errorf("b_ss split: %q %q", v.StickySession, v.StickyPath)
	}
	if v = form(map[string]string{"b_ss": "JSESSIONID"}); v.StickySession != "JSESSIONID" || v.StickyPath != "JSESSIONID" {
		t.Errorf("b_ss: %q %q", v.StickySession, v.StickyPath)
	}
	if v = form(map[string]string{"b_ss": ""}); v.StickySession != "JSESSIONID" {
		t.Errorf("empty b_ss changed it: %q", v.StickySession)
	}
	long := string(make([]byte, 63))
	if v = form(map[string]string{"b_ss": long}); v.StickySession != "JSESSIONID" {
		t.Errorf("63-char b_ss changed it")
	}
	if v = form(map[string]string{"b_ss": "-"}); v.StickySession != "" || v.StickyPath != "" {
		t.Errorf("b_ss=-: %q %q", v.StickySession, v.StickyPath)
	}
	if b.Sticky() {
		t.Error("sticky still on")
	}
}

func TestManageFormAddMember(t *testing.T) {
	b := newBalancer(t, balancer.Config{Name: "dynproxy", Growth: 10})
	// b_wyes must be exactly "1".
	log := zap.NewNop()
	for _, yes := range []string{"", "on", "11", "true"} {
		err := apply(b, nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": yes}, "test", log)
		if err != nil || len(b.Members()) != 0 {
			t.Errorf("b_wyes=%q: %d members, %v", yes, len(b.Members()), err)
		}
	}
	if err := apply(b, nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": "1"}, "test", log); err != nil {
		t.Fatal(err)
	}
	if s := state(t, b, "http://x:1"); !s.Dynamic || s.Status != balancer.Initialized|balancer.Disabled {
		t.Fatalf("added member %+v %s, want it Disabled", s, s.Status.Letters())
	}
	if err := apply(b, nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": "1"}, "test", log); !errors.Is(err, balancer.ErrMemberExists) {
		t.Errorf("duplicate: %v", err)
	}
	// Enable it through the worker form, as httpd-tests does.
	if err := apply(b, b.FindMember("http://x:1"), map[string]string{"w_status_D": "0"}, "test", log); err != nil {
		t.Fatal(err)
	}
	if st := state(t, b, "http://x:1").Status; st != balancer.Initialized {
		t.Errorf("status %s", st.Letters())
	}
}

func TestManageCHelpers(t *testing.T) {
	atoi := map[string]int{"12": 12, " -3": -3, "+4x": 4, "x": 0, "": 0, "99999999999": 2147483647}
	for in, want := range atoi {
		if got := CAtoi(in); got != want {
			t.Errorf("CAtoi(%q) = %d, want %d", in, got, want)
		}
	}
	atof := map[string]float64{"1.5": 1.5, " 2": 2, ".5": 0.5, "1e2": 100, "1e": 1, "abc": 0, "-1.25x": -1.25, "3.": 3}
	for in, want := range atof {
		if got := CAtof(in); got != want {
			t.Errorf("CAtof(%q) = %v, want %v", in, got, want)
		}
	}
}
