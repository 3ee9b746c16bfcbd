package balancer

import "time"

// MemberState is a point-in-time view of a member, for the manager, the JSON
// API, tests and persistence.
type MemberState struct {
	Name       string        `json:"name"`
	LoadFactor int           `json:"loadfactor"` // ×100
	LBSet      int           `json:"lbset"`
	Route      string        `json:"route"`
	Redirect   string        `json:"redirect"`
	Status     Status        `json:"-"`
	LBStatus   int64         `json:"lbstatus"`
	Elected    int64         `json:"elected"`
	Busy       int64         `json:"busy"`
	Transfer   int64         `json:"transferred"`
	Read       int64         `json:"read"`
	Retries    int64         `json:"retries"`
	ErrorTime  time.Time     `json:"error_time,omitzero"`
	Retry      time.Duration `json:"retry"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	Dynamic    bool          `json:"dynamic,omitempty"`
	HC         HealthCheck   `json:"hc"`
	PCount     int           `json:"pcount"`
	FCount     int           `json:"fcount"`
}

// State returns the member's current state.
func (m *Member) State() MemberState {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.stateLocked()
}

func (m *Member) stateLocked() MemberState {
	s := MemberState{
		Name: m.name, LoadFactor: m.lbfactor, LBSet: m.lbset, Route: m.route, Redirect: m.redirect,
		Status: m.status, LBStatus: m.lbstatus, Elected: m.elected.Load(), Busy: m.busy.Load(),
		Transfer: m.transfer.Load(), Read: m.read.Load(), Retries: m.retries.Load(),
		Retry: m.retry, Timeout: m.timeout, Dynamic: m.dynamic, HC: m.hc, PCount: m.pcount, FCount: m.fcount,
	}
	if t := m.errorTime.Load(); t != 0 {
		s.ErrorTime = time.Unix(0, t)
	}
	return s
}

// States returns every member's state, taken under one lock so they agree.
func (b *Balancer) States() []MemberState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]MemberState, len(b.members))
	for i, m := range b.members {
		out[i] = m.stateLocked()
	}
	return out
}
