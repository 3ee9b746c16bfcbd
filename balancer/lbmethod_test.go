package balancer

import (
	"context"
	"fmt"
	"testing"
)

func cfgLF(t *testing.T, host string, factor int) MemberConfig {
	m := cfgMember(t, host, "")
	m.LoadFactor = factor
	return m
}

// §5.1 worked example: loadfactors 1 (w1) and 3 (w2); the order and the
// lbstatus after every pick are those of docs/behaviour.md's table.
func TestByRequestsWorkedExample(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgLF(t, "w1", 100), cfgLF(t, "w2", 300)}}, nil)
	table := []struct {
		winner string
		w1, w2 int64
	}{
		{"w2", 100, -100},
		{"w1", -200, 200},
		{"w2", -100, 100},
		{"w2", 0, 0},
	}
	for round := 0; round < 3; round++ {
		for i, row := range table {
			got := pickN(t, b, 1, nil)[0]
			if got != row.winner {
				t.Errorf("round %d pick %d: %s, want %s", round, i+1, got, row.winner)
			}
			wantLBStatus(t, b, fmt.Sprintf("round %d pick %d", round, i+1), words("w1 w2"), []int64{row.w1, row.w2})
		}
	}
	if e1, e2 := stateOf(t, b, "w1").Elected, stateOf(t, b, "w2").Elected; e1 != 3 || e2 != 9 {
		t.Errorf("elected w1 %d w2 %d, want 3 9", e1, e2)
	}
}

// §5.1 further [OBSERVED] sequences.
func TestByRequestsSequences(t *testing.T) {
	b := newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{
		cfgLF(t, "a", 100), cfgLF(t, "b", 100), cfgLF(t, "c", 100), cfgLF(t, "d", 200),
	}}, nil)
	wantSeq(t, "lf 1,1,1,2", pickN(t, b, 10, nil), words("d a b c d d a b c d"))

	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgLF(t, "a", 150), cfgLF(t, "b", 225)}}, nil)
	wantSeq(t, "lf 1.5,2.25", pickN(t, b, 10, nil), words("b a b a b b a b a b"))

	// Manual example 70/30: a 10-step cycle with 7×a and 3×b.
	b = newTestBalancer(t, Config{ForceRecovery: true, Members: []MemberConfig{cfgLF(t, "a", 7000), cfgLF(t, "b", 3000)}}, nil)
	first := pickN(t, b, 10, nil)
	if countOf(first, "a") != 7 || countOf(first, "b") != 3 {
		t.Errorf("70/30 first 10: %v, want 7×a 3×b", first)
	}
	wantLBStatus(t, b, "70/30 after 10", words("a b"), []int64{0, 0})
	wantSeq(t, "70/30 second cycle", pickN(t, b, 10, nil), first)
}

// §5.3 bybusyness: idle members rotate like byrequests; members with requests
// in flight lose to idle ones but keep accumulating lbstatus.
func TestByBusyness(t *testing.T) {
	cfg := Config{LBMethod: "bybusyness", ForceRecovery: true, Members: []MemberConfig{
		cfgMember(t, "b1", ""), cfgMember(t, "b2", ""), cfgMember(t, "b3", ""),
	}}
	b := newTestBalancer(t, cfg, nil)
	wantSeq(t, "idle", pickN(t, b, 6, nil), words("b1 b2 b3 b1 b2 b3"))

	b = newTestBalancer(t, cfg, nil)
	ctx := context.Background()
	p1, err1 := b.Pick(ctx, nil)
	p2, err2 := b.Pick(ctx, nil)
	if err1 != nil || err2 != nil || memberLabel(p1.Member) != "b1" || memberLabel(p2.Member) != "b2" {
		t.Fatalf("slow requests went to %s, %s (%v %v), want b1, b2", memberLabel(p1.Member), memberLabel(p2.Member), err1, err2)
	}
	wantSeq(t, "while b1 b2 busy", pickN(t, b, 4, nil), words("b3 b3 b3 b3"))
	wantLBStatus(t, b, "while b1 b2 busy", words("b1 b2 b3"), []int64{300, 300, -600})
	if s := stateOf(t, b, "b1"); s.Busy != 1 {
		t.Errorf("b1 busy %d, want 1", s.Busy)
	}
	p1.Member.Release()
	p2.Member.Release()
	for _, l := range words("b1 b2 b3") {
		if s := stateOf(t, b, l); s.Busy != 0 {
			t.Errorf("%s busy %d after release, want 0", l, s.Busy)
		}
	}
	wantSeq(t, "b1 b2 idle again", pickN(t, b, 2, nil), words("b1 b2"))
}

// §5.2 bytraffic: lf 1 and 2, identical 200-byte requests with 29-byte
// responses: b1 b2 b2 b1 b2 b2 b1 b2 b2. lbstatus is not used.
func TestByTraffic(t *testing.T) {
	b := newTestBalancer(t, Config{LBMethod: "bytraffic", ForceRecovery: true, Members: []MemberConfig{
		cfgLF(t, "b1", 100), cfgLF(t, "b2", 200),
	}}, nil)
	var got []string
	for i := 0; i < 9; i++ {
		p, err := b.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, memberLabel(p.Member))
		p.Member.AddTraffic(200, 29)
		p.Member.Release()
	}
	wantSeq(t, "bytraffic", got, words("b1 b2 b2 b1 b2 b2 b1 b2 b2"))
	wantLBStatus(t, b, "bytraffic", words("b1 b2"), []int64{0, 0})
	if s := stateOf(t, b, "b1"); s.Transfer != 600 || s.Read != 87 {
		t.Errorf("b1 transferred %d read %d, want 600 87", s.Transfer, s.Read)
	}
	if s := stateOf(t, b, "b2"); s.Transfer != 1200 || s.Read != 174 {
		t.Errorf("b2 transferred %d read %d, want 1200 174", s.Transfer, s.Read)
	}

	// traffic = transferred/lbfactor + read/lbfactor, each divided separately:
	// b1 150/100 + 150/100 = 2, b2 299/100 + 0 = 2: a tie, the first wins
	// (the sum divided once would give b1 3).
	b = newTestBalancer(t, Config{LBMethod: "bytraffic", ForceRecovery: true, Members: []MemberConfig{
		cfgLF(t, "b1", 100), cfgLF(t, "b2", 100),
	}}, nil)
	memberByLabel(t, b, "b1").AddTraffic(150, 150)
	memberByLabel(t, b, "b2").AddTraffic(299, 0)
	wantSeq(t, "bytraffic integer division", pickN(t, b, 1, nil), words("b1"))

	// No traffic counted: always the first member (ties keep the earlier one).
	b = newTestBalancer(t, Config{LBMethod: "bytraffic", ForceRecovery: true, Members: []MemberConfig{
		cfgLF(t, "b1", 100), cfgLF(t, "b2", 200),
	}}, nil)
	wantSeq(t, "bytraffic without traffic", pickN(t, b, 3, nil), words("b1 b1 b1"))
}
