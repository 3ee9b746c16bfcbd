package balancer

import (
	"strconv"
	"strings"
	"time"
)

// Read-only views of a balancer and its members, for the manager, the JSON
// API, metrics, tests and persistence, each taken under one lock, and the
// member lookups (by URL as httpd's manager finds them, by name, by route).

// MemberState is a point-in-time view of a member, for the manager, the JSON
// API, tests and persistence.
type MemberState struct {
	Name       string `json:"name"`
	LoadFactor int    `json:"loadfactor"` // ×100
	// EffectiveLoadFactor is the weight the lbmethods use now, ×100: the
	// loadfactor, or less while the member ramps up (slowstart.go).
	EffectiveLoadFactor int `json:"effective_loadfactor"`
	// SlowStart is the member's slow-start window (its own or the
	// balancer's), 0 if none; SlowStartEnds is when its ramp ends, zero if
	// it is not ramping.
	SlowStart     time.Duration `json:"slowstart,omitempty"`
	SlowStartEnds time.Time     `json:"slowstart_ends,omitzero"`
	LBSet         int           `json:"lbset"`
	Route         string        `json:"route"`
	Redirect      string        `json:"redirect"`
	Status        Status        `json:"-"`
	LBStatus      int64         `json:"lbstatus"`
	Elected       int64         `json:"elected"`
	Busy          int64         `json:"busy"`
	Transfer      int64         `json:"transferred"`
	Read          int64         `json:"read"`
	Retries       int64         `json:"retries"`
	ErrorTime     time.Time     `json:"error_time,omitzero"`
	Retry         time.Duration `json:"retry"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	Dynamic       bool          `json:"dynamic,omitempty"`
	HC            HealthCheck   `json:"hc"`
	PCount        int           `json:"pcount"`
	FCount        int           `json:"fcount"`
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
	s.EffectiveLoadFactor, s.SlowStartEnds = m.effectiveLocked()
	s.SlowStart = m.b.slowStartLocked(m)
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

// MemberView is what the manager and the JSON API show of a member: its
// state plus the parts of its URL and which parameters were configured.
type MemberView struct {
	MemberState
	Scheme   string
	Hostname string
	Port     int
	Path     string
	// RetrySet and TimeoutSet: retry and timeout were configured (the XML
	// shows them only then).
	RetrySet   bool
	TimeoutSet bool
	// Config is the member's configuration (zero for members added at run time
	// beyond their URL).
	Config MemberConfig
}

// View is a consistent picture of a balancer for the manager and the API,
// taken under one lock.
type View struct {
	Name            string
	LBMethod        string
	StickySession   string // cookie name, "" if none
	StickyPath      string // URL parameter name
	StickySeparator byte
	SColonPathDelim bool
	NoFailover      bool
	Timeout         time.Duration
	// MaxAttempts as shown by httpd's manager (s->max_attempts), and whether it
	// is in force (configured, or defaulted because the balancer was configured
	// with more than one member).
	MaxAttempts    int
	MaxAttemptsSet bool
	ForceRecovery  bool
	FailOnStatus   []int
	FailOnTimeout  bool
	Growth         int
	// SlowStart is the balancer's slow-start window, 0 if none.
	SlowStart  time.Duration
	MaxMembers int
	Nonce      string
	Members    []MemberView
	// Durability is where run-time changes are kept.
	Durability Durability
}

// FreeSlots is the number of members that can still be added.
func (v View) FreeSlots() int {
	if n := v.MaxMembers - len(v.Members); n > 0 {
		return n
	}
	return 0
}

// View returns the balancer's parameters and every member's state.
func (b *Balancer) View() View {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := View{
		Name: b.name, LBMethod: b.method.Name(), StickySession: b.sticky, StickyPath: b.stickyPath,
		StickySeparator: b.sep, SColonPathDelim: b.scolon, NoFailover: b.nofailover, Timeout: b.timeout,
		MaxAttempts: b.maxAttempts, MaxAttemptsSet: b.maxAttemptsSetLocked(), ForceRecovery: b.forceRecovery,
		FailOnStatus: append([]int(nil), b.failOnStatus...), FailOnTimeout: b.failOnTimeout,
		Growth: b.growth, SlowStart: b.cfg.SlowStart, MaxMembers: b.maxMembers, Nonce: b.nonce, Durability: b.Durability(),
	}
	if !v.MaxAttemptsSet {
		v.MaxAttempts = max(b.shownMaxAttempts, 0)
	}
	if len(b.members) > v.MaxMembers {
		v.MaxMembers = len(b.members)
	}
	v.Members = make([]MemberView, len(b.members))
	for i, m := range b.members {
		v.Members[i] = m.viewLocked()
	}
	return v
}

func (m *Member) viewLocked() MemberView {
	port, _ := strconv.Atoi(m.port)
	return MemberView{
		MemberState: m.stateLocked(), Scheme: m.scheme, Hostname: m.hostname, Port: port, Path: m.path,
		RetrySet: m.cfg.Retry != nil, TimeoutSet: m.cfg.Timeout != 0, Config: m.cfg,
	}
}

// View returns the member's view.
func (m *Member) View() MemberView {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.viewLocked()
}

// Nonce is the balancer-manager nonce; empty means the manager is read-only
// for this balancer (nonce=None).
func (b *Balancer) Nonce() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nonce
}

// LBMethod is the name of the lbmethod in force.
func (b *Balancer) LBMethod() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.method.Name()
}

// FindMember returns the member whose name is the longest prefix of url, as
// ap_proxy_get_worker does for the manager's w parameter: the scheme://host:port
// part of url is lower-cased first, and the member's name must cover at least
// that part. nil if none matches.
func (b *Balancer) FindMember(url string) *Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.findMemberLocked(url)
}

func (b *Balancer) findMemberLocked(url string) *Member {
	c := strings.IndexByte(url, ':')
	if c < 0 || !strings.HasPrefix(url[c:], "://") || len(url) == c+3 {
		return nil
	}
	hostEnd := len(url)
	if p := strings.IndexByte(url[c+3:], '/'); p >= 0 {
		hostEnd = c + 3 + p
	}
	u := strings.ToLower(url[:hostEnd]) + url[hostEnd:]
	minMatch := hostEnd
	var best *Member
	bestLen := 0
	for _, m := range b.members {
		n := len(m.name)
		if n <= len(u) && n >= minMatch && n > bestLen && u[:n] == m.name {
			best, bestLen = m, n
		}
	}
	return best
}

// FindMemberByRoute returns the first member with that route, nil if none.
func (b *Balancer) FindMemberByRoute(route string) *Member {
	if route == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.members {
		if m.route == route {
			return m
		}
	}
	return nil
}

// FindMemberByName returns the member with exactly that (normalized) name.
func (b *Balancer) FindMemberByName(name string) *Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memberByNameLocked(name)
}

func (b *Balancer) memberByNameLocked(name string) *Member {
	for _, m := range b.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// Durability says where the balancer's run-time changes are kept besides
// memory, as the balancer's owner reports it (UpdateDurability): the manager
// page, the JSON API and the metrics show it.
type Durability struct {
	// Persist: run-time changes are written to storage (persist on, httpd's
	// BalancerPersist).
	Persist bool
	// PersistError is the error of the last write if it failed; empty once a
	// write succeeds. PersistErrorTime is when it failed; PersistFailures
	// counts the failed writes since the balancer was created.
	PersistError     string
	PersistErrorTime time.Time
	PersistFailures  int64
	// Fleet is the state of the fleet sync, nil if the balancer is not shared.
	Fleet *FleetState
}

// FleetState is the fleet sync's state for one balancer.
type FleetState struct {
	// Store names the shared store: "redis" or "storage".
	Store string
	// Node is this node's ID in the fleet.
	Node string
	// Connected: the store answered the last time it was used.
	Connected bool
	// Pending counts changes made on this node that the store has not taken
	// yet (they are published when it is back, unless a newer write won).
	Pending int
	// LastSync is when this node last read or wrote the store successfully.
	LastSync time.Time
	// LastError is the store's last error while not connected.
	LastError string
}

// UpdateDurability changes where the balancer's run-time changes are kept,
// as its owner reports it, with fn (atomically with respect to other
// updates).
func (b *Balancer) UpdateDurability(fn func(*Durability)) {
	for {
		old := b.durability.Load()
		d := Durability{}
		if old != nil {
			d = *old
		}
		fn(&d)
		if b.durability.CompareAndSwap(old, &d) {
			return
		}
	}
}

// Warnings are what a run-time change's answer tells about where the change
// is kept: empty when it is persisted (or persistence is off) and shared
// (or there is no fleet).
func (d Durability) Warnings() []string {
	var w []string
	if d.Persist && d.PersistError != "" {
		w = append(w, "the change is in force but was not persisted: "+d.PersistError)
	}
	if f := d.Fleet; f != nil && f.Pending > 0 {
		w = append(w, "the change is in force on this node but not yet shared with the fleet: "+f.LastError)
	}
	return w
}

// Durability returns what UpdateDurability recorded last.
func (b *Balancer) Durability() Durability {
	if d := b.durability.Load(); d != nil {
		return *d
	}
	return Durability{}
}
