package balancer

import (
	"slices"
	"time"
)

// Slow start (slowstart, an extension: httpd has none). A member that
// becomes usable again after being in error (E), failing its health checks
// (C), disabled (D) or stopped (S), or that is added at run time and usable,
// does not get its whole share of the requests at once: over its slow-start
// window its weight, the lbfactor the lbmethods use, grows linearly from
// minWeight to its lbfactor, as HAProxy's slowstart and NGINX Plus's
// slow_start grow a server's weight. A member ramps only on such a change
// made while the balancer runs: not when the balancer starts, nor when its
// saved state is restored.
//
// The balancer keeps a list of its ramping members (Balancer.rampers; it
// may hold members whose ramp has ended until the next selection drops
// them). A selection looks at its length first: while it is 0 the chooser
// runs as without slow start and reads no clock. Otherwise the selection
// reads the clock once, brings each ramping member's weight up to date
// (refreshRampsLocked, which also ends the ramps whose window has passed)
// and runs the lbmethods' slow-start comparisons (lbmethod.go), which use
// the weights. What a member's share is, per lbmethod:
//
//   - byrequests: a member adds its weight to its lbstatus at each
//     selection, so its share of the (non-sticky) requests is its weight
//     over the sum of the weights of the members competing.
//   - bybusyness: a ramping member's requests in flight count as busy ×
//     lbfactor / weight, so it holds weight/lbfactor of what a peer holds;
//     ties are broken as byrequests breaks them, with the weights. Requests
//     that come one at a time (every member idle) are shared as byrequests
//     shares them.
//   - bytraffic: a ramping member's traffic starts at that of its
//     least-loaded peer and grows by the bytes it moves, each divided by its
//     weight at the time, so its share of the bytes is its weight over the
//     sum of the weights. Without this, a member that comes back with fewer
//     bytes counted than its peers would take every request until its count
//     caught up (httpd's bytraffic does just that). When the ramp ends the
//     offset is kept (trafficBias), so there is no catch-up then either.
//
// At the start of a ramp the member's lbstatus is set to 0, so that what it
// held when it left (byrequests' and bybusyness' bookkeeping stops for an
// unusable member) neither speeds up nor delays its ramp.

// minWeight is a member's weight at the start of its ramp: the smallest
// lbfactor (loadfactor 0.01), so that the member is in rotation at once.
const minWeight = 1

// rampState is a member's slow start; guarded by the balancer's lock. The
// weight itself is Member.rampWeight, next to the fields the chooser reads.
type rampState struct {
	start  int64 // unix nanoseconds; 0: not ramping
	window int64 // nanoseconds
	// norm is the member's bytraffic traffic during the ramp; raw the bytes
	// (to + from) already counted into norm.
	norm, raw int64
}

// rampWeight is the weight of a member of lbfactor lf, elapsed nanoseconds
// into a ramp of window nanoseconds: lf × elapsed / window, at least
// minWeight, lf once the window has passed.
func rampWeight(lf int, elapsed, window int64) int {
	if elapsed >= window {
		return lf
	}
	if elapsed <= 0 {
		return minWeight
	}
	return max(int(int64(lf)*elapsed/window), minWeight)
}

// slowStartLocked is the slow-start window of m: its own, else the
// balancer's.
func (b *Balancer) slowStartLocked(m *Member) time.Duration {
	if m.cfg.SlowStart != nil {
		return *m.cfg.SlowStart
	}
	return b.cfg.SlowStart
}

// rampOnChange starts m's ramp when a status change made it usable again
// after E, C, D or S, and ends it when a change made it unusable. Caller
// holds the lock.
func (b *Balancer) rampOnChange(m *Member, old Status, reason string) {
	switch {
	case m.ramp.start != 0 && !m.status.Usable():
		m.endRamp() // the next selection drops it from the rampers
	case m.ramp.start == 0 && m.status.Usable() && !old.Usable() &&
		old&(InError|HCFail|Disabled|Stopped) != 0 && reason != ReasonRestore:
		b.startRampLocked(m)
	}
}

// startRampLocked starts m's ramp now, if it has a slow-start window.
// Caller holds the lock.
func (b *Balancer) startRampLocked(m *Member) {
	w := b.slowStartLocked(m)
	if w <= 0 {
		return
	}
	now := b.Now().UnixNano()
	if now <= 0 {
		now = 1 // 0 means "not ramping"
	}
	if m.ramp.start == 0 && !slices.Contains(b.rampers, m) {
		b.rampers = append(b.rampers, m)
	}
	m.ramp = rampState{start: now, window: int64(w), raw: m.transfer.Load() + m.read.Load(), norm: b.peerTrafficLocked(m)}
	m.rampWeight = minWeight
	m.lbstatus = 0
}

// peerTrafficLocked is where a ramping member's bytraffic traffic starts:
// its own, or that of the least-loaded usable peer in its lbset if that is
// more.
func (b *Balancer) peerTrafficLocked(m *Member) int64 {
	own := traffic(m)
	least, found := int64(0), false
	for _, x := range b.members {
		if x == m || x.lbset != m.lbset || !x.isUsable() || x.status&Drain != 0 {
			continue
		}
		if t := currentTraffic(x); !found || t < least {
			least, found = t, true
		}
	}
	if found && least > own {
		return least
	}
	return own
}

// refreshRampsLocked brings the weights of the ramping members up to the
// time of the selection, ends the ramps whose window has passed and drops
// the members that no longer ramp from the list. It reports whether any
// member still ramps. Caller holds the lock; it reads the clock (once per
// selection).
func (b *Balancer) refreshRampsLocked(now *clock) bool {
	t := now.unixNano()
	keep := b.rampers[:0]
	for _, m := range b.rampers {
		r := &m.ramp
		if r.start == 0 {
			continue // ended by a status change
		}
		m.countRampTraffic()
		if t-r.start >= r.window {
			m.endRamp()
			continue
		}
		m.rampWeight = rampWeight(m.lbfactor, t-r.start, r.window)
		keep = append(keep, m)
	}
	clear(b.rampers[len(keep):])
	b.rampers = keep
	return len(keep) > 0
}

// dropRampersLocked drops from the list the ramping members that are no
// longer members (removed at run time, or by a reload). Caller holds the
// lock.
func (b *Balancer) dropRampersLocked() {
	keep := b.rampers[:0]
	for _, m := range b.rampers {
		if slices.Contains(b.members, m) {
			keep = append(keep, m)
		}
	}
	clear(b.rampers[len(keep):])
	b.rampers = keep
}

// countRampTraffic adds the bytes m moved since the last count, divided by
// its weight, to its ramp traffic; a remainder is kept for the next count.
func (m *Member) countRampTraffic() {
	r := &m.ramp
	w := int64(max(m.rampWeight, minWeight))
	if d := m.transfer.Load() + m.read.Load() - r.raw; d >= w {
		q := d / w
		r.norm += q
		r.raw += q * w
	}
}

// endRamp ends m's ramp: from now on its weight is its lbfactor, and
// bytraffic goes on from the traffic the ramp reached.
func (m *Member) endRamp() {
	m.countRampTraffic()
	f := int64(m.lbfactor)
	m.trafficBias = m.ramp.norm - (m.transfer.Load()/f + m.read.Load()/f)
	m.ramp = rampState{}
	m.rampWeight = 0
}

// weight is the lbfactor the lbmethods use for m while a member of its
// balancer ramps: its ramp weight, or its lbfactor. Caller holds the lock.
func (m *Member) weight() int {
	if m.rampWeight != 0 {
		return m.rampWeight
	}
	return m.lbfactor
}

// currentTraffic is m's bytraffic traffic: its ramp traffic while it
// ramps. Caller holds the lock.
func currentTraffic(m *Member) int64 {
	if m.rampWeight != 0 {
		return m.ramp.norm
	}
	return traffic(m)
}

// effectiveLocked is m's weight at time now (read only if m ramps), for
// the views, and when its ramp ends (zero if it does not ramp).
func (m *Member) effectiveLocked() (weight int, ends time.Time) {
	r := m.ramp
	if r.start == 0 {
		return m.lbfactor, time.Time{}
	}
	t := m.b.Now().UnixNano()
	if t-r.start >= r.window {
		return m.lbfactor, time.Time{} // over; the next selection ends it
	}
	return rampWeight(m.lbfactor, t-r.start, r.window), time.Unix(0, r.start+r.window)
}

// SetClock replaces the balancer's clock (Now) under its lock, for tests
// that step time while requests run.
func (b *Balancer) SetClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Now = now
}
