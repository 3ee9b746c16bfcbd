package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Tests of run-time edits (edit.go), views and snapshots. Expected values
// come from docs/behaviour.md §7.3 and §5.1 (httpd 2.4's balancer-manager);
// the manager's form semantics are tested in package manager.

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

func ptr[T any](v T) *T { return &v }

// mustApply applies e and fails the test on error.
func mustApply(t *testing.T, b *Balancer, e Edit) Applied {
	t.Helper()
	res, err := b.Apply(e, ReasonAPI)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// setFlag sets or clears one flag of the member named name.
func setFlag(t *testing.T, b *Balancer, name string, f Status, on bool) {
	t.Helper()
	me := MemberEdit{Name: name, Clear: f}
	if on {
		me = MemberEdit{Name: name, Set: f}
	}
	mustApply(t, b, Edit{Members: []MemberEdit{me}})
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
	mustApply(t, b, Edit{Members: []MemberEdit{{Name: "http://a", LoadFactor: ptr(250)}}})
	// recalc_factors: every member's lbstatus := its lbfactor.
	if s := stateOf(t, b, "a"); s.LoadFactor != 250 || s.LBStatus != 250 {
		t.Errorf("a: lf %d lbstatus %d", s.LoadFactor, s.LBStatus)
	}
	if s := stateOf(t, b, "b"); s.LBStatus != 100 {
		t.Errorf("b: lbstatus %d", s.LBStatus)
	}
	for _, lf := range []int{0, 99, 10001, -5} {
		if _, err := b.Apply(Edit{Members: []MemberEdit{{Name: "http://b", LoadFactor: ptr(lf)}}}, ReasonAPI); err == nil {
			t.Errorf("loadfactor ×100 %d accepted", lf)
		}
	}
	// A one-member balancer is forced to 1.00.
	one := mgBalancer(t, Config{Members: mgMembers("http://only")})
	mustApply(t, one, Edit{Members: []MemberEdit{{Name: "http://only", LoadFactor: ptr(500)}}})
	if s := stateOf(t, one, "only"); s.LoadFactor != 100 || s.LBStatus != 100 {
		t.Errorf("single member: lf %d lbstatus %d, want 100 100", s.LoadFactor, s.LBStatus)
	}
}

func TestManageMaxAttemptsNotMarkedSet(t *testing.T) {
	// One member, no maxattempts: b_max is shown but not in force (httpd 2.4).
	b := mgBalancer(t, Config{Members: mgMembers("http://a")})
	mustApply(t, b, Edit{MaxAttempts: ptr(3)})
	if v := b.View(); v.MaxAttempts != 3 || v.MaxAttemptsSet {
		t.Errorf("shown %d set %v", v.MaxAttempts, v.MaxAttemptsSet)
	}
	if b.MaxAttempts() != 0 {
		t.Errorf("in force %d, want 0", b.MaxAttempts())
	}
	// Configured: in force.
	b2 := mgBalancer(t, Config{Members: mgMembers("http://a"), MaxAttempts: 1, MaxAttemptsSet: true})
	mustApply(t, b2, Edit{MaxAttempts: ptr(4)})
	if b2.MaxAttempts() != 4 {
		t.Errorf("configured: in force %d", b2.MaxAttempts())
	}
}

// addMember adds a member at run time as the manager does (Disabled).
func addMember(b *Balancer, url string) (*Member, error) {
	res, err := b.Apply(Edit{Add: []MemberConfig{{URL: url, Status: Disabled}}}, ReasonManager)
	if err != nil {
		return nil, err
	}
	return res.Added[0], nil
}

func removeMember(b *Balancer, name string) error {
	_, err := b.Apply(Edit{Remove: []string{name}}, ReasonAPI)
	return err
}

func TestManageAddRemoveMember(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a:8080"), Growth: 2})
	m, err := addMember(b, "HTTP://New:80/")
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	if s.Name != "http://new/" || s.Status != Initialized|Disabled || !s.Dynamic || s.LoadFactor != 100 {
		t.Errorf("new member %+v (%s)", s, s.Status.Letters())
	}
	// Duplicates by the prefix rule, and by name.
	for _, u := range []string{"http://a:8080", "http://A:8080/sub", "http://new/"} {
		if _, err := addMember(b, u); !errors.Is(err, ErrMemberExists) {
			t.Errorf("add %s: %v, want ErrMemberExists", u, err)
		}
	}
	for _, u := range []string{"ajp://[0:0:0:0:0:0:0:1]:8080", "not a url", "http://", "127.0.0.1:9001",
		"h2c://h:80", "ws://h", "wss://h", "h2://h", "http://h:0", "http://h:99999", "http://h:65536"} {
		if _, err := addMember(b, u); !errors.Is(err, ErrInvalidMember) {
			t.Errorf("add %q: %v, want ErrInvalidMember", u, err)
		}
	}
	if _, err := addMember(b, "http://c"); err != nil {
		t.Fatal(err)
	}
	if _, err := addMember(b, "http://d"); !errors.Is(err, ErrNoFreeSlot) {
		t.Errorf("full: %v", err)
	}
	if v := b.View(); v.MaxMembers != 3 || v.FreeSlots() != 0 {
		t.Errorf("max %d free %d", v.MaxMembers, v.FreeSlots())
	}
	// Configured members cannot be removed; added ones can.
	if err := removeMember(b, "http://a:8080"); !errors.Is(err, ErrNotDynamic) {
		t.Errorf("remove configured: %v", err)
	}
	if err := removeMember(b, m.Name()); err != nil {
		t.Fatal(err)
	}
	if err := removeMember(b, m.Name()); !errors.Is(err, ErrNotMember) {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := addMember(b, "http://d"); err != nil {
		t.Errorf("slot not freed: %v", err)
	}
	// A disabled new member takes no requests until enabled.
	d := b.FindMember("http://d")
	setFlag(t, b, "http://a:8080", Disabled, true)
	if _, err := b.Pick(t.Context(), nil); !errors.Is(err, ErrNoMember) {
		t.Errorf("pick with all disabled: %v", err)
	}
	setFlag(t, b, "http://d", Disabled, false)
	p, err := b.Pick(t.Context(), nil)
	if err != nil || p.Member != d {
		t.Errorf("pick: %v %v", p.Member, err)
	}
}

func TestManageMemberPolicy(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a"), Growth: 3})
	b.SetMemberPolicy(func(m MemberAddress) error {
		if m.Host == "forbidden" {
			return errors.New("not on the list")
		}
		return nil
	})
	if _, err := addMember(b, "http://forbidden:81"); !errors.Is(err, ErrMemberRefused) {
		t.Errorf("policy not applied: %v", err)
	}
	if _, err := addMember(b, "http://allowed:81"); err != nil {
		t.Errorf("allowed member refused: %v", err)
	}
	if n := len(b.Members()); n != 2 {
		t.Errorf("%d members, want 2", n)
	}
}

func TestGrowthAllow(t *testing.T) {
	if _, err := New(Config{Name: "ga", GrowthAllow: []string{"10.0.0.0/8", "not a host"}}); err == nil ||
		!strings.Contains(err.Error(), "growth_allow") {
		t.Errorf("bad entry: %v", err)
	}
	b := mgBalancer(t, Config{Members: mgMembers("http://a"), Growth: 3,
		GrowthAllow: []string{"10.0.0.0/8", "192.0.2.7", "App.Internal"}})
	addr := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	for _, c := range []struct {
		host string
		ips  []netip.Addr
		want bool
	}{
		{"10.1.2.3", addr("10.1.2.3"), true},
		{"192.0.2.7", addr("192.0.2.7"), true},
		{"192.0.2.8", addr("192.0.2.8"), false},
		{"app.internal", nil, true},
		{"db.internal", addr("10.9.9.9"), true},
		{"db.internal", []netip.Addr{netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("127.0.0.1")}, false},
		{"unresolved.example", nil, false},
		{"::ffff:10.0.0.1", addr("::ffff:10.0.0.1"), true},
	} {
		if got := b.GrowthAllows(c.host, c.ips); got != c.want {
			t.Errorf("GrowthAllows(%s, %v) = %v, want %v", c.host, c.ips, got, c.want)
		}
	}
	if open := mgBalancer(t, Config{Members: mgMembers("http://a")}); !open.GrowthAllows("anything", nil) {
		t.Error("no growth_allow refuses a host")
	}
}

// An edit with one invalid field changes nothing: it is checked in full
// before anything is applied.
func TestEditAllOrNothing(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b"), Growth: 1})
	before := b.Snapshot()
	bad := []Edit{
		{LBMethod: ptr("bybusyness"), Members: []MemberEdit{{Name: "http://a", LBSet: ptr(100)}}},
		{Members: []MemberEdit{{Name: "http://a", LoadFactor: ptr(300)}, {Name: "http://b", Route: ptr(strings.Repeat("r", 64))}}},
		{Members: []MemberEdit{{Name: "http://a", Set: Disabled}}, Add: []MemberConfig{{URL: "ajp://x"}}},
		{Timeout: ptr(time.Second), MaxAttempts: ptr(100)},
		{NoFailover: ptr(true), LBMethod: ptr("heartbeat")},
		{Members: []MemberEdit{{Name: "http://a", Set: Disabled}, {Name: "http://nosuch", Set: Drain}}},
		{Members: []MemberEdit{{Name: "http://a", Set: InError}}},
		{Members: []MemberEdit{{Name: "http://a", Set: Disabled, Clear: Disabled}}},
		{Members: []MemberEdit{{Name: "http://a", HealthCheck: &HealthCheck{Method: "GET", Interval: time.Millisecond}}}},
		{Add: []MemberConfig{{URL: "http://c"}, {URL: "http://d"}}}, // one slot
		{Add: []MemberConfig{{URL: "http://c"}}, Remove: []string{"http://a"}},
	}
	for i, e := range bad {
		if _, err := b.Apply(e, ReasonAPI); err == nil {
			t.Errorf("edit %d accepted", i)
		}
		if after := b.Snapshot(); !reflect.DeepEqual(after, before) {
			t.Fatalf("edit %d changed the balancer:\n%+v\n%+v", i, before, after)
		}
	}
}

// The edit hook sees each applied edit once, after the lock is released (it
// may call the balancer).
func TestEditHook(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	var got []string
	b.SetOnEdit(func(hb *Balancer, e Edit, reason string) {
		v := hb.View() // would deadlock under the lock
		got = append(got, fmt.Sprintf("%s %s %d", reason, v.LBMethod, len(e.Members)))
	})
	mustApply(t, b, Edit{LBMethod: ptr("bytraffic"), Members: []MemberEdit{{Name: "http://a", Set: Drain}}})
	if _, err := b.Apply(Edit{MaxAttempts: ptr(-1)}, ReasonManager); err == nil {
		t.Fatal("maxattempts -1 accepted")
	}
	if want := []string{"api bytraffic 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("hook calls %q, want %q", got, want)
	}
}

// A reload keeps balancer parameters changed at run time while the
// configured ones are unchanged; a changed configuration wins.
func TestReconfigureKeepsRuntimeParams(t *testing.T) {
	cfg := Config{Name: "rk", Members: mgMembers("http://a", "http://b")}
	b := mgBalancer(t, cfg)
	mustApply(t, b, Edit{LBMethod: ptr("bybusyness"), Timeout: ptr(5 * time.Second)})
	cfg2 := cfg
	cfg2.Members = mgMembers("http://a", "http://b", "http://c")
	if err := b.Reconfigure(cfg2); err != nil {
		t.Fatal(err)
	}
	if v := b.View(); v.LBMethod != "bybusyness" || v.Timeout != 5*time.Second {
		t.Errorf("after a reload: %s %v, want the run-time bybusyness 5s", v.LBMethod, v.Timeout)
	}
	cfg3 := cfg2
	cfg3.LBMethod = "bytraffic"
	if err := b.Reconfigure(cfg3); err != nil {
		t.Fatal(err)
	}
	if v := b.View(); v.LBMethod != "bytraffic" || v.Timeout != 0 {
		t.Errorf("after a config change: %s %v, want the configuration's bytraffic 0s", v.LBMethod, v.Timeout)
	}
}

func TestManageStatusString(t *testing.T) {
	set, clear, err := ParseStatusChange("+D-N+H")
	if err != nil || set != Disabled|HotStandby || clear != Drain {
		t.Errorf("+D-N+H: set %s clear %s %v", set.Letters(), clear.Letters(), err)
	}
	if set, clear, _ := ParseStatusChange("+D-D"); set != 0 || clear != Disabled {
		t.Errorf("+D-D: set %s clear %s, want the last to win", set.Letters(), clear.Letters())
	}
	for _, bad := range []string{"E", "+O", "-U", "D-", "X", "+G"} {
		if _, _, err := ParseStatusChange(bad); err == nil {
			t.Errorf("ParseStatusChange(%q) accepted", bad)
		}
	}
}

func TestManageStatusChangeHook(t *testing.T) {
	b := mgBalancer(t, Config{Members: mgMembers("http://a", "http://b")})
	var got []string
	b.SetOnStatusChange(func(m *Member, old, new Status, reason string) {
		got = append(got, m.Name()+" "+old.Letters()+">"+new.Letters()+" "+reason)
	})
	if _, err := b.Apply(Edit{Members: []MemberEdit{{Name: "http://a", Set: Disabled}}}, ReasonManager); err != nil {
		t.Fatal(err)
	}
	setFlag(t, b, "http://b", Drain, true)
	want := []string{"http://a O>OD manager", "http://b O>ON api"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("hook calls %q, want %q", got, want)
	}
}

func TestManageSnapshotRestore(t *testing.T) {
	cfg := Config{Name: "p", Growth: 2, Members: []MemberConfig{
		{URL: "http://a"}, {URL: "http://b", Route: "rb"}, {URL: "http://c"}}}
	b := mgBalancer(t, cfg)
	mustApply(t, b, Edit{Members: []MemberEdit{
		{Name: "http://a", LoadFactor: ptr(300), Set: Disabled, Route: ptr("ra")},
		{Name: "http://b", Set: HotStandby},
	}})
	mustApply(t, b, Edit{LBMethod: ptr("bytraffic"), Timeout: ptr(9 * time.Second),
		StickySession: &StickySession{Cookie: "S", Path: "p"}})
	added, err := addMember(b, "http://dyn:81")
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, b, Edit{Members: []MemberEdit{{Name: added.Name(), Clear: Disabled, LBSet: ptr(2)}}})
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

// A saved state is input: a member whose saved values break a rule is
// skipped whole, the others are restored.
func TestRestoreSkipsInvalidMemberWhole(t *testing.T) {
	cfg := Config{Name: "v", Members: mgMembers("http://a", "http://b")}
	b := mgBalancer(t, cfg)
	snap := b.Snapshot()
	snap.Members[0].LBFactor = 99999 // out of range
	snap.Members[0].Flags = "D"
	snap.Members[1].Flags = "N"
	r := mgBalancer(t, cfg)
	rep := r.Restore(snap)
	if len(rep.Restored) != 1 || len(rep.Skipped) != 1 || !strings.HasPrefix(rep.Skipped[0], "http://a:") {
		t.Errorf("report %+v", rep)
	}
	if s := stateOf(t, r, "a"); s.Status != Initialized || s.LoadFactor != 100 {
		t.Errorf("a was partly restored: %+v %s", s, s.Status.Letters())
	}
	if s := stateOf(t, r, "b"); s.Status != Initialized|Drain {
		t.Errorf("b: %s", s.Status.Letters())
	}
}
