package balancer

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// Tests of the manager's engine side (manage.go). Expected values come from
// spec/apache-balancer.md §7.3 and §5.1 (httpd 2.4's balancer-manager).

func mgBalancer(t *testing.T, cfg Config) *Balancer {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "mg"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func mgMembers(urls ...string) []MemberConfig {
	out := make([]MemberConfig, len(urls))
	for i, u := range urls {
		out[i] = MemberConfig{URL: u}
	}
	return out
}

func TestManageFindMemberLongestPrefix(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers(
		"http://127.0.0.1:9002", "http://127.0.0.1:9003/app", "http://127.0.0.1:9003/app/v2", "http://h")})
	cases := map[string]string{
		"http://127.0.0.1:9002":         "http://127.0.0.1:9002",
		"HTTP://127.0.0.1:9002":         "http://127.0.0.1:9002",
		"http://127.0.0.1:9002/foo/bar": "http://127.0.0.1:9002",
		"http://127.0.0.1:90021":        "", // the match must cover scheme://host:port
		"http://127.0.0.1:9003/app/x":   "http://127.0.0.1:9003/app",
		"http://127.0.0.1:9003/app/v2/": "http://127.0.0.1:9003/app/v2",
		"http://127.0.0.1:9003":         "",
		"HTTP://H/x":                    "http://h",
		"http://h:80":                   "", // names drop the default port; the URL is not normalized
		"h":                             "",
		"http://":                       "",
	}
	for in, want := range cases {
		got := ""
		if m := b.FindMember(in); m != nil {
			got = m.Name()
		}
		if got != want {
			t.Errorf("FindMember(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestManageLoadFactorRecalc(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	a, bb := b.FindMember("http://a"), b.FindMember("http://b")
	if err := a.SetLoadFactor(250); err != nil {
		t.Fatal(err)
	}
	// recalc_factors: every member's lbstatus := its lbfactor.
	if s := stateOf(t, b, "a"); s.LoadFactor != 250 || s.LBStatus != 250 {
		t.Errorf("a: lf %d lbstatus %d", s.LoadFactor, s.LBStatus)
	}
	if s := stateOf(t, b, "b"); s.LBStatus != 100 {
		t.Errorf("b: lbstatus %d", s.LBStatus)
	}
	for _, lf := range []int{0, 99, 10001, -5} {
		if err := bb.SetLoadFactor(lf); err == nil {
			t.Errorf("SetLoadFactor(%d) accepted", lf)
		}
	}
	// A one-member balancer is forced to 1.00.
	one := mgBalancer(t, Config{Members: mgMembers("http://only")})
	m := one.FindMember("http://only")
	if err := m.SetLoadFactor(500); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, one, "only"); s.LoadFactor != 100 || s.LBStatus != 100 {
		t.Errorf("single member: lf %d lbstatus %d, want 100 100", s.LoadFactor, s.LBStatus)
	}
}

func TestManageFormWorkerFields(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	a := b.FindMember("http://a")
	apply := func(p map[string]string) {
		t.Helper()
		if _, err := b.ApplyManagerForm(a, p); err != nil {
			t.Fatal(err)
		}
	}
	// w_lf: int(atof(v)*100) in 100..10000, else ignored.
	for _, c := range []struct {
		v    string
		want int
	}{{"2.5", 250}, {"0.5", 250}, {"abc", 250}, {"100.001", 10000}, {"100.01", 10000}, {"101", 10000},
		{" 1.5xyz", 150}, {"2.3", 229}, {"1e1", 1000}, {"-3", 1000}} {
		apply(map[string]string{"w_lf": c.v})
		if got := stateOf(t, b, "a").LoadFactor; got != c.want {
			t.Errorf("w_lf=%q: lbfactor %d, want %d", c.v, got, c.want)
		}
	}
	// w_ls: atoi, 0..99.
	for _, c := range []struct {
		v    string
		want int
	}{{"3", 3}, {"100", 3}, {"-1", 3}, {"99", 99}, {"abc", 0}, {"7x", 7}} {
		apply(map[string]string{"w_ls": c.v})
		if got := stateOf(t, b, "a").LBSet; got != c.want {
			t.Errorf("w_ls=%q: lbset %d, want %d", c.v, got, c.want)
		}
	}
	// w_wr / w_rr: empty or >= 64 characters clears.
	long := string(make([]byte, 64))
	for _, c := range []struct{ v, want string }{{"r1", "r1"}, {"", ""}, {"r2", "r2"}, {long, ""}, {long[:63], long[:63]}} {
		apply(map[string]string{"w_wr": c.v, "w_rr": c.v})
		s := stateOf(t, b, "a")
		if s.Route != c.want || s.Redirect != c.want {
			t.Errorf("w_wr/w_rr=%q (len %d): route %q redirect %q", c.v, len(c.v), s.Route, s.Redirect)
		}
	}
	// Flags: atoi != 0 sets, else clears; there is no w_status_E.
	apply(map[string]string{"w_status_D": "1", "w_status_H": "5", "w_status_I": "x", "w_status_E": "1"})
	if got := stateOf(t, b, "a").Status; got != Initialized|Disabled|HotStandby {
		t.Errorf("flags %s", got.Letters())
	}
	apply(map[string]string{"w_status_D": "0", "w_status_H": "no", "w_status_N": "1", "w_status_R": "1",
		"w_status_S": "1", "w_status_C": "1"})
	if got := stateOf(t, b, "a").Status; got != Initialized|Drain|HotSpare|Stopped|HCFail {
		t.Errorf("flags %s", got.Letters())
	}
	// E is neither set nor cleared by the manager.
	a.ConnectFailed()
	apply(map[string]string{"w_status_S": "0", "w_status_C": "0", "w_status_N": "0", "w_status_R": "0", "w_status_E": "0"})
	if got := stateOf(t, b, "a").Status; got != Initialized|InError {
		t.Errorf("flags %s, want OE", got.Letters())
	}
}

func TestManageFormHealthCheckFields(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a")})
	a := b.FindMember("http://a")
	apply := func(p map[string]string) HealthCheck {
		t.Helper()
		if _, err := b.ApplyManagerForm(a, p); err != nil {
			t.Fatal(err)
		}
		return a.HealthCheck()
	}
	hc := apply(map[string]string{"w_hm": "get", "w_hi": "500", "w_hp": "3", "w_hf": "2", "w_hu": "/health",
		"w_he": "%{REQUEST_STATUS} -lt 400"})
	want := HealthCheck{Method: "GET", Interval: 500 * time.Millisecond, Passes: 3, Fails: 2, URI: "/health",
		Expr: "%{REQUEST_STATUS} -lt 400"}
	if hc != want {
		t.Fatalf("hc %+v, want %+v", hc, want)
	}
	// Ignored: unknown method, interval below 100ms or unparsable, passes/fails < 1.
	hc = apply(map[string]string{"w_hm": "PROVIDER", "w_hi": "99", "w_hp": "0", "w_hf": "abc"})
	if hc != want {
		t.Errorf("invalid values changed hc: %+v", hc)
	}
	hc = apply(map[string]string{"w_hi": "bogus"})
	if hc != want {
		t.Errorf("w_hi=bogus changed hc: %+v", hc)
	}
	// Units: s, mi, h, ms.
	for v, d := range map[string]time.Duration{"2s": 2 * time.Second, "1mi": time.Minute, "1h": time.Hour, "250ms": 250 * time.Millisecond} {
		if got := apply(map[string]string{"w_hi": v}).Interval; got != d {
			t.Errorf("w_hi=%s: %v, want %v", v, got, d)
		}
	}
	// w_hu empty clears; an invalid condition clears hcexpr.
	hc = apply(map[string]string{"w_hu": "", "w_he": "%{REQUEST_STATUS} ~~~"})
	if hc.URI != "" || hc.Expr != "" {
		t.Errorf("hc %+v", hc)
	}
	// A method without a response drops the condition.
	apply(map[string]string{"w_he": "%{REQUEST_STATUS} -lt 400"})
	hc = apply(map[string]string{"w_hm": "TCP"})
	if hc.Method != "TCP" || hc.Expr != "" {
		t.Errorf("after TCP: %+v", hc)
	}
	if hc = apply(map[string]string{"w_hm": "none"}); hc.Method != "" {
		t.Errorf("NONE: %+v", hc)
	}
}

func TestManageFormBalancerFields(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	apply := func(p map[string]string) View {
		t.Helper()
		if _, err := b.ApplyManagerForm(nil, p); err != nil {
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
	v := apply(map[string]string{"b_lbm": "bybusyness"})
	if v.LBMethod != "bybusyness" {
		t.Fatalf("lbmethod %s", v.LBMethod)
	}
	for _, m := range v.Members {
		if m.LBStatus != 0 {
			t.Errorf("%s lbstatus %d after switch", m.Name, m.LBStatus)
		}
	}
	if v = apply(map[string]string{"b_lbm": "heartbeat"}); v.LBMethod != "bybusyness" {
		t.Errorf("unknown lbmethod switched to %s", v.LBMethod)
	}
	// b_tmo: atoi 0..7200.
	for _, c := range []struct {
		v    string
		want time.Duration
	}{{"30", 30 * time.Second}, {"7201", 30 * time.Second}, {"-1", 30 * time.Second}, {"7200", 7200 * time.Second}, {"abc", 0}} {
		if v = apply(map[string]string{"b_tmo": c.v}); v.Timeout != c.want {
			t.Errorf("b_tmo=%q: %v, want %v", c.v, v.Timeout, c.want)
		}
	}
	// b_max: 0..99; in force here (two members).
	if v = apply(map[string]string{"b_max": "5"}); v.MaxAttempts != 5 || b.MaxAttempts() != 5 {
		t.Errorf("b_max=5: shown %d, in force %d", v.MaxAttempts, b.MaxAttempts())
	}
	if v = apply(map[string]string{"b_max": "100"}); v.MaxAttempts != 5 {
		t.Errorf("b_max=100: %d", v.MaxAttempts)
	}
	// b_sforce.
	if v = apply(map[string]string{"b_sforce": "1"}); !v.NoFailover {
		t.Error("b_sforce=1")
	}
	if v = apply(map[string]string{"b_sforce": "x"}); v.NoFailover {
		t.Error("b_sforce=x")
	}
	// b_ss: '|' split without trimming; '-' clears; empty or >= 63 ignored.
	if v = apply(map[string]string{"b_ss": "A | b"}); v.StickySession != "A " || v.StickyPath != " b" {
		t.Errorf("b_ss split: %q %q", v.StickySession, v.StickyPath)
	}
	if v = apply(map[string]string{"b_ss": "JSESSIONID"}); v.StickySession != "JSESSIONID" || v.StickyPath != "JSESSIONID" {
		t.Errorf("b_ss: %q %q", v.StickySession, v.StickyPath)
	}
	if v = apply(map[string]string{"b_ss": ""}); v.StickySession != "JSESSIONID" {
		t.Errorf("empty b_ss changed it: %q", v.StickySession)
	}
	long := string(make([]byte, 63))
	if v = apply(map[string]string{"b_ss": long}); v.StickySession != "JSESSIONID" {
		t.Errorf("63-char b_ss changed it")
	}
	if v = apply(map[string]string{"b_ss": "-"}); v.StickySession != "" || v.StickyPath != "" {
		t.Errorf("b_ss=-: %q %q", v.StickySession, v.StickyPath)
	}
	if b.Sticky() {
		t.Error("sticky still on")
	}
}

func TestManageMaxAttemptsNotMarkedSet(t *testing.T) {
	// One member, no maxattempts: b_max is shown but not in force (httpd 2.4).
	b := mgBalancer(t, Config{Members: mgMembers("http://a")})
	if _, err := b.ApplyManagerForm(nil, map[string]string{"b_max": "3"}); err != nil {
		t.Fatal(err)
	}
	if v := b.View(); v.MaxAttempts != 3 || v.MaxAttemptsSet {
		t.Errorf("shown %d set %v", v.MaxAttempts, v.MaxAttemptsSet)
	}
	if b.MaxAttempts() != 0 {
		t.Errorf("in force %d, want 0", b.MaxAttempts())
	}
	// Configured: in force.
	b2 := mgBalancer(t, Config{Members: mgMembers("http://a"), MaxAttempts: 1, MaxAttemptsSet: true})
	_ = b2.SetMaxAttempts(4)
	if b2.MaxAttempts() != 4 {
		t.Errorf("configured: in force %d", b2.MaxAttempts())
	}
}

func TestManageAddRemoveMember(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a:8080"), Growth: 2})
	m, err := b.AddMember("HTTP://New:80/")
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	if s.Name != "http://new/" || s.Status != Initialized|Disabled || !s.Dynamic || s.LoadFactor != 100 {
		t.Errorf("new member %+v (%s)", s, s.Status.Letters())
	}
	// Duplicates by the prefix rule, and by name.
	for _, u := range []string{"http://a:8080", "http://A:8080/sub", "http://new/"} {
		if _, err := b.AddMember(u); !errors.Is(err, ErrMemberExists) {
			t.Errorf("AddMember(%s): %v, want ErrMemberExists", u, err)
		}
	}
	for _, u := range []string{"ajp://[0:0:0:0:0:0:0:1]:8080", "not a url", "http://"} {
		if _, err := b.AddMember(u); !errors.Is(err, ErrInvalidMember) {
			t.Errorf("AddMember(%q): %v, want ErrInvalidMember", u, err)
		}
	}
	if _, err := b.AddMember("http://c"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMember("http://d"); !errors.Is(err, ErrNoFreeSlot) {
		t.Errorf("full: %v", err)
	}
	if v := b.View(); v.MaxMembers != 3 || v.FreeSlots() != 0 {
		t.Errorf("max %d free %d", v.MaxMembers, v.FreeSlots())
	}
	// Configured members cannot be removed; added ones can.
	if err := b.RemoveMember(b.FindMember("http://a:8080")); !errors.Is(err, ErrNotDynamic) {
		t.Errorf("remove configured: %v", err)
	}
	if err := b.RemoveMember(m); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveMember(m); !errors.Is(err, ErrNotMember) {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := b.AddMember("http://d"); err != nil {
		t.Errorf("slot not freed: %v", err)
	}
	// A disabled new member takes no requests until enabled.
	d := b.FindMember("http://d")
	a := b.FindMember("http://a:8080")
	_ = a.SetFlag('D', true, ReasonAPI)
	if _, err := b.Pick(t.Context(), nil); !errors.Is(err, ErrNoMember) {
		t.Errorf("pick with all disabled: %v", err)
	}
	_ = d.SetFlag('d', false, ReasonAPI)
	p, err := b.Pick(t.Context(), nil)
	if err != nil || p.Member != d {
		t.Errorf("pick: %v %v", p.Member, err)
	}
}

func TestManageFormAddMember(t *testing.T) {
	b := mgBalancer(t, Config{Name: "dynproxy", Growth: 10})
	// b_wyes must be exactly "1".
	for _, yes := range []string{"", "on", "11", "true"} {
		res, err := b.ApplyManagerForm(nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": yes})
		if err != nil || res.Added != nil {
			t.Errorf("b_wyes=%q: %v %v", yes, res.Added, err)
		}
	}
	res, err := b.ApplyManagerForm(nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": "1"})
	if err != nil || res.Added == nil || res.Added.Name() != "http://x:1" {
		t.Fatalf("add: %v %v", res.Added, err)
	}
	if _, err := b.ApplyManagerForm(nil, map[string]string{"b_nwrkr": "http://x:1", "b_wyes": "1"}); !errors.Is(err, ErrMemberExists) {
		t.Errorf("duplicate: %v", err)
	}
	// Enable it through the worker form, as httpd-tests does.
	if _, err := b.ApplyManagerForm(b.FindMember("http://x:1"), map[string]string{"w_status_D": "0"}); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(t, b, "x:1").Status; st != Initialized {
		t.Errorf("status %s", st.Letters())
	}
}

func TestManageStatusString(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a")})
	m := b.FindMember("http://a")
	if err := m.ApplyStatus("+D-N+H", ReasonAPI); err != nil {
		t.Fatal(err)
	}
	if st := m.State().Status; st != Initialized|Disabled|HotStandby {
		t.Errorf("%s", st.Letters())
	}
	for _, bad := range []string{"E", "+O", "-U", "D-", "X"} {
		if err := m.ApplyStatus(bad, ReasonAPI); err == nil {
			t.Errorf("ApplyStatus(%q) accepted", bad)
		}
	}
	if st := m.State().Status; st != Initialized|Disabled|HotStandby {
		t.Errorf("a rejected change changed flags: %s", st.Letters())
	}
	if err := m.SetFlag('E', true, ReasonAPI); err == nil {
		t.Error("SetFlag(E) accepted")
	}
}

func TestManageStatusChangeHook(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	var got []string
	b.SetOnStatusChange(func(m *Member, old, new Status, reason string) {
		got = append(got, m.Name()+" "+old.Letters()+">"+new.Letters()+" "+reason)
	})
	_, _ = b.ApplyManagerForm(b.FindMember("http://a"), map[string]string{"w_status_D": "1"})
	_ = b.FindMember("http://b").SetFlag('N', true, ReasonAPI)
	want := []string{"http://a O>OD manager", "http://b O>ON api"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("hook calls %q, want %q", got, want)
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

func TestManageSnapshotRestore(t *testing.T) {
	cfg := Config{Name: "p", Growth: 2, Members: []MemberConfig{
		{URL: "http://a"}, {URL: "http://b", Route: "rb"}, {URL: "http://c"}}}
	b := mgBalancer(t, cfg)
	_, _ = b.ApplyManagerForm(b.FindMember("http://a"), map[string]string{"w_lf": "3", "w_status_D": "1", "w_wr": "ra"})
	_, _ = b.ApplyManagerForm(b.FindMember("http://b"), map[string]string{"w_status_H": "1"})
	_, _ = b.ApplyManagerForm(nil, map[string]string{"b_lbm": "bytraffic", "b_tmo": "9", "b_ss": "S|p"})
	added, err := b.AddMember("http://dyn:81")
	if err != nil {
		t.Fatal(err)
	}
	_ = added.SetFlag('D', false, ReasonAPI)
	_ = added.SetLBSet(2)
	nonce := b.Nonce()

	// Round trip through JSON, as persistence stores it.
	data, err := json.Marshal(b.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}

	// Restart with member b's configuration changed: config wins for b.
	cfg2 := cfg
	cfg2.Members = []MemberConfig{{URL: "http://a"}, {URL: "http://b", Route: "rb2"}, {URL: "http://c"}}
	r := mgBalancer(t, cfg2)
	rep := r.Restore(snap)
	if !rep.Params || len(rep.Restored) != 2 || len(rep.Added) != 1 || len(rep.Skipped) != 1 {
		t.Errorf("report %+v", rep)
	}
	v := r.View()
	if v.LBMethod != "bytraffic" || v.Timeout != 9*time.Second || v.StickySession != "S" || v.StickyPath != "p" || v.Nonce != nonce {
		t.Errorf("balancer params not restored: %+v", v)
	}
	if s := stateOf(t, r, "a"); s.LoadFactor != 300 || s.Status != Initialized|Disabled || s.Route != "ra" {
		t.Errorf("a: %+v %s", s, s.Status.Letters())
	}
	if s := stateOf(t, r, "b"); s.Status != Initialized || s.Route != "rb2" {
		t.Errorf("b (config changed) got saved state: %+v %s", s, s.Status.Letters())
	}
	if s := stateOf(t, r, "dyn:81"); !s.Dynamic || s.Status != Initialized || s.LBSet != 2 {
		t.Errorf("dyn: %+v %s", s, s.Status.Letters())
	}

	// Balancer parameters changed in the configuration: config wins for them.
	cfg3 := cfg
	cfg3.LBMethod = "bybusyness"
	r3 := mgBalancer(t, cfg3)
	if rep := r3.Restore(snap); rep.Params {
		t.Error("params restored despite a config change")
	}
	if v := r3.View(); v.LBMethod != "bybusyness" || v.Timeout != 0 {
		t.Errorf("params: %s %v", v.LBMethod, v.Timeout)
	}
	// A configured nonce wins over the saved one.
	cfg4 := cfg
	cfg4.Nonce, cfg4.NonceSet = "fixed", true
	r4 := mgBalancer(t, cfg4)
	r4.Restore(snap)
	if r4.Nonce() != "fixed" {
		t.Errorf("nonce %q", r4.Nonce())
	}
}
