package balancer

import "sync/atomic"

// Reasons for a member's status change, passed to the OnStatusChange hook.
const (
	ReasonManager        = "manager"         // balancer-manager form
	ReasonAPI            = "api"             // JSON admin API
	ReasonHealthCheck    = "healthcheck"     // mod_proxy_hcheck state machine
	ReasonConnectFailure = "connect_failure" // connection to the member failed (E set)
	ReasonRetry          = "retry"           // retry period over, E lifted on examination
	ReasonForcedRecovery = "forced_recovery" // every member in error, E lifted on all
	ReasonFailOnStatus   = "failonstatus"    // response status listed in failonstatus
	ReasonFailOnTimeout  = "failontimeout"   // member timed out with failontimeout on
	ReasonRestore        = "restore"         // saved state restored at start (persist)
	ReasonFleet          = "fleet"           // a change made on another node of the fleet
)

// StatusChangeFunc is told about a member's status change: its flags before
// and after, and why (one of the Reason constants). It is called after the
// balancer's lock has been released, in the goroutine that made the change,
// so it may call the balancer's methods.
type StatusChangeFunc func(m *Member, old, new Status, reason string)

// StatusChange is one recorded change, waiting to be reported.
type StatusChange struct {
	Member   *Member
	Old, New Status
	Reason   string
}

// EditFunc is told about every edit Apply made, with its reason, after the
// balancer's lock has been released, in the goroutine that applied it. The
// edit is as applied: names of removed members normalized, health-check
// settings canonical.
type EditFunc func(b *Balancer, e Edit, reason string)

// DrainedFunc is told that a draining member (N) has no request in flight:
// its last request ended, or N was set while it had none. It is told again
// only after the member was given another request (a sticky one) or N was
// cleared and set again. It is called after the balancer's lock has been
// released, in the goroutine that ended the request or set N.
type DrainedFunc func(m *Member)

// eventState is the balancer's part of status-change reporting: the hooks and
// the changes made in the current locked section (guarded by the balancer's mu).
type eventState struct {
	hook      atomic.Pointer[StatusChangeFunc]
	editHook  atomic.Pointer[EditFunc]
	drainHook atomic.Pointer[DrainedFunc]
	pending   []StatusChange
	edits     []editEvent
	drained   []*Member
}

type editEvent struct {
	e      Edit
	reason string
}

// SetOnEdit installs fn (nil removes it) as the balancer's OnEdit hook.
func (b *Balancer) SetOnEdit(fn EditFunc) {
	if fn == nil {
		b.ev.editHook.Store(nil)
		return
	}
	b.ev.editHook.Store(&fn)
}

// noteEdit records an applied edit for the OnEdit hook. Caller holds the lock
// and must release it with unlock.
func (b *Balancer) noteEdit(e Edit, reason string) {
	if b.ev.editHook.Load() == nil {
		return
	}
	b.ev.edits = append(b.ev.edits, editEvent{e, reason})
}

// SetOnStatusChange installs fn (nil removes it) as the balancer's
// OnStatusChange hook: it is called after every change of a member's status
// flags made by the engine, with the reason. Safe to call at any time.
func (b *Balancer) SetOnStatusChange(fn StatusChangeFunc) {
	if fn == nil {
		b.ev.hook.Store(nil)
		return
	}
	b.ev.hook.Store(&fn)
}

// SetOnDrained installs fn (nil removes it) as the balancer's OnDrained hook.
func (b *Balancer) SetOnDrained(fn DrainedFunc) {
	if fn == nil {
		b.ev.drainHook.Store(nil)
		return
	}
	b.ev.drainHook.Store(&fn)
}

// noteDrained records that m, draining, has emptied, for the OnDrained hook.
// Caller holds the lock and must release it with unlock.
func (b *Balancer) noteDrained(m *Member) {
	if b.ev.drainHook.Load() == nil {
		return
	}
	b.ev.drained = append(b.ev.drained, m)
}

// noteChange is called after every change of a member's status flags made
// by the engine: it keeps what depends on the flags in step (the drain
// mirror and its waiters, drain.go; slow start, slowstart.go) and records
// the change for the OnStatusChange hook. Caller holds the lock and must
// release it with unlock. It costs nothing when nothing changed.
func (b *Balancer) noteChange(m *Member, old Status, reason string) {
	if m.status == old {
		return
	}
	b.drainOnChange(m, old)
	b.rampOnChange(m, old, reason)
	if b.ev.hook.Load() == nil {
		return
	}
	b.ev.pending = append(b.ev.pending, StatusChange{Member: m, Old: old, New: m.status, Reason: reason})
}

// unlock releases the balancer's lock, then reports the changes recorded while
// it was held.
func (b *Balancer) unlock() {
	if len(b.ev.pending) == 0 && len(b.ev.edits) == 0 && len(b.ev.drained) == 0 {
		b.mu.Unlock()
		return
	}
	changes, edits, drained := b.ev.pending, b.ev.edits, b.ev.drained
	b.ev.pending, b.ev.edits, b.ev.drained = nil, nil, nil
	b.mu.Unlock()
	b.fire(changes)
	if fn := b.ev.editHook.Load(); fn != nil {
		for _, ev := range edits {
			(*fn)(b, ev.e, ev.reason)
		}
	}
	if fn := b.ev.drainHook.Load(); fn != nil {
		for _, m := range drained {
			(*fn)(m)
		}
	}
}

func (b *Balancer) fire(changes []StatusChange) {
	fn := b.ev.hook.Load()
	if fn == nil {
		return
	}
	for _, c := range changes {
		(*fn)(c.Member, c.Old, c.New, c.Reason)
	}
}
