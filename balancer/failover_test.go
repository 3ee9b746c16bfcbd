package balancer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// §3.7: default maxattempts is members−1, and 0 for one member (the manual's
// "1" is wrong); an explicit value is kept, including 0.
func TestMaxAttemptsDefault(t *testing.T) {
	var ms []MemberConfig
	for _, h := range words("a b c d") {
		ms = append(ms, cfgMember(t, h, ""))
	}
	cases := []struct {
		n    int
		set  bool
		val  int
		want int
	}{
		{1, false, 0, 0},
		{2, false, 0, 1},
		{4, false, 0, 3},
		{3, true, 0, 0},
		{2, true, 5, 5},
		{1, true, 2, 2},
	}
	for _, c := range cases {
		b := newTestBalancer(t, Config{MaxAttempts: c.val, MaxAttemptsSet: c.set, Members: ms[:c.n]}, nil)
		if got := b.MaxAttempts(); got != c.want {
			t.Errorf("%d members, maxattempts set=%v %d: MaxAttempts() = %d, want %d", c.n, c.set, c.val, got, c.want)
		}
	}
}

// §3.7: a connect failure marks the member E and fails over to the next one.
func TestFailoverToLiveMember(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "d", ""), cfgMember(t, "b", "")}}, clk)
	tries, _, err := simRequest(t, b, nil, map[string]bool{"d": true})
	wantSeq(t, "attempts", tries, words("d b"))
	if err != nil {
		t.Errorf("request: %v", err)
	}
	wantStatusString(t, b, "d", "Init Err ")
	wantStatusString(t, b, "b", "Init Ok ")
	for _, l := range words("d b") {
		if s := stateOf(t, b, l); s.Elected != 1 || s.Busy != 0 {
			t.Errorf("%s elected %d busy %d, want 1 0", l, s.Elected, s.Busy)
		}
	}
}

// §3.7: maxattempts=0 ⇒ no failover, even with a live member.
func TestMaxAttemptsZeroNoFailover(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, MaxAttemptsSet: true, Members: []MemberConfig{cfgMember(t, "d", ""), cfgMember(t, "b", "")}}, nil)
	tries, _, err := simRequest(t, b, nil, map[string]bool{"d": true})
	wantSeq(t, "attempts", tries, words("d"))
	if !errors.Is(err, errTestConnect) {
		t.Errorf("err %v, want a failed connect (503)", err)
	}
}

// §3.7 [OBSERVED]: two dead members, maxattempts=5 → 6 connection attempts
// (forced recovery at each retry), each member elected 3 times, retries=2,
// then 503. With forcerecovery=Off only 2 attempts.
func TestTwoDeadMembersMaxAttempts5(t *testing.T) {
	dead := map[string]bool{"d1": true, "d2": true}
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, MaxAttempts: 5, MaxAttemptsSet: true,
		Members: []MemberConfig{cfgMember(t, "d1", ""), cfgMember(t, "d2", "")}}, clk)
	tries, _, err := simRequest(t, b, nil, dead)
	if len(tries) != 6 {
		t.Errorf("attempts %v: %d, want 6", tries, len(tries))
	}
	if !errors.Is(err, errTestConnect) {
		t.Errorf("err %v, want a failed connect (503)", err)
	}
	for _, l := range words("d1 d2") {
		s := stateOf(t, b, l)
		if s.Elected != 3 || s.Retries != 2 || s.Busy != 0 {
			t.Errorf("%s elected %d retries %d busy %d, want 3 2 0", l, s.Elected, s.Retries, s.Busy)
		}
		wantStatusString(t, b, l, "Init Err ")
	}

	clk = &testClock{t: testEpoch, step: time.Millisecond}
	b = newTestBalancer(t, Config{ForceRecovery: false, MaxAttempts: 5, MaxAttemptsSet: true,
		Members: []MemberConfig{cfgMember(t, "d1", ""), cfgMember(t, "d2", "")}}, clk)
	tries, _, err = simRequest(t, b, nil, dead)
	wantSeq(t, "forcerecovery off", tries, words("d1 d2"))
	if !errors.Is(err, ErrNoMember) {
		t.Errorf("forcerecovery off: err %v, want ErrNoMember", err)
	}
	for _, l := range words("d1 d2") {
		if s := stateOf(t, b, l); s.Elected != 1 || s.Retries != 0 {
			t.Errorf("forcerecovery off: %s elected %d retries %d, want 1 0", l, s.Elected, s.Retries)
		}
	}
}

// §2.5/§3.7 [OBSERVED]: a dead member with status=+I stays usable, so the
// request routed to it fails without failover.
func TestIgnoreErrorsMemberFailsWithoutFailover(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "+I"), cfgMember(t, "b", "")}}, nil)
	tries, _, err := simRequest(t, b, nil, map[string]bool{"a": true})
	wantSeq(t, "attempts", tries, words("a"))
	if !errors.Is(err, errTestConnect) {
		t.Errorf("err %v, want a failed connect (503)", err)
	}
	wantStatusString(t, b, "a", "Init Ign Ok ")
	if s := stateOf(t, b, "a"); s.ErrorTime != (time.Time{}) {
		t.Errorf("a error_time %v, want none", s.ErrorTime)
	}
	// The next requests are balanced as usual: b, then a again (fails again).
	wantSeq(t, "served", servedBy(t, b, 4, nil, map[string]bool{"a": true}), words("b 503 b 503"))
}

// §3.1 step 7: busy counts from selection to the end of the whole client
// request, including failed attempts; it never goes below 0.
func TestBusyHeldUntilRequestEnd(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "d", ""), cfgMember(t, "b", "")}}, nil)
	ctx := context.Background()
	p1, err := b.Pick(ctx, nil)
	if err != nil || memberLabel(p1.Member) != "d" {
		t.Fatalf("first pick %s %v", memberLabel(p1.Member), err)
	}
	if p1.Member.ConnectFailed() {
		t.Fatal("ConnectFailed: member still usable")
	}
	p2, err := b.Pick(ctx, nil)
	if err != nil || memberLabel(p2.Member) != "b" {
		t.Fatalf("failover pick %s %v", memberLabel(p2.Member), err)
	}
	for _, l := range words("d b") {
		if s := stateOf(t, b, l); s.Busy != 1 {
			t.Errorf("during the request: %s busy %d, want 1", l, s.Busy)
		}
	}
	p1.Member.Release()
	p2.Member.Release()
	p2.Member.Release()
	for _, l := range words("d b") {
		if s := stateOf(t, b, l); s.Busy != 0 {
			t.Errorf("after the request: %s busy %d, want 0", l, s.Busy)
		}
	}
}

// §3.8 failonstatus: the member's response is still sent (no failover) but the
// member goes into E and later requests go elsewhere; I members are exempt.
func TestFailOnStatus(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, FailOnStatus: []int{500, 503},
		Members: []MemberConfig{cfgMember(t, "a", ""), cfgMember(t, "b", "")}}, clk)
	p, err := b.Pick(context.Background(), nil)
	if err != nil || memberLabel(p.Member) != "a" {
		t.Fatalf("pick %s %v", memberLabel(p.Member), err)
	}
	p.Member.ConnectOK()
	p.Member.PostRequest(503, false)
	p.Member.Release()
	wantStatusString(t, b, "a", "Init Err ")
	wantSeq(t, "after failonstatus", pickN(t, b, 3, nil), words("b b b"))

	// A status that is not listed changes nothing.
	memberByLabel(t, b, "b").PostRequest(404, false)
	memberByLabel(t, b, "b").PostRequest(502, false)
	wantStatusString(t, b, "b", "Init Ok ")

	// Without failonstatus a 500 or 503 answer is just a response (§3.7).
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", ""), cfgMember(t, "b", "")}}, clk)
	memberByLabel(t, b, "a").PostRequest(503, false)
	memberByLabel(t, b, "a").PostRequest(500, false)
	wantStatusString(t, b, "a", "Init Ok ")

	b = newTestBalancer(t, Config{ForceRecovery: true, FailOnStatus: []int{503},
		Members: []MemberConfig{cfgMember(t, "a", "I"), cfgMember(t, "b", "")}}, clk)
	memberByLabel(t, b, "a").PostRequest(503, false)
	wantStatusString(t, b, "a", "Init Ign Ok ")
}

// §3.8 failontimeout: a timed-out request puts the member in E only with
// failontimeout=On, and never an I member.
func TestFailOnTimeout(t *testing.T) {
	for _, c := range []struct {
		on       bool
		status   string
		timedOut bool
		want     string
	}{
		{true, "", true, "Init Err "},
		{false, "", true, "Init Ok "},
		{true, "", false, "Init Ok "},
		{true, "I", true, "Init Ign Ok "},
	} {
		b := newTestBalancer(t, Config{ForceRecovery: true, FailOnTimeout: c.on,
			Members: []MemberConfig{cfgMember(t, "a", c.status), cfgMember(t, "b", "")}}, nil)
		memberByLabel(t, b, "a").PostRequest(502, c.timedOut)
		if got := stateOf(t, b, "a").Status.String(); got != c.want {
			t.Errorf("failontimeout=%v status=%q timedOut=%v: %q, want %q", c.on, c.status, c.timedOut, got, c.want)
		}
	}
}
