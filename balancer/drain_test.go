package balancer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Drain to empty (drain.go): WaitDrained and the OnDrained hook.

// holdPicks makes n selections and keeps them in flight; they must all go
// to member want.
func holdPicks(t *testing.T, b *Balancer, req *Request, n int, want string) []*Member {
	t.Helper()
	var held []*Member
	for i := 0; i < n; i++ {
		p, err := b.Pick(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if memberLabel(p.Member) != want {
			t.Fatalf("selection %d went to %s, want %s", i, memberLabel(p.Member), want)
		}
		held = append(held, p.Member)
	}
	return held
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// drainBalancer is members a (route ra) and b (route rb, lbset 1, so that
// non-sticky requests go to a while it is usable).
func drainBalancer(t *testing.T) *Balancer {
	return newTestBalancer(t, Config{ForceRecovery: true, StickySession: "ROUTEID", StickyPath: "ROUTEID",
		StickySeparator: '.', Members: []MemberConfig{{URL: "http://a", Route: "ra"}, {URL: "http://b", Route: "rb", LBSet: 1}}}, nil)
}

// TestWaitDrained: a draining member with requests in flight is not drained
// (the count is reported), becomes drained when its last request ends and
// wakes a waiter then; clearing N wakes the waiter with ErrNotDraining.
func TestWaitDrained(t *testing.T) {
	b := drainBalancer(t)
	a := memberByLabel(t, b, "a")
	held := holdPicks(t, b, nil, 2, "a")

	if n, err := a.WaitDrained(canceled()); !errors.Is(err, ErrNotDraining) || n != 2 {
		t.Fatalf("not draining: %d, %v; want 2, ErrNotDraining", n, err)
	}
	setFlags(t, b, "a", "+N")
	if got := pickN(t, b, 3, nil); got[0] != "b" || got[1] != "b" || got[2] != "b" {
		t.Fatalf("non-sticky requests while a drains went to %v", got)
	}
	if n, err := a.WaitDrained(canceled()); !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("two in flight: %d, %v; want 2, context.Canceled", n, err)
	}
	// A sticky request still reaches a, and counts.
	held = append(held, holdPicks(t, b, &Request{URL: "balancer://test/", Cookie: "ROUTEID=.ra"}, 1, "a")...)

	done := make(chan error, 1)
	go func() {
		_, err := a.WaitDrained(context.Background())
		done <- err
	}()
	waitFor(t, "the waiter to block", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return a.drainCh != nil
	})
	held[0].Release()
	held[1].Release()
	select {
	case err := <-done:
		t.Fatalf("drained with a request in flight: %v", err)
	default:
	}
	held[2].Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drained: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken when the last request ended")
	}
	if n, err := a.WaitDrained(canceled()); err != nil || n != 0 {
		t.Fatalf("drained, asked again: %d, %v", n, err)
	}

	// N cleared during a wait.
	held = holdPicks(t, b, &Request{URL: "balancer://test/", Cookie: "ROUTEID=.ra"}, 1, "a")
	go func() {
		_, err := a.WaitDrained(context.Background())
		done <- err
	}()
	waitFor(t, "the waiter to block", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return a.drainCh != nil
	})
	setFlags(t, b, "a", "-N")
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotDraining) {
			t.Fatalf("N cleared: %v, want ErrNotDraining", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken when N was cleared")
	}
	held[0].Release()
}

// TestWaitDrainedBusynessReset: switching to bybusyness zeroes the busy
// counts as httpd does; a draining member is then empty and its waiter is
// woken.
func TestWaitDrainedBusynessReset(t *testing.T) {
	b := drainBalancer(t)
	a := memberByLabel(t, b, "a")
	holdPicks(t, b, nil, 2, "a")
	setFlags(t, b, "a", "+N")
	done := make(chan error, 1)
	go func() {
		_, err := a.WaitDrained(context.Background())
		done <- err
	}()
	waitFor(t, "the waiter to block", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return a.drainCh != nil
	})
	m := "bybusyness"
	if _, err := b.Apply(Edit{LBMethod: &m}, ReasonAPI); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken by the busy reset")
	}
}

// TestOnDrained: the hook is told, outside the balancer's lock, when a
// draining member's last request ends, and when N is set on an idle member;
// once until the member is given another request.
func TestOnDrained(t *testing.T) {
	b := drainBalancer(t)
	var (
		mu     sync.Mutex
		events []string
	)
	b.SetOnDrained(func(m *Member) {
		if !b.mu.TryLock() {
			t.Error("OnDrained called with the balancer's lock held")
		} else {
			b.mu.Unlock()
		}
		mu.Lock()
		events = append(events, memberLabel(m))
		mu.Unlock()
	})
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), events...)
	}
	held := holdPicks(t, b, nil, 2, "a")
	setFlags(t, b, "a", "+N")
	held[0].Release()
	if got := seen(); len(got) != 0 {
		t.Fatalf("events with a request in flight: %v", got)
	}
	held[1].Release()
	if got := seen(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after the last request: %v, want [a]", got)
	}
	setFlags(t, b, "a", "+D") // another change, still drained: no new event
	setFlags(t, b, "a", "-D")
	if got := seen(); len(got) != 1 {
		t.Fatalf("a flag change on a drained member: %v", got)
	}
	sticky := &Request{URL: "balancer://test/", Cookie: "ROUTEID=.ra"}
	holdPicks(t, b, sticky, 1, "a")[0].Release()
	if got := seen(); len(got) != 2 {
		t.Fatalf("after a sticky request ended: %v, want a second event", got)
	}
	setFlags(t, b, "b", "+N") // idle: drained at once
	if got := seen(); len(got) != 3 || got[2] != "b" {
		t.Fatalf("N on an idle member: %v", got)
	}
}

// waitFor polls cond until it holds, failing after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
