package balancer

import (
	"strings"
	"testing"
	"time"
)

var hcEpoch = time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)

func hcBalancer(t *testing.T, members ...MemberConfig) *Balancer {
	t.Helper()
	b, err := New(Config{Name: "hc", ForceRecovery: true, Members: members})
	if err != nil {
		t.Fatal(err)
	}
	b.Now = func() time.Time { return hcEpoch }
	return b
}

func hcMember(url string, hc HealthCheck) MemberConfig {
	return MemberConfig{URL: url, HealthCheck: hc}
}

// hcRun runs one due check of m (it must be due) with the given outcome.
func hcRun(t *testing.T, b *Balancer, m *Member, pass bool, now time.Time) {
	t.Helper()
	for _, task := range b.HCDue(now) {
		if task.Member == m {
			m.HCResult(pass, now)
			return
		}
	}
	t.Fatalf("%s is not due for a check at %v", m.Name(), now.Sub(hcEpoch))
}

func hcFlags(m *Member) string { return m.State().Status.Letters() }

// TestHCStateMachineFails: hcfails=2, failures need not be consecutive
// (docs/behaviour.md §8.4 [OBSERVED] fail, pass, pass, fail sets C); fcount is reset when C is set.
func TestHCStateMachineFails(t *testing.T) {
	b := hcBalancer(t, hcMember("http://a:1", HealthCheck{Method: "GET", Fails: 2, Passes: 2, Interval: time.Second}))
	m := b.Members()[0]
	now := hcEpoch
	step := func(pass bool, wantFlags string, wantF, wantP int) {
		t.Helper()
		now = now.Add(1100 * time.Millisecond)
		hcRun(t, b, m, pass, now)
		st := m.State()
		if st.Status.Letters() != wantFlags || st.FCount != wantF || st.PCount != wantP {
			t.Fatalf("after %v: flags %s fcount %d pcount %d, want %s %d %d",
				pass, st.Status.Letters(), st.FCount, st.PCount, wantFlags, wantF, wantP)
		}
	}
	step(false, "O", 1, 0)
	if et := m.State().ErrorTime; !et.Equal(now) {
		t.Fatalf("error_time %v, want %v", et, now)
	}
	step(true, "O", 1, 0) // a pass does not reset fcount
	step(true, "O", 1, 0)
	step(false, "OC", 0, 0) // second failure: C, fcount back to 0
	if m.Usable() {
		t.Fatal("member with C is usable")
	}
	// C member: failures change nothing, passes count.
	step(false, "OC", 0, 0)
	step(true, "OC", 0, 1)
	step(false, "OC", 0, 1) // pcount is not reset by a failure
	step(true, "O", 0, 0)   // second pass: C cleared, pcount 0
	if !m.Usable() {
		t.Fatal("member not usable after recovery")
	}
	if p, f := m.HCCounts(); p != 4 || f != 4 {
		t.Fatalf("HCCounts = %d, %d, want 4, 4", p, f)
	}
}

// TestHCZeroActsAsOne: hcpasses=0 and hcfails=0 act as 1.
func TestHCZeroActsAsOne(t *testing.T) {
	b := hcBalancer(t, hcMember("http://a:1", HealthCheck{Method: "tcp"}))
	m := b.Members()[0]
	hcRun(t, b, m, false, hcEpoch)
	if got := hcFlags(m); got != "OC" {
		t.Fatalf("flags %s, want OC", got)
	}
	hcRun(t, b, m, true, hcEpoch.Add(31*time.Second))
	if got := hcFlags(m); got != "O" {
		t.Fatalf("flags %s, want O", got)
	}
}

// TestHCRevivesErrorMember: a member in E (from real traffic) is revived by
// passing checks before its retry expires, and C and E are cleared together.
func TestHCRevivesErrorMember(t *testing.T) {
	b := hcBalancer(t,
		hcMember("http://a:1", HealthCheck{Method: "HEAD", Passes: 2}),
		MemberConfig{URL: "http://b:1"})
	m := b.Members()[0]
	m.ConnectFailed()
	if got := hcFlags(m); got != "OE" {
		t.Fatalf("flags %s, want OE", got)
	}
	now := hcEpoch
	hcRun(t, b, m, true, now)
	if got := hcFlags(m); got != "OE" {
		t.Fatalf("after 1 pass: flags %s, want OE", got)
	}
	now = now.Add(DefaultHCInterval + time.Millisecond)
	hcRun(t, b, m, true, now)
	if got := hcFlags(m); got != "O" {
		t.Fatalf("after 2 passes: flags %s, want O", got)
	}
	// A failure on an E member does not touch fcount or error_time.
	m.ConnectFailed()
	et := m.State().ErrorTime
	now = now.Add(DefaultHCInterval + time.Millisecond)
	hcRun(t, b, m, false, now)
	if st := m.State(); st.FCount != 0 || !st.ErrorTime.Equal(et) {
		t.Fatalf("fail on E member changed fcount %d / error_time %v", st.FCount, st.ErrorTime)
	}
}

// TestHCDueScheduling: due only after the interval (strictly), never twice in
// flight, never for S or NONE members; D, E, H do not prevent checks.
func TestHCDueScheduling(t *testing.T) {
	b := hcBalancer(t,
		hcMember("http://a:1", HealthCheck{Method: "GET", Interval: 2 * time.Second}),
		MemberConfig{URL: "http://s:1", Status: Stopped, HealthCheck: HealthCheck{Method: "GET"}},
		MemberConfig{URL: "http://n:1", HealthCheck: HealthCheck{Method: "NONE"}},
		MemberConfig{URL: "http://z:1"},
		MemberConfig{URL: "http://d:1", Status: Disabled | InError | HotStandby, HealthCheck: HealthCheck{Method: "OPTIONS11"}},
	)
	names := func(ts []HCTask) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Member.Name())
		}
		return strings.Join(s, " ")
	}
	due := b.HCDue(hcEpoch)
	if got := names(due); got != "http://a:1 http://d:1" {
		t.Fatalf("due %q", got)
	}
	if got := names(b.HCDue(hcEpoch.Add(time.Hour))); got != "" {
		t.Fatalf("in flight but due again: %q", got)
	}
	a := due[0].Member
	a.HCResult(true, hcEpoch)
	due[1].Member.HCResult(true, hcEpoch)
	if got := names(b.HCDue(hcEpoch.Add(2 * time.Second))); got != "" {
		t.Fatalf("due at exactly the interval: %q", got)
	}
	if got := names(b.HCDue(hcEpoch.Add(2*time.Second + time.Nanosecond))); got != "http://a:1" {
		t.Fatalf("due after interval %q (d has the 30s default)", got)
	}
	if next := b.NextHCDue(); !next.Equal(hcEpoch.Add(DefaultHCInterval)) {
		t.Fatalf("NextHCDue %v", next.Sub(hcEpoch))
	}
}

func TestHCTaskTarget(t *testing.T) {
	for _, c := range []struct{ url, uri, want string }{
		{"http://h:9001", "/health", "/health"},
		{"http://h:9002/app", "/health", "/app//health"},
		{"http://h:9006/", "", "/"},
		{"http://h:9005", "health", "health"},
		{"http://h:9007", "", ""},
	} {
		b := hcBalancer(t, hcMember(c.url, HealthCheck{Method: "GET", URI: c.uri}))
		ts := b.HCDue(hcEpoch)
		if len(ts) != 1 || ts[0].Target != c.want {
			t.Errorf("%s + %q: %+v, want target %q", c.url, c.uri, ts, c.want)
		}
	}
	b := hcBalancer(t, hcMember("https://H:8443/x", HealthCheck{Method: "get11"}))
	ts := b.HCDue(hcEpoch)
	if ts[0].Check.Method != "GET11" || ts[0].Hostname != "h" || ts[0].Port != "8443" || ts[0].Scheme != "https" ||
		ts[0].Check.Interval != DefaultHCInterval || ts[0].Check.Passes != 1 || ts[0].Check.Fails != 1 {
		t.Fatalf("task %+v", ts[0])
	}
}

func TestHCValidate(t *testing.T) {
	ok := []HealthCheck{{}, {Method: "none"}, {Method: "tcp"}, {Method: "OPTIONS11", Interval: 100 * time.Millisecond},
		{Method: "GET", Expr: "%{REQUEST_STATUS} =~ /^[234]/"}}
	for _, hc := range ok {
		if err := hc.Validate(); err != nil {
			t.Errorf("%+v: %v", hc, err)
		}
	}
	bad := []HealthCheck{{Method: "CPING"}, {Method: "PROVIDER"}, {Method: "GET", Interval: 99 * time.Millisecond},
		{Method: "GET", Passes: -1}, {Method: "GET", Fails: -1}, {Method: "GET", URI: strings.Repeat("x", 64)},
		{Method: "GET", Expr: "%{NOPE} == 1"}}
	for _, hc := range bad {
		if err := hc.Validate(); err == nil {
			t.Errorf("%+v: no error", hc)
		}
	}
	if _, err := New(Config{Name: "x", Members: []MemberConfig{hcMember("http://a:1", HealthCheck{Method: "POST"})}}); err == nil {
		t.Error("New accepted hcmethod POST")
	}
}

// TestHCStatusChangeHook: the OnStatusChange hook sees health-check, connect
// failure, retry and forced-recovery changes, after the lock is released.
func TestHCStatusChangeHook(t *testing.T) {
	r := time.Second
	b := hcBalancer(t,
		MemberConfig{URL: "http://a:1", Retry: &r, HealthCheck: HealthCheck{Method: "TCP"}},
		MemberConfig{URL: "http://b:1", Retry: &r})
	now := hcEpoch
	b.Now = func() time.Time { return now }
	var got []string
	b.SetOnStatusChange(func(m *Member, old, new Status, reason string) {
		_ = m.Usable() // the lock is not held
		got = append(got, m.Name()+" "+old.Letters()+">"+new.Letters()+" "+reason)
	})
	a, bm := b.Members()[0], b.Members()[1]
	hcRun(t, b, a, false, now)                         // C
	hcRun(t, b, a, true, now.Add(DefaultHCInterval+1)) // cleared
	a.ConnectFailed()
	now = now.Add(2 * time.Second)
	if _, err := b.Pick(t.Context(), nil); err != nil { // retry lifts E on a
		t.Fatal(err)
	}
	a.ConnectFailed()
	bm.ConnectFailed()
	if _, err := b.Pick(t.Context(), nil); err != nil { // now within retry: forced recovery
		t.Fatal(err)
	}
	b.SetOnStatusChange(nil)
	a.ConnectFailed()
	want := []string{
		"http://a:1 O>OC healthcheck",
		"http://a:1 OC>O healthcheck",
		"http://a:1 O>OE connect_failure",
		"http://a:1 OE>O retry",
		"http://a:1 O>OE connect_failure",
		"http://b:1 O>OE connect_failure",
		"http://a:1 OE>O forced_recovery",
		"http://b:1 OE>O forced_recovery",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHCPostRequestReasons(t *testing.T) {
	b, err := New(Config{Name: "p", FailOnStatus: []int{503}, FailOnTimeout: true,
		Members: []MemberConfig{{URL: "http://a:1"}, {URL: "http://b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	b.SetOnStatusChange(func(m *Member, old, new Status, reason string) { got = append(got, reason) })
	b.Members()[0].PostRequest(503, false)
	b.Members()[1].PostRequest(0, true)
	b.Members()[1].PostRequest(0, true) // already E: no change
	if strings.Join(got, " ") != "failonstatus failontimeout" {
		t.Fatalf("reasons %v", got)
	}
}
