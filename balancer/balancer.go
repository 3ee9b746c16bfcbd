// Package balancer is the load-balancing engine of caddy-balancer: httpd 2.4's
// mod_proxy_balancer (members, status flags, lbsets, hot spares and standbys,
// the lbmethods, sticky routes, error and retry state) in plain Go, with no
// Caddy import.
package balancer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is a balancer's configuration, httpd's ProxySet keys and its members.
type Config struct {
	// Name of the balancer without "balancer://"; lower-cased.
	Name string
	// LBMethod is byrequests (default), bytraffic or bybusyness.
	LBMethod string
	// StickySession is the cookie name; StickyPath the URL parameter name
	// (stickysession=COOKIE|PARAM). Empty: no sticky sessions.
	StickySession string
	StickyPath    string
	// StickySeparator cuts the route from the session value; 0 means Off
	// (the whole value is the route). httpd's default is '.'.
	StickySeparator byte
	// SColonPathDelim makes ';' a delimiter of URL session values.
	SColonPathDelim bool
	// NoFailover: a sticky request whose member is unusable gets 503.
	NoFailover bool
	// MaxAttempts is the failover limit when MaxAttemptsSet; otherwise it
	// defaults to members−1 when there is more than one member.
	MaxAttempts    int
	MaxAttemptsSet bool
	// Timeout: how long to wait for a usable member before answering 503.
	Timeout time.Duration
	// ForceRecovery: when every member is in error, lift E on all (default on).
	ForceRecovery bool
	// FailOnStatus: member response codes that put the member in error.
	FailOnStatus []int
	// FailOnTimeout: a read timeout puts the member in error.
	FailOnTimeout bool
	// Growth: free member slots for members added at run time.
	Growth int
	// GrowthAllow limits the members added at run time to these hosts: host
	// names, IP addresses or CIDR ranges (growth_allow). Empty: any host.
	GrowthAllow []string
	// SlowStart is the window over which a member that becomes usable again,
	// or is added at run time, ramps up to its loadfactor (slowstart.go); 0
	// is off. A member's own MemberConfig.SlowStart overrides it.
	SlowStart time.Duration
	// Nonce of the balancer-manager; empty with NonceSet means read-only (None).
	Nonce    string
	NonceSet bool
	// Members in configuration order.
	Members []MemberConfig
}

// Balancer is one balancer://name. All selection state is guarded by mu, the
// one lock per balancer that httpd also takes.
type Balancer struct {
	mu sync.Mutex

	name    string
	cfg     Config
	members []*Member
	method  Method

	sticky, stickyPath string
	sep                byte
	scolon             bool
	nofailover         bool
	maxAttempts        int
	timeout            time.Duration
	forceRecovery      bool
	failOnStatus       []int
	failOnTimeout      bool
	growth             int
	allow              allowList // growth_allow
	maxMembers         int
	nonce              string

	// ev holds the OnStatusChange, OnEdit and OnDrained hooks and what they
	// are to be told (events.go).
	ev eventState
	// rampers are the members in slow start (slowstart.go); it may hold
	// members whose ramp has ended until the next selection drops them.
	rampers []*Member

	// runtimeParams holds the balancer parameters after the last run-time
	// edit of one of them, nil if none was edited: a reload with unchanged
	// configured parameters keeps them (Reconfigure).
	runtimeParams *SnapshotParams
	// shownMaxAttempts is the maxattempts shown (and persisted) but not in
	// force, httpd's b_max on a balancer whose max_attempts is not set; -1
	// if none was given (docs/behaviour.md §7.3).
	shownMaxAttempts int
	// policy is the check of members added at run time (SetMemberPolicy).
	policy atomic.Pointer[func(MemberAddress) error]
	// durability is where run-time changes are kept (SetDurability).
	durability atomic.Pointer[Durability]

	// Copies of settings that the request path reads without the lock; they
	// are written under the lock by configure.
	stickyName atomic.Pointer[string] // sticky, the cookie name
	postCheck  atomic.Bool            // failonstatus or failontimeout is set

	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Errors returned by Pick; both are a 503 for the client.
var (
	// ErrNoMember is AH01170/AH01171: no usable member.
	ErrNoMember = errors.New("all workers are in error state")
	// ErrNoFailover is AH01167: nofailover is on and the route's member is unusable.
	ErrNoFailover = errors.New("all workers are in error state for route")
)

// New builds a balancer from its configuration.
func New(cfg Config) (*Balancer, error) {
	b := &Balancer{Now: time.Now, shownMaxAttempts: -1}
	if err := b.configure(cfg, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// configure applies cfg. With old members given (a reload of a balancer of the
// same name), a member whose configuration is unchanged keeps its run-time
// state; members added at run time are kept.
func (b *Balancer) configure(cfg Config, old []*Member) error {
	cfg = normalized(cfg)
	if err := cfg.validate(); err != nil {
		return err
	}
	method, _ := MethodByName(cfg.LBMethod)
	oldByName := make(map[string]*Member, len(old))
	for _, m := range old {
		oldByName[m.name] = m
	}
	seen := make(map[string]bool, len(cfg.Members))
	members := make([]*Member, 0, len(cfg.Members))
	for i, mc := range cfg.Members {
		m, err := newMember(b, mc)
		if err != nil {
			return fmt.Errorf("member %d (%s): %w", i+1, mc.URL, err)
		}
		if seen[m.name] {
			return fmt.Errorf("member %s is defined twice in balancer %s", m.name, cfg.Name)
		}
		seen[m.name] = true
		if o := oldByName[m.name]; o != nil && !o.dynamic && memberConfigEqual(o.cfg, mc) {
			m = o // unchanged: keep run-time flags and counters
		}
		members = append(members, m)
	}
	for _, o := range old {
		if o.dynamic && !seen[o.name] {
			members = append(members, o)
		}
	}
	if b.name != cfg.Name {
		// Set once: a reload keeps the name (balancers are found by it), and
		// Name is read without the lock.
		b.name = cfg.Name
	}
	b.cfg = cfg
	b.members = members
	b.dropRampersLocked()
	if b.method == nil || b.method.Name() != method.Name() {
		b.setMethodLocked(method)
	}
	b.setSticky(cfg.StickySession, cfg.StickyPath)
	if b.sticky != "" && b.stickyPath == "" {
		b.stickyPath = b.sticky
	}
	b.postCheck.Store(len(cfg.FailOnStatus) > 0 || cfg.FailOnTimeout)
	b.sep = cfg.StickySeparator
	b.scolon = cfg.SColonPathDelim
	b.nofailover = cfg.NoFailover
	b.maxAttempts = cfg.MaxAttempts
	if !cfg.MaxAttemptsSet {
		// init_balancer_members: members−1, only with more than one member.
		b.maxAttempts = 0
		if n := len(cfg.Members); n > 1 {
			b.maxAttempts = n - 1
		}
	}
	b.timeout = cfg.Timeout
	b.forceRecovery = cfg.ForceRecovery
	b.failOnStatus = cfg.FailOnStatus
	b.failOnTimeout = cfg.FailOnTimeout
	b.growth = cfg.Growth
	b.allow, _ = parseAllowList(cfg.GrowthAllow) // validated above
	b.maxMembers = len(cfg.Members) + cfg.Growth
	if cfg.NonceSet {
		b.nonce = cfg.Nonce
	} else if b.nonce == "" {
		b.nonce = newNonce()
	}
	return nil
}

// setSticky sets the sticky session cookie and URL parameter names and
// publishes the cookie name to the lock-free readers (Sticky, StickyCookie).
// Caller holds the lock.
func (b *Balancer) setSticky(cookie, path string) {
	b.sticky, b.stickyPath = cookie, path
	b.stickyName.Store(&cookie)
}

// Reconfigure applies a new configuration to a running balancer (a Caddy config
// reload of the same balancer name): unchanged members keep their run-time
// state, counters and flags; members added at run time stay. Balancer
// parameters changed at run time are kept if the configured parameters are
// unchanged; otherwise the configuration wins.
func (b *Balancer) Reconfigure(cfg Config) error {
	b.mu.Lock()
	defer b.unlock()
	rt := b.runtimeParams
	if rt != nil && configuredParams(normalized(cfg)) != configuredParams(b.cfg) {
		rt = nil
	}
	// configure validates everything before it changes anything.
	if err := b.configure(cfg, b.members); err != nil {
		return err
	}
	b.runtimeParams = rt
	if rt != nil {
		b.keepParamsLocked(*rt)
	}
	return nil
}

// Validate checks a configuration as New and Reconfigure do, without
// building anything.
func Validate(cfg Config) error {
	cfg = normalized(cfg)
	if err := cfg.validate(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(cfg.Members))
	for i, mc := range cfg.Members {
		name, _, _, _, _, _, err := NormalizeURL(mc.URL)
		if err == nil {
			err = mc.validate()
		}
		if err != nil {
			return fmt.Errorf("member %d (%s): %w", i+1, mc.URL, err)
		}
		if seen[name] {
			return fmt.Errorf("member %s is defined twice in balancer %s", name, cfg.Name)
		}
		seen[name] = true
	}
	return nil
}

// normalized returns cfg with its name lower-cased and the default lbmethod.
func normalized(cfg Config) Config {
	cfg.Name = strings.ToLower(cfg.Name)
	if cfg.LBMethod == "" {
		cfg.LBMethod = "byrequests"
	}
	return cfg
}

// keepParamsLocked puts back balancer parameters changed at run time after a
// reconfiguration; they were checked when they were edited.
func (b *Balancer) keepParamsLocked(p SnapshotParams) {
	if p.LBMethod != b.method.Name() {
		method, _ := MethodByName(p.LBMethod)
		b.setMethodLocked(method)
	}
	b.setSticky(p.StickySession, p.StickyPath)
	b.nofailover = p.NoFailover
	b.forceRecovery = p.ForceRecovery
	b.timeout = p.Timeout
	if p.MaxAttempts >= 0 {
		b.setMaxAttemptsLocked(p.MaxAttempts)
	}
}

func memberConfigEqual(a, b MemberConfig) bool {
	ra, rb := DefaultRetry, DefaultRetry
	if a.Retry != nil {
		ra = *a.Retry
	}
	if b.Retry != nil {
		rb = *b.Retry
	}
	if (a.SlowStart == nil) != (b.SlowStart == nil) ||
		(a.SlowStart != nil && *a.SlowStart != *b.SlowStart) {
		return false
	}
	a.Retry, b.Retry = nil, nil
	a.SlowStart, b.SlowStart = nil, nil
	return ra == rb && a == b
}

// newNonce is a random RFC 4122-looking string, as ap_proxy_share_balancer makes.
func newNonce() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Name is the balancer's name without "balancer://".
func (b *Balancer) Name() string { return b.name }

// Config returns the configuration the balancer was built from.
func (b *Balancer) Config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// MaxAttempts is the failover limit in force (httpd's max_attempts).
func (b *Balancer) MaxAttempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.maxAttempts
}

// Members returns the members in configuration order (run-time ones last).
func (b *Balancer) Members() []*Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Member(nil), b.members...)
}

// Request is what the sticky lookup needs to see of a client request.
type Request struct {
	// URL is the string searched for the URL session parameter: httpd's
	// balancer URL, "balancer://name" + the %-decoded path + "?" + raw query.
	URL string
	// Cookie is the request's Cookie header, several headers joined by ", ".
	Cookie string
}

// Pick is the outcome of one selection (proxy_balancer_pre_request).
type Pick struct {
	Member *Member
	// RouteChanged is BALANCER_ROUTE_CHANGED.
	RouteChanged bool
	// StickyName is BALANCER_SESSION_STICKY; Route is BALANCER_SESSION_ROUTE;
	// both are set only when HasRoute.
	StickyName string
	Route      string
	HasRoute   bool
	// WorkerRoute is BALANCER_WORKER_ROUTE, the chosen member's route.
	WorkerRoute string
}

// Pick selects a member for one attempt of a request, as
// proxy_balancer_pre_request does: forced recovery, the sticky lookup (with
// nofailover), then the lbmethod's chooser, waiting up to the balancer timeout
// for a usable member. The member's elected and busy counts are incremented;
// the caller must call Release once the whole client request has ended.
func (b *Balancer) Pick(ctx context.Context, req *Request) (Pick, error) {
	var p Pick
	b.mu.Lock()
	now := &clock{b: b}
	b.forcedRecovery(now)
	if b.sticky != "" && req != nil {
		route, name, ok := b.sessionRoute(req)
		if ok {
			p.StickyName, p.Route, p.HasRoute = name, route, true
			if route != "" {
				if m := b.findRouteWorker(route, 1, now); m != nil {
					b.stickyUpdate(m, now)
					m.elected.Add(1)
					m.busy.Add(1)
					p.Member = m
					p.WorkerRoute = m.route
					p.RouteChanged = m.route != route
					b.unlock()
					return p, nil
				}
				if b.nofailover {
					for _, m := range b.members {
						if m.route == route {
							b.unlock()
							return p, ErrNoFailover
						}
					}
				}
			}
		}
	}
	m := b.choose(now)
	if m != nil {
		p.WorkerRoute = m.route
	}
	sticky := b.sticky != ""
	timeout := b.timeout
	b.unlock()
	if m == nil && timeout > 0 {
		m = b.waitForMember(ctx, timeout)
		if m != nil {
			p.WorkerRoute = m.Route()
		}
	}
	if m == nil {
		return p, ErrNoMember
	}
	p.Member = m
	p.RouteChanged = sticky
	return p, nil
}

// waitForMember is find_best_worker's timeout loop: re-run the chooser every
// timeout/100 until a member is found or the timeout has passed.
func (b *Balancer) waitForMember(ctx context.Context, timeout time.Duration) *Member {
	step := timeout / 100
	if step <= 0 {
		step = time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(step)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.mu.Lock()
		m := b.choose(&clock{b: b})
		b.unlock()
		if m != nil {
			return m
		}
		t.Reset(step)
	}
	return nil
}

// choose runs the chooser and counts the election and the request in
// flight, under the lock, so that once a member is drained (N set under the
// lock) no selection made before can still hand it a request (drain.go).
// Caller holds the lock.
func (b *Balancer) choose(now *clock) *Member {
	ramp := len(b.rampers) > 0 && b.refreshRampsLocked(now)
	m := bestWorker(b.members, b.method, now, ramp)
	if m != nil {
		m.elected.Add(1)
		m.busy.Add(1)
	}
	return m
}

// stickyUpdate is the default "update on sticky" of proxy_balancer_pre_request:
// every usable member gains its lbfactor, the sticky member loses the total.
// While a member ramps up, they gain their weights (slowstart.go).
func (b *Balancer) stickyUpdate(sticky *Member, now *clock) {
	var total int64
	if len(b.rampers) > 0 && b.refreshRampsLocked(now) {
		for _, m := range b.members {
			if m.isUsable() {
				w := int64(m.weight())
				m.lbstatus += w
				total += w
			}
		}
		sticky.lbstatus -= total
		return
	}
	for _, m := range b.members {
		if m.isUsable() {
			m.lbstatus += int64(m.lbfactor)
			total += int64(m.lbfactor)
		}
	}
	sticky.lbstatus -= total
}

// forcedRecovery is force_recovery (mod_proxy_balancer.c): walk the members in
// order; a member without E ends the walk, a member with E gets the retry rule
// and ends the walk if that lifts it (so members before the first healthy one
// are retried too). If the walk finds every member still in error and
// forcerecovery is on, lift E on all of them.
func (b *Balancer) forcedRecovery(now *clock) {
	for _, m := range b.members {
		if m.status&InError == 0 {
			return
		}
		m.retryWorker(now)
		if m.status&InError == 0 {
			return
		}
	}
	if b.forceRecovery && len(b.members) > 0 {
		for _, m := range b.members {
			old := m.status
			m.status &^= InError
			m.retries.Add(1)
			b.noteChange(m, old, ReasonForcedRecovery)
		}
	}
}

// Release ends a member's part in a client request: busy−−, never below 0.
// The last request of a draining member wakes whoever waits for it to empty
// (drain.go).
func (m *Member) Release() {
	for {
		v := m.busy.Load()
		if v <= 0 {
			return
		}
		if m.busy.CompareAndSwap(v, v-1) {
			if v == 1 && m.draining.Load() {
				m.b.emptied(m)
			}
			return
		}
	}
}

// ConnectFailed records a failed connection to the member: it goes into error
// (E) unless it ignores errors (ap_proxy_connect_backend). It reports whether
// the member is still usable (if so, httpd does not fail over).
func (m *Member) ConnectFailed() (usable bool) {
	b := m.b
	b.mu.Lock()
	defer b.unlock()
	if m.status&IgnoreErrors == 0 {
		old := m.status
		m.status |= InError
		m.errorTime.Store(b.Now().UnixNano())
		b.noteChange(m, old, ReasonConnectFailure)
	}
	return m.isUsable()
}

// ConnectOK records a successful connection: retries and error time go back to 0.
func (m *Member) ConnectOK() {
	if m.retries.Load() != 0 {
		m.retries.Store(0)
	}
	if m.errorTime.Load() != 0 {
		m.errorTime.Store(0)
	}
}

// PostRequest is proxy_balancer_post_request, run once per client request for
// the last member: failonstatus and failontimeout put it in error unless it
// ignores errors.
func (m *Member) PostRequest(status int, timedOut bool) {
	b := m.b
	if !b.postCheck.Load() {
		return // neither failonstatus nor failontimeout: nothing to do
	}
	b.mu.Lock()
	defer b.unlock()
	if m.status&IgnoreErrors != 0 {
		return
	}
	fail := timedOut && b.failOnTimeout
	for _, c := range b.failOnStatus {
		if c == status {
			fail = true
		}
	}
	if fail {
		old := m.status
		m.status |= InError
		m.errorTime.Store(b.Now().UnixNano())
		reason := ReasonFailOnStatus
		if timedOut && b.failOnTimeout {
			reason = ReasonFailOnTimeout
		}
		b.noteChange(m, old, reason)
	}
}

// Usable reports whether the member is usable now.
func (m *Member) Usable() bool {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.isUsable()
}

// Sticky reports whether sticky sessions are configured.
func (b *Balancer) Sticky() bool {
	return b.StickyCookie() != ""
}

// StickyCookie is the sticky session cookie name, "" if none.
func (b *Balancer) StickyCookie() string {
	if p := b.stickyName.Load(); p != nil {
		return *p
	}
	return ""
}

// Route is the member's route.
func (m *Member) Route() string {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.route
}
