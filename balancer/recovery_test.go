package balancer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// §2.5: E is lifted when the member is merely examined, once now is strictly
// greater than error_time + retry, even if another member then wins; the next
// request tries it again.
func TestRetryLiftedWhenExaminedStrictlyAfterRetry(t *testing.T) {
	clk := &testClock{t: testEpoch}
	a := cfgMember(t, "a", "")
	a.Retry = durPtr(2 * time.Second)
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", "")}}, clk)
	dead := map[string]bool{"a": true}

	tries, _, err := simRequest(t, b, nil, dead)
	wantSeq(t, "request 1 attempts", tries, words("a b"))
	if err != nil {
		t.Fatalf("request 1: %v", err)
	}
	wantStatusString(t, b, "a", "Init Err ")
	if st := stateOf(t, b, "a"); !st.ErrorTime.Equal(testEpoch) || st.Retries != 0 {
		t.Errorf("a error_time %v retries %d, want %v and 0", st.ErrorTime, st.Retries, testEpoch)
	}

	// Exactly error_time + retry: not strictly greater, stays in error.
	clk.t = testEpoch.Add(2 * time.Second)
	tries, _, _ = simRequest(t, b, nil, dead)
	wantSeq(t, "request at error_time+retry", tries, words("b"))
	wantStatusString(t, b, "a", "Init Err ")
	if r := stateOf(t, b, "a").Retries; r != 0 {
		t.Errorf("a retries = %d, want 0", r)
	}

	// Just after: a is examined, E lifted (retries=1), but b wins this one.
	clk.t = testEpoch.Add(2*time.Second + time.Microsecond)
	tries, _, _ = simRequest(t, b, nil, dead)
	wantSeq(t, "request after retry", tries, words("b"))
	wantStatusString(t, b, "a", "Init Ok ")
	if r := stateOf(t, b, "a").Retries; r != 1 {
		t.Errorf("a retries = %d, want 1", r)
	}

	// The next request tries a, which fails again, then fails over.
	tries, _, err = simRequest(t, b, nil, dead)
	wantSeq(t, "next request", tries, words("a b"))
	if err != nil {
		t.Errorf("next request: %v", err)
	}
	wantStatusString(t, b, "a", "Init Err ")
	if r := stateOf(t, b, "a").Retries; r != 1 {
		t.Errorf("a retries = %d, want 1 (only lifts count)", r)
	}
}

// §2.5: retry=0 ⇒ the failed member is re-tried on every request: each request
// pays one failed attempt, then fails over. With the default retry (60 s) the
// member is left alone after the first failure.
func TestRetryZeroRetriesEveryRequest(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Microsecond}
	a := cfgMember(t, "a", "")
	a.Retry = durPtr(0)
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", "")}}, clk)
	dead := map[string]bool{"a": true}
	for i := 1; i <= 5; i++ {
		tries, _, err := simRequest(t, b, nil, dead)
		wantSeq(t, "retry=0 request attempts", tries, words("a b"))
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		if r := stateOf(t, b, "a").Retries; r != int64(i) {
			t.Errorf("after request %d: a retries = %d, want %d", i, r, i)
		}
	}

	clk = &testClock{t: testEpoch, step: time.Microsecond}
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", ""), cfgMember(t, "b", "")}}, clk)
	var all []string
	for i := 0; i < 4; i++ {
		tries, _, _ := simRequest(t, b, nil, dead)
		all = append(all, "|")
		all = append(all, tries...)
	}
	wantSeq(t, "retry=60s attempts", all, words("| a b | b | b | b"))
	if r := stateOf(t, b, "a").Retries; r != 0 {
		t.Errorf("a retries = %d, want 0", r)
	}
}

// §2.5: status=E in the configuration has error_time 0 and is lifted at the
// first selection.
func TestConfiguredErrorLiftedAtFirstSelection(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "E"), cfgMember(t, "b", "")}}, nil)
	wantStatusString(t, b, "a", "Init Err ")
	wantSeq(t, "picks", pickN(t, b, 4, nil), words("a b a b"))
	wantStatusString(t, b, "a", "Init Ok ")
	if r := stateOf(t, b, "a").Retries; r != 1 {
		t.Errorf("a retries = %d, want 1", r)
	}

	// The retry rule clears E only: a member configured D and E loses E when
	// examined but stays disabled.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "DE"), cfgMember(t, "b", "")}}, nil)
	wantSeq(t, "picks", pickN(t, b, 2, nil), words("b b"))
	wantStatusString(t, b, "a", "Init Dis ")
	if r := stateOf(t, b, "a").Retries; r != 1 {
		t.Errorf("DE member retries = %d, want 1", r)
	}
}

// §3.1 step 6: a balancer without members answers 503 (AH01171).
func TestNoMembers(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true}, nil)
	if _, err := b.Pick(context.Background(), nil); !errors.Is(err, ErrNoMember) {
		t.Errorf("err %v, want ErrNoMember", err)
	}
}

// §2.5: S blocks the retry: a member with S and E is never lifted.
func TestStoppedBlocksRetry(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Hour}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "SE"), cfgMember(t, "b", "")}}, clk)
	wantSeq(t, "picks", pickN(t, b, 4, nil), words("b b b b"))
	wantStatusString(t, b, "a", "Init Stop Err ")
	if st := stateOf(t, b, "a"); st.Retries != 0 || st.Elected != 0 || st.LBStatus != 0 {
		t.Errorf("a retries %d elected %d lbstatus %d, want 0 0 0", st.Retries, st.Elected, st.LBStatus)
	}
}

// §2.5: I lifts E immediately, whatever the retry period.
func TestIgnoreErrorsLiftsImmediately(t *testing.T) {
	// One second after the testEpoch: a configured E (error_time 0) with the
	// default 60 s retry has not expired yet.
	clk := &testClock{t: time.Unix(1, 0)}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "a", "E"), cfgMember(t, "b", "IE"), cfgMember(t, "c", ""),
	}}, clk)
	wantSeq(t, "picks", pickN(t, b, 4, nil), words("b c b c"))
	wantStatusString(t, b, "a", "Init Err ")
	wantStatusString(t, b, "b", "Init Ign Ok ")
	if r := stateOf(t, b, "a").Retries; r != 0 {
		t.Errorf("a retries = %d, want 0", r)
	}
	if r := stateOf(t, b, "b").Retries; r != 1 {
		t.Errorf("b retries = %d, want 1", r)
	}
}

// §2.5 forced recovery: one dead member with default settings is re-tried on
// every request, retries 1, 2, ...
func TestForcedRecoveryOneDeadMember(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "d", "")}}, clk)
	if b.MaxAttempts() != 0 {
		t.Fatalf("one member: maxattempts = %d, want 0", b.MaxAttempts())
	}
	dead := map[string]bool{"d": true}
	for i := 1; i <= 4; i++ {
		tries, _, err := simRequest(t, b, nil, dead)
		wantSeq(t, "attempts", tries, words("d"))
		if !errors.Is(err, errTestConnect) {
			t.Errorf("request %d: err %v, want a failed connect", i, err)
		}
		st := stateOf(t, b, "d")
		if st.Retries != int64(i-1) || st.Elected != int64(i) {
			t.Errorf("after request %d: retries %d elected %d, want %d %d", i, st.Retries, st.Elected, i-1, i)
		}
		wantStatusString(t, b, "d", "Init Err ")
	}
}

// §2.5 forced recovery Off: two dead members; the second request is answered
// 503 without any member being picked.
func TestForcedRecoveryOffTwoDeadMembers(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: false, Members: []MemberConfig{cfgMember(t, "d1", ""), cfgMember(t, "d2", "")}}, clk)
	dead := map[string]bool{"d1": true, "d2": true}
	tries, _, err := simRequest(t, b, nil, dead)
	wantSeq(t, "request 1 attempts", tries, words("d1 d2"))
	if !errors.Is(err, errTestConnect) {
		t.Errorf("request 1: %v", err)
	}
	tries, p, err := simRequest(t, b, nil, dead)
	if len(tries) != 0 || !errors.Is(err, ErrNoMember) || p.Member != nil {
		t.Errorf("request 2: attempts %v err %v member %v; want none, ErrNoMember", tries, err, p.Member)
	}
	for _, l := range []string{"d1", "d2"} {
		st := stateOf(t, b, l)
		if st.Elected != 1 || st.Retries != 0 || st.Busy != 0 {
			t.Errorf("%s elected %d retries %d busy %d, want 1 0 0", l, st.Elected, st.Retries, st.Busy)
		}
		wantStatusString(t, b, l, "Init Err ")
	}
}

// §2.5: forced recovery looks only at E. Members that are all D/S/C do not
// trigger it; members that all have E do, even if they have D as well (which
// stays).
func TestForcedRecoveryOnlyCountsE(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "a", "D"), cfgMember(t, "b", "S"), cfgMember(t, "c", "C"),
	}}, nil)
	if _, err := b.Pick(context.Background(), nil); !errors.Is(err, ErrNoMember) {
		t.Errorf("all D/S/C: err %v, want ErrNoMember", err)
	}
	for l, want := range map[string]string{"a": "Init Dis ", "b": "Init Stop ", "c": "Init HcFl "} {
		wantStatusString(t, b, l, want)
		if r := stateOf(t, b, l).Retries; r != 0 {
			t.Errorf("%s retries = %d, want 0", l, r)
		}
	}

	// One second after the testEpoch, a configured E has not expired (retry 60 s).
	clk := &testClock{t: time.Unix(1, 0)}
	// a in error, b only disabled: not every member has E → no recovery.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "E"), cfgMember(t, "b", "D")}}, clk)
	if _, err := b.Pick(context.Background(), nil); !errors.Is(err, ErrNoMember) {
		t.Errorf("E + D: err %v, want ErrNoMember", err)
	}
	wantStatusString(t, b, "a", "Init Err ")

	// Both have E (b also D): forced recovery lifts E on both, b stays disabled.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "a", "E"), cfgMember(t, "b", "DE")}}, clk)
	wantSeq(t, "E + DE picks", pickN(t, b, 2, nil), words("a a"))
	wantStatusString(t, b, "a", "Init Ok ")
	wantStatusString(t, b, "b", "Init Dis ")
	for _, l := range []string{"a", "b"} {
		if r := stateOf(t, b, l).Retries; r != 1 {
			t.Errorf("%s retries = %d, want 1", l, r)
		}
	}
}

// §2.5: a successful connect resets retries and error_time.
func TestConnectOKResetsRetries(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "d", "")}}, clk)
	dead := map[string]bool{"d": true}
	simRequest(t, b, nil, dead)
	simRequest(t, b, nil, dead)
	if st := stateOf(t, b, "d"); st.Retries != 1 || st.ErrorTime.IsZero() {
		t.Fatalf("after two failures: retries %d error_time %v", st.Retries, st.ErrorTime)
	}
	if _, _, err := simRequest(t, b, nil, nil); err != nil {
		t.Fatalf("third request: %v", err)
	}
	st := stateOf(t, b, "d")
	if st.Retries != 0 || !st.ErrorTime.IsZero() {
		t.Errorf("after a successful connect: retries %d error_time %v, want 0 and zero", st.Retries, st.ErrorTime)
	}
	wantStatusString(t, b, "d", "Init Ok ")
}

// §2.5 forced recovery applies the retry rule member by member first and stops
// at the first member that loses E; only when none does are all members lifted.
func TestForcedRecoveryTriesRetryRuleFirst(t *testing.T) {
	clk := &testClock{t: testEpoch}
	a := cfgMember(t, "a", "")
	a.Retry = durPtr(time.Second)
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", "")}}, clk)
	tries, _, err := simRequest(t, b, nil, map[string]bool{"a": true, "b": true})
	wantSeq(t, "request 1", tries, words("a b"))
	if !errors.Is(err, errTestConnect) {
		t.Fatalf("request 1: %v", err)
	}
	// a's retry (1 s) has passed, b's (60 s) has not: only a is lifted.
	clk.t = testEpoch.Add(2 * time.Second)
	tries, _, err = simRequest(t, b, nil, map[string]bool{"b": true})
	wantSeq(t, "request 2", tries, words("a"))
	if err != nil {
		t.Errorf("request 2: %v", err)
	}
	wantStatusString(t, b, "b", "Init Err ")
	if r := stateOf(t, b, "b").Retries; r != 0 {
		t.Errorf("b retries = %d, want 0 (not force-recovered)", r)
	}
}

// §2.5 forced recovery walks the members in order: a member without E ends the
// walk, a member with E gets the retry rule first and ends the walk if that
// lifts it (force_recovery in mod_proxy_balancer.c). So an expired E on a member
// *before* the first healthy one is lifted at the start of every selection, even
// where the chooser would not look at it (a higher lbset, a draining member);
// one after it, or after a lifted one, is not.
func TestForcedRecoveryWalkAppliesRetryRule(t *testing.T) {
	// Configured E: error_time 0, expired at testEpoch.
	hi := cfgMember(t, "hi", "E")
	hi.LBSet = 1
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		hi, cfgMember(t, "dr", "NE"), cfgMember(t, "b", ""),
	}}, nil)
	wantSeq(t, "picks", pickN(t, b, 1, nil), words("b"))
	wantStatusString(t, b, "hi", "Init Ok ")
	wantStatusString(t, b, "dr", "Init Drn Err ") // the walk stopped at hi
	for l, want := range map[string]int64{"hi": 1, "dr": 0} {
		if r := stateOf(t, b, l).Retries; r != want {
			t.Errorf("%s retries = %d, want %d", l, r, want)
		}
	}

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "dr", "NE"), cfgMember(t, "b", ""), cfgMember(t, "after", "NE"),
	}}, nil)
	wantSeq(t, "picks", pickN(t, b, 1, nil), words("b"))
	wantStatusString(t, b, "dr", "Init Drn Ok ")
	wantStatusString(t, b, "after", "Init Drn Err ")
	for l, want := range map[string]int64{"dr": 1, "after": 0} {
		if r := stateOf(t, b, l).Retries; r != want {
			t.Errorf("%s retries = %d, want %d", l, r, want)
		}
	}
}
