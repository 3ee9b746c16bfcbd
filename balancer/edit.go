package balancer

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Run-time changes of a balancer: what the balancer-manager, the JSON admin
// API, a restored persistence file and the fleet sync change while the
// balancer runs. Every one of them is an Edit applied by Balancer.Apply:
// checked in full, then applied in full under the balancer's lock, or not at
// all (docs/behaviour.md §7.3 has httpd's rules, from
// balancer_process_balancer_worker).

// Errors of Apply. The manager answers a failed member addition with 400, as
// httpd does; the JSON API maps these to 409 (conflict) and 400.
var (
	// ErrMemberExists: a member already matches the URL (httpd's AH10164).
	ErrMemberExists = errors.New("a member matching that URL already exists")
	// ErrNoFreeSlot: every member slot (members at configuration + growth) is used (AH10164).
	ErrNoFreeSlot = errors.New("no free member slot (raise growth)")
	// ErrInvalidMember: the URL cannot define a member (AH10163).
	ErrInvalidMember = errors.New("invalid member URL")
	// ErrNotDynamic: only members added at run time can be removed.
	ErrNotDynamic = errors.New("member was not added at run time; remove it from the configuration instead")
	// ErrNotMember: the member is not (any more) in this balancer.
	ErrNotMember = errors.New("not a member of this balancer")
	// ErrMemberRefused: the balancer's member policy refuses the URL as a
	// run-time member (SetMemberPolicy).
	ErrMemberRefused = errors.New("run-time member refused")
)

// ManagerFlags are the status letters that can be set and cleared at run
// time (the manager's w_status_I, _N, _D, _H, _R, _S, _C). E cannot be set or
// cleared this way, as in httpd.
const ManagerFlags = "INDHRSC"

// managerMask is the set of flags in ManagerFlags.
const managerMask = IgnoreErrors | Drain | Disabled | HotStandby | HotSpare | Stopped | HCFail

// Edit is one run-time change of a balancer. Nil fields are left alone.
type Edit struct {
	// LBMethod switches the lbmethod; the new method's reset runs (httpd runs
	// it at the next sync; the result is the same). The method in force
	// changes nothing.
	LBMethod *string
	// StickySession sets the sticky session cookie and URL parameter names;
	// two empty names remove sticky sessions.
	StickySession *StickySession
	// NoFailover, ForceRecovery: the balancer's flags.
	NoFailover    *bool
	ForceRecovery *bool
	// Timeout is the wait for a usable member, 0 to 7200s.
	Timeout *time.Duration
	// MaxAttempts is the failover limit, 0 to 99. As httpd's manager (b_max)
	// it does not mark the value as set: on a balancer configured with one
	// member and no maxattempts, the value is shown but has no effect.
	MaxAttempts *int

	// Members are changes of existing members, applied in order.
	Members []MemberEdit
	// Add lists members to add at run time, within growth. A member's
	// Status holds the flags it starts with (the manager adds members
	// Disabled).
	Add []MemberConfig
	// Remove lists members (by name) added at run time, to remove.
	Remove []string
}

// StickySession is the pair of sticky session names.
type StickySession struct {
	// Cookie is the cookie name; empty with Path empty: no sticky sessions.
	Cookie string
	// Path is the URL parameter name.
	Path string
}

// ParseStickySession reads a stickysession value as httpd's
// set_balancer_param does: "COOKIE|param" names the cookie and the URL
// parameter, "NAME" names both, and "" names neither. Everything after the
// first '|' is the parameter, even when that is empty ("COOKIE|": no URL
// parameter).
func ParseStickySession(s string) StickySession {
	if cookie, path, ok := strings.Cut(s, "|"); ok {
		return StickySession{Cookie: cookie, Path: path}
	}
	return StickySession{Cookie: s, Path: s}
}

// MemberEdit changes one member.
type MemberEdit struct {
	// Name is the member's name, its normalized URL (Member.Name).
	Name string
	// LoadFactor is the new loadfactor ×100 (100 … 10000). Setting it runs
	// httpd's recalc_factors: every member's lbstatus becomes its lbfactor,
	// and the only member of a one-member balancer keeps lbfactor 100.
	LoadFactor *int
	LBSet      *int
	Route      *string
	Redirect   *string
	// Set and Clear are flags to set and to clear, among ManagerFlags.
	Set, Clear Status
	// HealthCheck replaces the health-check settings. A method without a
	// response (NONE, TCP) drops the condition, as in httpd.
	HealthCheck *HealthCheck
}

// Empty reports whether the edit changes nothing.
func (e *Edit) Empty() bool {
	return e.LBMethod == nil && e.StickySession == nil && e.NoFailover == nil && e.ForceRecovery == nil &&
		e.Timeout == nil && e.MaxAttempts == nil && len(e.Members) == 0 && len(e.Add) == 0 && len(e.Remove) == 0
}

// balancerFields reports whether the edit changes balancer parameters.
func (e *Edit) balancerFields() bool {
	return e.LBMethod != nil || e.StickySession != nil || e.NoFailover != nil || e.ForceRecovery != nil ||
		e.Timeout != nil || e.MaxAttempts != nil
}

// Applied tells what Apply did.
type Applied struct {
	// Added are the members Edit.Add added, in order.
	Added []*Member
}

// Apply checks every field of the edit and, if all are valid, applies all of
// them under the balancer's lock: existing members first, then the balancer
// parameters, then members added and removed (the order of httpd's manager).
// On error nothing has changed. reason is passed to the status-change and
// edit hooks (ReasonManager, ReasonAPI, ...).
func (b *Balancer) Apply(e Edit, reason string) (Applied, error) {
	var res Applied
	if err := b.checkPolicy(e.Add); err != nil {
		return res, err
	}
	b.mu.Lock()
	adds, err := b.checkEditLocked(&e)
	if err != nil {
		b.mu.Unlock()
		return res, err
	}
	for _, me := range e.Members {
		b.applyMemberEditLocked(b.memberByNameLocked(me.Name), me, reason)
	}
	b.applyBalancerEditLocked(&e)
	b.members = append(b.members, adds...)
	res.Added = adds
	if reason != ReasonRestore {
		for _, m := range adds {
			if m.isUsable() {
				b.startRampLocked(m) // slowstart.go
			}
		}
	}
	for _, name := range e.Remove {
		for i, m := range b.members {
			if m.name == name {
				b.members = append(b.members[:i:i], b.members[i+1:]...)
				break
			}
		}
	}
	if len(e.Remove) > 0 {
		b.dropRampersLocked()
	}
	b.noteEdit(e, reason)
	b.unlock()
	return res, nil
}

// checkEditLocked checks the edit and builds the members it adds. It
// normalizes the health-check settings and the names of members to remove.
func (b *Balancer) checkEditLocked(e *Edit) ([]*Member, error) {
	if e.LBMethod != nil {
		if _, err := MethodByName(*e.LBMethod); err != nil {
			return nil, err
		}
	}
	if s := e.StickySession; s != nil {
		if err := CheckStickySession(s.Cookie, s.Path); err != nil {
			return nil, err
		}
	}
	if e.Timeout != nil {
		if err := CheckRuntimeTimeout(*e.Timeout); err != nil {
			return nil, err
		}
	}
	if e.MaxAttempts != nil {
		if err := CheckRuntimeMaxAttempts(*e.MaxAttempts); err != nil {
			return nil, err
		}
	}
	for i := range e.Members {
		me := &e.Members[i]
		m := b.memberByNameLocked(me.Name)
		if m == nil {
			return nil, fmt.Errorf("member %s: %w", me.Name, ErrNotMember)
		}
		if err := me.check(); err != nil {
			return nil, fmt.Errorf("member %s: %w", me.Name, err)
		}
	}
	for i, name := range e.Remove {
		m := b.memberByNameLocked(name)
		if m == nil {
			if m = b.findMemberLocked(name); m == nil {
				return nil, fmt.Errorf("member %s: %w", name, ErrNotMember)
			}
		}
		if !m.dynamic {
			return nil, fmt.Errorf("member %s: %w", m.name, ErrNotDynamic)
		}
		e.Remove[i] = m.name
	}
	var adds []*Member
	for _, mc := range e.Add {
		m, err := b.newRuntimeMemberLocked(mc, adds, len(e.Remove))
		if err != nil {
			return nil, err
		}
		adds = append(adds, m)
	}
	return adds, nil
}

func (me *MemberEdit) check() error {
	if me.LoadFactor != nil {
		if err := CheckLBFactor(*me.LoadFactor); err != nil {
			return err
		}
	}
	if me.LBSet != nil {
		if err := CheckLBSet(*me.LBSet); err != nil {
			return err
		}
	}
	if me.Route != nil {
		if err := CheckRoute("route", *me.Route); err != nil {
			return err
		}
	}
	if me.Redirect != nil {
		if err := CheckRoute("redirect", *me.Redirect); err != nil {
			return err
		}
	}
	if bad := (me.Set | me.Clear) &^ managerMask; bad != 0 {
		return fmt.Errorf("status flag %s cannot be changed at run time (only %s)", bad.Letters(), ManagerFlags)
	}
	if both := me.Set & me.Clear; both != 0 {
		return fmt.Errorf("status flag %s is both set and cleared", both.Letters())
	}
	if me.HealthCheck != nil {
		hc := me.HealthCheck.canonical()
		if err := hc.Validate(); err != nil {
			return err
		}
		if !hc.hasResponse() {
			hc.Expr = "" // httpd drops the condition of a check without a response
		}
		me.HealthCheck = &hc
	}
	return nil
}

// newRuntimeMemberLocked builds a member to add at run time: it must not
// match an existing member (by the longest-prefix rule, or by its normalized
// name) nor one added by the same edit, a slot must be free (counting the
// members the edit removes) and the URL must be valid. The member policy was
// asked before (checkPolicy).
func (b *Balancer) newRuntimeMemberLocked(mc MemberConfig, adding []*Member, removing int) (*Member, error) {
	if b.findMemberLocked(mc.URL) != nil {
		return nil, ErrMemberExists
	}
	if len(b.members)+len(adding)-removing >= b.maxMembers {
		return nil, ErrNoFreeSlot
	}
	mc.HealthCheck = mc.HealthCheck.canonical()
	m, err := newMember(b, mc)
	if err != nil {
		return nil, err
	}
	if len(m.name) > MaxMemberNameLen {
		return nil, fmt.Errorf("%w: name longer than %d characters", ErrInvalidMember, MaxMemberNameLen)
	}
	for _, x := range b.members {
		if x.name == m.name {
			return nil, ErrMemberExists
		}
	}
	for _, x := range adding {
		if x.name == m.name {
			return nil, ErrMemberExists
		}
	}
	m.dynamic = true
	return m, nil
}

// applyMemberEditLocked applies a checked member edit.
func (b *Balancer) applyMemberEditLocked(m *Member, me MemberEdit, reason string) {
	old := m.status
	if me.LoadFactor != nil {
		m.lbfactor = *me.LoadFactor
		b.recalcFactorsLocked()
	}
	if me.Route != nil {
		m.setRoute(*me.Route)
	}
	if me.Redirect != nil {
		m.redirect = *me.Redirect
	}
	m.status = m.status&^me.Clear | me.Set
	if me.LBSet != nil {
		m.lbset = *me.LBSet
	}
	if me.HealthCheck != nil {
		m.hc = *me.HealthCheck
	}
	b.noteChange(m, old, reason)
}

// setMethodLocked switches to method and runs its reset. bybusyness' reset
// zeroes every busy count, as httpd's does: draining members are then empty
// (drain.go).
func (b *Balancer) setMethodLocked(method Method) {
	b.method = method
	method.Reset(b.members)
	for _, m := range b.members {
		if m.status&Drain != 0 {
			b.checkDrainedLocked(m)
		}
	}
}

// recalcFactorsLocked is recalc_factors (mod_proxy_balancer.c).
func (b *Balancer) recalcFactorsLocked() {
	if len(b.members) == 1 {
		m := b.members[0]
		m.lbfactor = 100
		m.lbstatus = 100
		return
	}
	for _, m := range b.members {
		m.lbstatus = int64(m.lbfactor)
	}
}

// applyBalancerEditLocked applies the checked balancer fields of an edit and
// remembers the parameters as changed at run time (Reconfigure keeps them).
func (b *Balancer) applyBalancerEditLocked(e *Edit) {
	if !e.balancerFields() {
		return
	}
	if e.LBMethod != nil && *e.LBMethod != b.method.Name() {
		method, _ := MethodByName(*e.LBMethod)
		b.setMethodLocked(method)
	}
	if s := e.StickySession; s != nil {
		b.setSticky(s.Cookie, s.Path)
	}
	if e.NoFailover != nil {
		b.nofailover = *e.NoFailover
	}
	if e.ForceRecovery != nil {
		b.forceRecovery = *e.ForceRecovery
	}
	if e.Timeout != nil {
		b.timeout = *e.Timeout
	}
	if e.MaxAttempts != nil {
		b.setMaxAttemptsLocked(*e.MaxAttempts)
	}
	p := b.paramsLocked()
	b.runtimeParams = &p
}

// setMaxAttemptsLocked sets max_attempts, or only the value shown when it is
// not in force (one member at configuration, no maxattempts; httpd's b_max
// does not mark it set, docs/behaviour.md §7.3).
func (b *Balancer) setMaxAttemptsLocked(n int) {
	if b.maxAttemptsSetLocked() {
		b.maxAttempts = n
	} else {
		b.shownMaxAttempts = n
	}
}

// maxAttemptsSetLocked reports whether max_attempts is in force: configured,
// or defaulted at start because more than one member was configured.
func (b *Balancer) maxAttemptsSetLocked() bool {
	return b.cfg.MaxAttemptsSet || len(b.cfg.Members) > 1
}

// MemberAddress is where a member added at run time would send requests,
// for the member policy: its normalized URL and its parts.
type MemberAddress struct {
	// Name is the normalized URL (the member's name).
	Name string
	// Scheme is http or https; Host the host name or IP address (IPv6
	// without brackets), lower-cased; Port the port, defaulted.
	Scheme, Host, Port string
}

// SetMemberPolicy installs fn (nil removes it) as the check every member
// added at run time must pass, whoever adds it (the manager, the JSON API,
// a restored persistence file, the fleet sync). fn is called without the
// balancer's lock (it may take time, e.g. to resolve a name) and may call
// the balancer's methods.
func (b *Balancer) SetMemberPolicy(fn func(MemberAddress) error) {
	if fn == nil {
		b.policy.Store(nil)
		return
	}
	b.policy.Store(&fn)
}

// checkPolicy asks the member policy about every member to add. A URL that
// is not valid is left to the edit's check, which reports it.
func (b *Balancer) checkPolicy(add []MemberConfig) error {
	p := b.policy.Load()
	if p == nil {
		return nil
	}
	for _, mc := range add {
		name, scheme, host, port, _, _, err := NormalizeURL(mc.URL)
		if err != nil {
			continue
		}
		if err := (*p)(MemberAddress{Name: name, Scheme: scheme, Host: host, Port: port}); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMemberRefused, name, err)
		}
	}
	return nil
}

// ParseStatusChange reads a run-time status change in httpd's `status=`
// syntax ("+D-N", "D", "-H") into the flags it sets and clears, limited to
// ManagerFlags. A value with any other letter, or ending in '+' or '-', is an
// error.
func ParseStatusChange(value string) (set, clear Status, err error) {
	on := true
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '+', '-':
			on = c == '+'
			if i == len(value)-1 {
				return 0, 0, fmt.Errorf("status %q ends with %q", value, c)
			}
		default:
			f, ok := FlagForLetter(c)
			if !ok || f&managerMask == 0 {
				return 0, 0, fmt.Errorf("status flag %q cannot be changed at run time (only %s)", c, ManagerFlags)
			}
			if on {
				set, clear = set|f, clear&^f
			} else {
				set, clear = set&^f, clear|f
			}
		}
	}
	return set, clear, nil
}
