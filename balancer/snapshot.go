package balancer

import (
	"errors"
	"fmt"
	"time"
)

// Snapshots are the run-time state of a balancer worth keeping across a
// restart (httpd's BalancerPersist). The JSON of Snapshot is the persisted
// format (`persist on` writes it to Caddy's storage), so its fields are
// documented as a public format.

// Snapshot is the balancer parameters the manager edits, each member's
// parameters and manager flags, the members added at run time, and the
// configuration all this was made under, so that a restore can tell what
// the configuration changed since.
type Snapshot struct {
	// Name is the balancer's name, without "balancer://".
	Name string `json:"name"`
	// Configured holds the balancer parameters as configured when saved.
	Configured SnapshotParams `json:"configured"`
	// Params holds the balancer parameters in force when saved.
	Params  SnapshotParams   `json:"params"`
	Members []SnapshotMember `json:"members"`
}

// SnapshotParams are balancer parameters that the manager can change.
type SnapshotParams struct {
	// LBMethod is byrequests, bytraffic or bybusyness.
	LBMethod string `json:"lbmethod"`
	// StickySession and StickyPath are the sticky session cookie and URL
	// parameter names; both empty: no sticky sessions.
	StickySession string `json:"stickysession"`
	StickyPath    string `json:"stickypath"`
	// NoFailover and ForceRecovery are the balancer's flags.
	NoFailover    bool `json:"nofailover"`
	ForceRecovery bool `json:"forcerecovery"`
	// Timeout is the wait for a usable member, in nanoseconds.
	Timeout time.Duration `json:"timeout"`
	// MaxAttempts is the failover limit; -1: not set (httpd's default applies).
	MaxAttempts int `json:"maxattempts"`
	// Nonce is kept unless configured: httpd keeps it across restarts only
	// with BalancerPersist.
	Nonce string `json:"nonce"`
}

// SnapshotMember is one member's saved state.
type SnapshotMember struct {
	// Name is the member's normalized URL (httpd's worker name).
	Name string `json:"name"`
	// Config is the member's configuration when saved (for a member added at
	// run time: the parameters it was added with), with Go's field names:
	// URL, LoadFactor (×100), LBSet, Route, Redirect, Status and StatusClear
	// (flag bits, httpd's values), Retry and Timeout (nanoseconds) and
	// HealthCheck. A restore applies the saved state only to a member whose
	// configuration is still the same.
	Config MemberConfig `json:"config"`
	// Dynamic: the member was added at run time.
	Dynamic bool `json:"dynamic,omitempty"`
	// LBFactor is the loadfactor ×100 (100 … 10000).
	LBFactor int `json:"lbfactor"`
	// LBSet is the member's lbset, 0 … 99.
	LBSet int `json:"lbset"`
	// Route and Redirect are the member's route and redirect route.
	Route    string `json:"route,omitempty"`
	Redirect string `json:"redirect,omitempty"`
	// Flags holds the manager flags (I N D H R S C) that are set, as letters.
	Flags string `json:"flags"`
	// HC holds the health-check settings (hcinterval in nanoseconds).
	HC HealthCheck `json:"hc"`
}

func configuredParams(cfg Config) SnapshotParams {
	p := SnapshotParams{
		LBMethod: cfg.LBMethod, StickySession: cfg.StickySession, StickyPath: cfg.StickyPath,
		NoFailover: cfg.NoFailover, ForceRecovery: cfg.ForceRecovery, Timeout: cfg.Timeout,
		MaxAttempts: cfg.MaxAttempts, Nonce: cfg.Nonce,
	}
	if p.LBMethod == "" {
		p.LBMethod = "byrequests"
	}
	if !cfg.NonceSet {
		p.Nonce = ""
	}
	if !cfg.MaxAttemptsSet {
		p.MaxAttempts = -1
	}
	return p
}

// Snapshot returns the balancer's state for persistence.
func (b *Balancer) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Snapshot{Name: b.name, Configured: configuredParams(b.cfg), Params: b.paramsLocked()}
	for _, m := range b.members {
		s.Members = append(s.Members, SnapshotMember{
			Name: m.name, Config: m.cfg, Dynamic: m.dynamic, LBFactor: m.lbfactor, LBSet: m.lbset,
			Route: m.route, Redirect: m.redirect, Flags: (m.status & managerMask).Letters(), HC: m.hc,
		})
	}
	return s
}

// paramsLocked returns the balancer parameters in force.
func (b *Balancer) paramsLocked() SnapshotParams {
	p := SnapshotParams{
		LBMethod: b.method.Name(), StickySession: b.sticky, StickyPath: b.stickyPath,
		NoFailover: b.nofailover, ForceRecovery: b.forceRecovery, Timeout: b.timeout,
		MaxAttempts: b.maxAttempts, Nonce: b.nonce,
	}
	if !b.maxAttemptsSetLocked() {
		p.MaxAttempts = b.shownMaxAttempts
	}
	return p
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	// Params: the balancer parameters were restored (the configuration of the
	// balancer had not changed since the save).
	Params bool
	// Restored lists the configured members whose saved state was applied;
	// Added the members added at run time that were restored.
	Restored, Added []string
	// Skipped lists the saved members left alone, each with the reason:
	// their configuration changed, they are gone from it, their saved state
	// is invalid, or they could not be added back.
	Skipped []string
}

// Restore applies a saved snapshot to a balancer just built from its
// configuration. What comes from storage is checked as a run-time change
// is: the balancer parameters and each member's saved state are applied
// whole or not at all. Where the configuration changed since the save, the
// configuration wins: for the balancer parameters if any configured balancer
// parameter changed, and for each member whose configuration changed.
// Members added at run time are added back (within the free slots, if the
// member policy admits them).
func (b *Balancer) Restore(s Snapshot) RestoreReport {
	var rep RestoreReport
	b.mu.Lock()
	paramsOK := s.Configured == configuredParams(b.cfg)
	byName := make(map[string]*Member, len(b.members))
	for _, m := range b.members {
		byName[m.name] = m
	}
	b.mu.Unlock()
	if paramsOK {
		rep.Params = b.restoreParams(s.Params) == nil
	}
	for _, sm := range s.Members {
		m := byName[sm.Name]
		var err error
		switch {
		case m != nil && !sm.Dynamic && !m.dynamic:
			if !memberConfigEqual(m.cfg, sm.Config) {
				err = errors.New("its configuration changed since the save")
				break
			}
			if err = b.restoreMember(sm); err == nil {
				rep.Restored = append(rep.Restored, sm.Name)
			}
		case m == nil && sm.Dynamic:
			mc := sm.Config
			if name, _, _, _, _, _, nerr := NormalizeURL(mc.URL); nerr != nil || name != sm.Name {
				err = fmt.Errorf("its name does not match its URL %q", mc.URL)
				break
			}
			var res Applied
			if res, err = b.Apply(Edit{Add: []MemberConfig{mc}}, ReasonRestore); err != nil {
				break
			}
			if err = b.restoreMember(sm); err != nil {
				_, _ = b.Apply(Edit{Remove: []string{res.Added[0].name}}, ReasonRestore)
				break
			}
			rep.Added = append(rep.Added, sm.Name)
		case m == nil:
			err = errors.New("it is no longer configured")
		default:
			err = errors.New("it was added at run time but is now configured, or the reverse")
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, sm.Name+": "+err.Error())
		}
	}
	return rep
}

// edit is the member edit that restores a saved member state.
func (sm SnapshotMember) edit() (MemberEdit, error) {
	lf, ls, route, redirect, hc := sm.LBFactor, sm.LBSet, sm.Route, sm.Redirect, sm.HC
	var set Status
	for i := 0; i < len(sm.Flags); i++ {
		f, ok := FlagForLetter(sm.Flags[i])
		if !ok || f&managerMask == 0 {
			return MemberEdit{}, fmt.Errorf("saved flags %q: only %s are kept", sm.Flags, ManagerFlags)
		}
		set |= f
	}
	return MemberEdit{
		Name: sm.Name, LoadFactor: &lf, LBSet: &ls, Route: &route, Redirect: &redirect,
		Set: set, Clear: managerMask &^ set, HealthCheck: &hc,
	}, nil
}

// restoreMember applies a saved member state as one edit.
func (b *Balancer) restoreMember(sm SnapshotMember) error {
	me, err := sm.edit()
	if err != nil {
		return err
	}
	_, err = b.Apply(Edit{Members: []MemberEdit{me}}, ReasonRestore)
	return err
}

// restoreParams applies saved balancer parameters as one edit, and the saved
// nonce unless one is configured (httpd keeps the nonce across restarts only
// with BalancerPersist).
func (b *Balancer) restoreParams(p SnapshotParams) error {
	e := Edit{
		LBMethod:      &p.LBMethod,
		StickySession: &StickySession{Cookie: p.StickySession, Path: p.StickyPath},
		NoFailover:    &p.NoFailover,
		ForceRecovery: &p.ForceRecovery,
		Timeout:       &p.Timeout,
	}
	if p.MaxAttempts >= 0 {
		e.MaxAttempts = &p.MaxAttempts
	}
	if _, err := b.Apply(e, ReasonRestore); err != nil {
		return err
	}
	if p.Nonce != "" && CheckNonce(p.Nonce) == nil {
		b.mu.Lock()
		if !b.cfg.NonceSet {
			b.nonce = p.Nonce
		}
		b.mu.Unlock()
	}
	return nil
}
