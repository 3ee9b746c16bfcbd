package balancer

import (
	"testing"
	"time"
)

// §3.3: lbsets are tried from 0 upward; a higher set is used only when the lower
// ones produce no winner; members of unexamined sets are not incremented.
func TestLBSetsLowestFirst(t *testing.T) {
	a := cfgMember(t, "a", "")
	a.LBSet = 1
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", ""), cfgMember(t, "c", "")}}, nil)
	wantSeq(t, "set 0 first", pickN(t, b, 6, nil), words("b c b c b c"))
	if st := stateOf(t, b, "a"); st.LBStatus != 0 || st.Elected != 0 {
		t.Errorf("set-1 member: lbstatus %d elected %d, want 0 0", st.LBStatus, st.Elected)
	}

	// Set 0 all disabled: set 1 is used. Gaps in the set numbers are fine.
	a.LBSet = 5
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", "D"), cfgMember(t, "c", "D")}}, nil)
	wantSeq(t, "set 0 disabled", pickN(t, b, 3, nil), words("a a a"))

	// Set 0 members failing over at run time: set 1 takes over.
	a.LBSet = 1
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{a, cfgMember(t, "b", ""), cfgMember(t, "c", "")}}, clk)
	tries, _, err := simRequest(t, b, nil, map[string]bool{"b": true, "c": true})
	wantSeq(t, "failover into set 1", tries, words("b c a"))
	if err != nil {
		t.Errorf("failover into set 1: %v", err)
	}
}

// §3.3: a standby in set 0 is used before any regular member of set 1, but not
// while a regular member of set 0 is usable.
func TestStandbySet0BeforeSet1(t *testing.T) {
	c := cfgMember(t, "c", "")
	c.LBSet = 1
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "h", "H"), cfgMember(t, "d", "D"), c}}, nil)
	wantSeq(t, "standby of set 0", pickN(t, b, 3, nil), words("h h h"))

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "h", "H"), c}}, nil)
	wantSeq(t, "only a standby in set 0", pickN(t, b, 3, nil), words("h h h"))

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "h", "H"), cfgMember(t, "r", ""), c}}, nil)
	wantSeq(t, "regular member of set 0 usable", pickN(t, b, 3, nil), words("r r r"))
	if st := stateOf(t, b, "h"); st.LBStatus != 0 {
		t.Errorf("unexamined standby lbstatus = %d, want 0", st.LBStatus)
	}
}

// §3.3: docs/behaviour.md's spare example. d1 and d2 are dead backends (they fail at
// connect and go into E), b2 b3 b4 are spares; two unusable regular members
// admit exactly two spares (b2, b3) which compete with b1. [OBSERVED] 16
// requests → b1 b3 b2 b3 b1 b3 b2 b3 ..., b4 never used.
func TestSparesAdmittedOneForOne(t *testing.T) {
	b3 := cfgMember(t, "b3", "R")
	b3.LoadFactor = 200
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d1", ""), cfgMember(t, "d2", ""), cfgMember(t, "b1", ""), cfgMember(t, "b2", "R"), b3, cfgMember(t, "b4", "R"),
	}}, clk)
	dead := map[string]bool{"d1": true, "d2": true}
	wantSeq(t, "served", servedBy(t, b, 16, nil, dead), repeatWords("b1 b3 b2 b3", 4))
	if st := stateOf(t, b, "b4"); st.Elected != 0 || st.LBStatus != 0 {
		t.Errorf("b4: elected %d lbstatus %d, want 0 0", st.Elected, st.LBStatus)
	}
	wantStatusString(t, b, "d1", "Init Err ")
	wantStatusString(t, b, "d2", "Init Err ")
	wantStatusString(t, b, "b2", "Init Spar Ok ")

	// The same with d1 d2 disabled from the start (no failover history):
	// b1 100, b2 100, b3 200 compete from (0,0,0).
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d1", "D"), cfgMember(t, "d2", "D"), cfgMember(t, "b1", ""), cfgMember(t, "b2", "R"), b3, cfgMember(t, "b4", "R"),
	}}, nil)
	wantSeq(t, "picks (D)", pickN(t, b, 8, nil), repeatWords("b3 b1 b2 b3", 2))
	if st := stateOf(t, b, "b4"); st.Elected != 0 {
		t.Errorf("b4 elected %d, want 0", st.Elected)
	}
}

// §3.3: spares are not used while every regular member is usable; with one
// unusable regular member only the first usable spare is admitted.
func TestSparesOnlyReplaceUnusable(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "r1", ""), cfgMember(t, "r2", ""), cfgMember(t, "s", "R"),
	}}, nil)
	wantSeq(t, "all regular usable", pickN(t, b, 4, nil), words("r1 r2 r1 r2"))
	if st := stateOf(t, b, "s"); st.LBStatus != 0 || st.Elected != 0 {
		t.Errorf("spare: lbstatus %d elected %d, want 0 0", st.LBStatus, st.Elected)
	}

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d", "D"), cfgMember(t, "s1", "R"), cfgMember(t, "s2", "R"), cfgMember(t, "r", ""),
	}}, nil)
	wantSeq(t, "one unusable", pickN(t, b, 6, nil), words("r s1 r s1 r s1"))
	if st := stateOf(t, b, "s2"); st.Elected != 0 {
		t.Errorf("s2 elected %d, want 0", st.Elected)
	}

	// A spare that is itself unusable is not admitted; the next one is.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d", "D"), cfgMember(t, "s1", "RD"), cfgMember(t, "s2", "R"), cfgMember(t, "r", ""),
	}}, nil)
	wantSeq(t, "first spare unusable", pickN(t, b, 4, nil), words("r s2 r s2"))
}

// §3.3: R+H is treated as a spare (it competes once admitted), H alone is a
// standby (used only when nothing else in the set is usable).
func TestSpareAndStandbyIsSpare(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d", "D"), cfgMember(t, "y", ""), cfgMember(t, "x", "RH"),
	}}, nil)
	wantSeq(t, "R+H", pickN(t, b, 4, nil), words("y x y x"))
	wantStatusString(t, b, "x", "Init Stby Spar Ok ")

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "d", "D"), cfgMember(t, "y", ""), cfgMember(t, "x", "H"),
	}}, nil)
	wantSeq(t, "H only", pickN(t, b, 4, nil), words("y y y y"))
}

// §3.3: standbys compete among themselves when no regular member or admitted
// spare of the set is usable, and not at all while a spare is admitted.
func TestStandbys(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "a", "D"), cfgMember(t, "h1", "H"), cfgMember(t, "h2", "H"),
	}}, nil)
	wantSeq(t, "standbys", pickN(t, b, 4, nil), words("h1 h2 h1 h2"))

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "a", "D"), cfgMember(t, "h", "H"), cfgMember(t, "s", "R"),
	}}, nil)
	wantSeq(t, "spare before standby", pickN(t, b, 3, nil), words("s s s"))
	if st := stateOf(t, b, "h"); st.LBStatus != 0 || st.Elected != 0 {
		t.Errorf("standby: lbstatus %d elected %d, want 0 0", st.LBStatus, st.Elected)
	}
}

// §3.3: draining members are never chosen by the chooser (and never
// incremented) but a draining regular member counts as unusable for spare
// admission; a draining spare or standby does not.
func TestDrain(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "n", "N"), cfgMember(t, "b", ""), cfgMember(t, "s", "R"),
	}}, nil)
	wantSeq(t, "drain admits a spare", pickN(t, b, 4, nil), words("b s b s"))
	if st := stateOf(t, b, "n"); st.LBStatus != 0 || st.Elected != 0 {
		t.Errorf("draining: lbstatus %d elected %d, want 0 0", st.LBStatus, st.Elected)
	}
	wantStatusString(t, b, "n", "Init Drn Ok ")

	for _, st := range []string{"NR", "NH"} {
		b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
			cfgMember(t, "n", st), cfgMember(t, "b", ""), cfgMember(t, "s", "R"),
		}}, nil)
		wantSeq(t, "draining "+st+" does not admit a spare", pickN(t, b, 3, nil), words("b b b"))
	}

	// Only draining members: nothing to choose.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgMember(t, "n1", "N"), cfgMember(t, "n2", "N")}}, nil)
	wantSeq(t, "only draining", pickN(t, b, 2, nil), words("ERR ERR"))
}

// §3.3: ties go to the first member in configuration order.
func TestTiesGoToFirst(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "a", ""), cfgMember(t, "b", ""), cfgMember(t, "c", ""),
	}}, nil)
	wantSeq(t, "equal members", pickN(t, b, 6, nil), words("a b c a b c"))
	wantLBStatus(t, b, "after two rounds", words("a b c"), []int64{0, 0, 0})
	for _, l := range words("a b c") {
		if e := stateOf(t, b, l).Elected; e != 2 {
			t.Errorf("%s elected %d, want 2", l, e)
		}
	}
}

// §3.4: with no usable member and a balancer timeout, Pick waits about that
// long and then answers 503.
func TestTimeoutWait(t *testing.T) {
	b := newTestBalancer(t, Config{Timeout: 50 * time.Millisecond, Members: []MemberConfig{cfgMember(t, "a", "D")}}, nil)
	start := time.Now()
	if got := pickN(t, b, 1, nil); got[0] != "ERR" {
		t.Fatalf("pick = %v, want ERR", got)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("returned after %v, want about 50ms", d)
	}
}
