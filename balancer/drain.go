package balancer

import (
	"context"
	"errors"
)

// Drain to empty (an extension of httpd's N flag). A draining member (N) is
// never chosen by the chooser; only sticky requests for its route still
// reach it (docs/behaviour.md §3.3, §4.6). A script that drains a member
// before stopping it needs to know when the requests it already has are
// over: WaitDrained returns when the member is draining and its in-flight
// count (httpd's Busy) is 0.
//
// The count is raised under the balancer's lock for every request a member
// is given (Pick), so once N is set no selection made before it can still
// hand the member a request. It is lowered by Release without the lock; the
// release that takes a draining member to 0 (the member's draining flag, an
// atomic mirror of N, is read only then) takes the lock to wake the waiters
// and record the OnDrained event, which is fired after the lock is released.

// ErrNotDraining is returned by WaitDrained when the member's N flag is not
// set, or was cleared while waiting.
var ErrNotDraining = errors.New("member is not draining (its N flag is not set)")

// WaitDrained waits until the member is draining (N) with no request in
// flight, and returns nil; or until ctx is done, and returns the requests
// still in flight and ctx's error; or until N is cleared, and returns
// ErrNotDraining. A member already drained returns nil at once, whatever
// ctx. The in-flight count is httpd's Busy: switching the lbmethod to
// bybusyness zeroes it, as in httpd.
func (m *Member) WaitDrained(ctx context.Context) (inFlight int64, err error) {
	b := m.b
	for {
		b.mu.Lock()
		n := m.busy.Load()
		if m.status&Drain == 0 {
			b.mu.Unlock()
			return n, ErrNotDraining
		}
		if n <= 0 {
			b.mu.Unlock()
			return 0, nil
		}
		if m.drainCh == nil {
			m.drainCh = make(chan struct{})
		}
		ch := m.drainCh
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return m.busy.Load(), ctx.Err()
		}
	}
}

// emptied is called by Release when it took a draining member's in-flight
// count to 0.
func (b *Balancer) emptied(m *Member) {
	b.mu.Lock()
	b.checkDrainedLocked(m)
	b.unlock()
}

// checkDrainedLocked wakes the waiters of m and records the OnDrained event
// if m is draining with no request in flight; the event is recorded once
// until m is given another request. Caller holds the lock and must release
// it with unlock.
func (b *Balancer) checkDrainedLocked(m *Member) {
	if m.status&Drain == 0 || m.busy.Load() > 0 {
		return
	}
	if m.drainCh != nil {
		close(m.drainCh)
		m.drainCh = nil
	}
	// elected counts every request the member was given (under the lock).
	if e := m.elected.Load() + 1; m.drainSeen != e {
		m.drainSeen = e
		b.noteDrained(m)
	}
}

// drainOnChange keeps the draining mirror in step with N: setting N on an
// idle member drains it at once; clearing N wakes the waiters, who return
// ErrNotDraining. Caller holds the lock.
func (b *Balancer) drainOnChange(m *Member, old Status) {
	on := m.status&Drain != 0
	if on == (old&Drain != 0) {
		return
	}
	m.draining.Store(on)
	if on {
		b.checkDrainedLocked(m)
		return
	}
	m.drainSeen = 0
	if m.drainCh != nil {
		close(m.drainCh)
		m.drainCh = nil
	}
}
