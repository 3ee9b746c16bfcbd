// Package api is the JSON admin API of caddy-balancer: every balancer and
// member with its parameters and live state, and run-time changes of them,
// for Caddy-style automation (curl, scripts, the `caddy balancer` command).
// The plugin mounts Handler on Caddy's admin endpoint under /balancers.
// Every change is one balancer.Edit: checked in full and applied in full, or
// answered with a 4xx and nothing changed.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
)

// Prefix is the path the API is mounted at.
const Prefix = "/balancers"

// Handler serves the JSON API:
//
//	GET    /balancers
//	GET    /balancers/{name}
//	PATCH  /balancers/{name}
//	GET    /balancers/{name}/members
//	POST   /balancers/{name}/members
//	GET    /balancers/{name}/members/{member}
//	PATCH  /balancers/{name}/members/{member}
//	DELETE /balancers/{name}/members/{member}
//	POST   /balancers/{name}/members/{member}/drain[?wait=<duration>]
//
// {member} is the member's URL, percent-encoded as one path segment, or its
// route. Errors are {"error": "..."} with 400, 403, 404, 405 or 409.
type Handler struct {
	// Balancers lists the live balancers, sorted by name.
	Balancers func() []*balancer.Balancer
	// Logger receives the changes made.
	Logger *zap.Logger
	// Node names this Caddy in the answers that report per node (drain).
	Node string
	// Peers returns, when b is shared with a fleet, this node's ID in the
	// fleet and the other nodes' part in the drain of a member of b, so
	// that a drain waits for every node; self "" when b is not shared. Nil:
	// this node only.
	Peers func(ctx context.Context, b *balancer.Balancer, member string) (self string, peers []DrainNode, err error)
}

// Balancer is a balancer in the JSON API.
type Balancer struct {
	Name             string `json:"name"`
	LBMethod         string `json:"lbmethod"`
	StickySession    string `json:"stickysession"`
	StickySessionSep string `json:"stickysessionsep"`
	SColonPathDelim  bool   `json:"scolonpathdelim"`
	NoFailover       bool   `json:"nofailover"`
	MaxAttempts      int    `json:"maxattempts"`
	Timeout          string `json:"timeout"`
	ForceRecovery    bool   `json:"forcerecovery"`
	FailOnStatus     []int  `json:"failonstatus"`
	FailOnTimeout    bool   `json:"failontimeout"`
	Growth           int    `json:"growth"`
	SlowStart        string `json:"slowstart"`
	MaxMembers       int    `json:"max_members"`
	FreeSlots        int    `json:"free_slots"`
	Persist          bool   `json:"persist"`
	// PersistError is the error of the last write of the state if it
	// failed (persist on); absent once a write succeeds.
	PersistError string   `json:"persist_error,omitempty"`
	Nonce        string   `json:"nonce"`
	Members      []Member `json:"members"`
	// Sync is the fleet sync's state, absent when the balancer is not
	// shared with a fleet.
	Sync *Sync `json:"sync,omitempty"`
	// Warnings say where run-time changes are not kept as configured: not
	// persisted (the storage failed), not yet shared with the fleet.
	Warnings []string `json:"warnings,omitempty"`
}

// Sync is a balancer's fleet sync state on this node.
type Sync struct {
	// Store is "redis" or "storage"; Node this node's ID in the fleet.
	Store string `json:"store"`
	Node  string `json:"node"`
	// Connected: the store answered the last time it was used.
	Connected bool `json:"connected"`
	// Pending counts this node's changes the store has not taken yet.
	Pending int `json:"pending"`
	// LastSync is when the store last answered; LastError why it does not
	// answer now.
	LastSync  *time.Time `json:"last_sync,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// Member is a member in the JSON API.
type Member struct {
	Name string `json:"name"`
	// URL is the same as name: the member's normalized URL.
	URL        string  `json:"url"`
	LoadFactor float64 `json:"loadfactor"`
	// EffectiveLoadFactor is the loadfactor in force: less than loadfactor
	// while the member ramps up (slowstart), until SlowStartEnds.
	EffectiveLoadFactor float64 `json:"effective_loadfactor"`
	// SlowStart is the member's slow-start window ("0s": none).
	SlowStart     string     `json:"slowstart"`
	SlowStartEnds *time.Time `json:"slowstart_ends"`
	LBSet         int        `json:"lbset"`
	Route         string     `json:"route"`
	Redirect      string     `json:"redirect"`
	// Status is httpd's status words ("Init Ok", "Init Dis Err") without
	// the trailing space httpd prints after each (the balancer-manager page
	// and its XML keep "Init Ok "); Flags the set flags as status letters
	// ("OD"); Usable whether the member can take requests.
	Status      string     `json:"status"`
	Flags       string     `json:"flags"`
	Usable      bool       `json:"usable"`
	LBStatus    int64      `json:"lbstatus"`
	Elected     int64      `json:"elected"`
	Busy        int64      `json:"busy"`
	Transferred int64      `json:"transferred"`
	Read        int64      `json:"read"`
	Retries     int64      `json:"retries"`
	ErrorTime   *time.Time `json:"error_time"`
	Retry       string     `json:"retry"`
	Timeout     string     `json:"timeout"`
	Dynamic     bool       `json:"dynamic"`
	HCMethod    string     `json:"hcmethod"`
	HCURI       string     `json:"hcuri"`
	HCInterval  string     `json:"hcinterval"`
	HCPasses    int        `json:"hcpasses"`
	HCFails     int        `json:"hcfails"`
	HCExpr      string     `json:"hcexpr"`
	PCount      int        `json:"pcount"`
	FCount      int        `json:"fcount"`
	// Warnings, in the answer to a change of the member, say where the
	// change is not kept as configured (see Balancer.Warnings).
	Warnings []string `json:"warnings,omitempty"`
}

// Error is an error answer.
type Error struct {
	Error string `json:"error"`
}

// NewBalancer is the JSON of a balancer's view.
func NewBalancer(v balancer.View) Balancer {
	out := Balancer{
		Name: v.Name, LBMethod: v.LBMethod, SColonPathDelim: v.SColonPathDelim, NoFailover: v.NoFailover,
		MaxAttempts: v.MaxAttempts, Timeout: v.Timeout.String(), ForceRecovery: v.ForceRecovery,
		FailOnStatus: v.FailOnStatus, FailOnTimeout: v.FailOnTimeout, Growth: v.Growth, SlowStart: v.SlowStart.String(),
		MaxMembers: v.MaxMembers, FreeSlots: v.FreeSlots(), Persist: v.Durability.Persist,
		PersistError: v.Durability.PersistError, Nonce: v.Nonce, Members: make([]Member, 0, len(v.Members)),
		Warnings: v.Durability.Warnings(),
	}
	if f := v.Durability.Fleet; f != nil {
		out.Sync = &Sync{Store: f.Store, Node: f.Node, Connected: f.Connected, Pending: f.Pending, LastError: f.LastError}
		if !f.LastSync.IsZero() {
			t := f.LastSync.UTC()
			out.Sync.LastSync = &t
		}
	}
	if out.FailOnStatus == nil {
		out.FailOnStatus = []int{}
	}
	switch {
	case v.StickySession == "" && v.StickyPath == "":
	case v.StickySession == v.StickyPath:
		out.StickySession = v.StickySession
	default:
		out.StickySession = v.StickySession + "|" + v.StickyPath
	}
	if v.StickySeparator == 0 {
		out.StickySessionSep = "off"
	} else {
		out.StickySessionSep = string(v.StickySeparator)
	}
	for _, m := range v.Members {
		out.Members = append(out.Members, NewMember(m))
	}
	return out
}

// NewMember is the JSON of a member's view.
func NewMember(m balancer.MemberView) Member {
	hc := m.HC.WithDefaults()
	method := hc.Method
	if method == "" {
		method = "NONE"
	}
	am := Member{
		Name: m.Name, URL: m.Name, LoadFactor: float64(m.LoadFactor) / 100,
		EffectiveLoadFactor: float64(m.EffectiveLoadFactor) / 100, SlowStart: m.SlowStart.String(), LBSet: m.LBSet,
		Route: m.Route, Redirect: m.Redirect, Status: strings.TrimSpace(m.Status.String()), Flags: m.Status.Letters(),
		Usable: m.Status.Usable(), LBStatus: m.LBStatus, Elected: m.Elected, Busy: m.Busy,
		Transferred: m.Transfer, Read: m.Read, Retries: m.Retries, Retry: m.Retry.String(),
		Timeout: m.Timeout.String(), Dynamic: m.Dynamic, HCMethod: method, HCURI: hc.URI,
		HCInterval: hc.Interval.String(), HCPasses: hc.Passes, HCFails: hc.Fails, HCExpr: hc.Expr,
		PCount: m.PCount, FCount: m.FCount,
	}
	if !m.ErrorTime.IsZero() {
		t := m.ErrorTime.UTC()
		am.ErrorTime = &t
	}
	if !m.SlowStartEnds.IsZero() {
		t := m.SlowStartEnds.UTC()
		am.SlowStartEnds = &t
	}
	return am
}

// changedMember is the answer to a change of a member: its JSON, with the
// balancer's warnings.
func changedMember(b *balancer.Balancer, m *balancer.Member) Member {
	am := NewMember(m.View())
	am.Warnings = b.Durability().Warnings()
	return am
}

// httpError is an error answer with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// editError maps an error of balancer.Apply to its answer.
func editError(err error) *httpError {
	switch {
	case errors.Is(err, balancer.ErrMemberExists), errors.Is(err, balancer.ErrNoFreeSlot),
		errors.Is(err, balancer.ErrNotDynamic):
		return errorf(http.StatusConflict, "%v", err)
	case errors.Is(err, balancer.ErrMemberRefused):
		return errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, balancer.ErrNotMember):
		return errorf(http.StatusNotFound, "%v", err)
	}
	return errorf(http.StatusBadRequest, "%v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	_ = enc.Encode(v)
}

// ServeHTTP implements http.Handler.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body, err := h.serve(r)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{status: http.StatusBadRequest, msg: err.Error()}
		}
		if he.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", allowFor(r))
		}
		writeJSON(w, he.status, Error{Error: he.msg})
		return
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func allowFor(r *http.Request) string {
	segs, _ := splitPath(r)
	switch len(segs) {
	case 0:
		return "GET"
	case 1:
		return "GET, PATCH"
	case 2:
		return "GET, POST"
	case 3:
		return "GET, PATCH, DELETE"
	default:
		return "POST"
	}
}

// splitPath splits the path after /balancers into decoded segments.
func splitPath(r *http.Request) ([]string, error) {
	p := strings.TrimPrefix(r.URL.EscapedPath(), Prefix)
	p = strings.Trim(p, "/")
	if p == "" {
		return nil, nil
	}
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "bad path segment %q: %v", s, err)
		}
		segs[i] = d
	}
	return segs, nil
}

func (h Handler) logger() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}

func (h Handler) serve(r *http.Request) (int, any, error) {
	segs, err := splitPath(r)
	if err != nil {
		return 0, nil, err
	}
	if len(segs) > 4 || (len(segs) >= 2 && segs[1] != "members") || (len(segs) == 4 && segs[3] != "drain") {
		return 0, nil, errorf(http.StatusNotFound, "no such resource: %s", r.URL.Path)
	}
	if len(segs) == 0 {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return 0, nil, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		out := []Balancer{}
		for _, b := range h.list() {
			out = append(out, NewBalancer(b.View()))
		}
		return http.StatusOK, out, nil
	}
	b := h.find(segs[0])
	if b == nil {
		return 0, nil, errorf(http.StatusNotFound, "unknown balancer %q", segs[0])
	}
	switch len(segs) {
	case 1:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, NewBalancer(b.View()), nil
		case http.MethodPatch:
			if err := h.patchBalancer(b, r); err != nil {
				return 0, nil, err
			}
			return http.StatusOK, NewBalancer(b.View()), nil
		}
	case 2:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, NewBalancer(b.View()).Members, nil
		case http.MethodPost:
			m, err := h.addMember(b, r)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusCreated, changedMember(b, m), nil
		}
	case 3, 4:
		m := FindMember(b, segs[2])
		if m == nil {
			return 0, nil, errorf(http.StatusNotFound, "balancer %q has no member %q", b.Name(), segs[2])
		}
		if len(segs) == 4 {
			if r.Method != http.MethodPost {
				break
			}
			return h.drain(b, m, r)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, NewMember(m.View()), nil
		case http.MethodPatch:
			if err := h.patchMember(b, m, r); err != nil {
				return 0, nil, err
			}
			return http.StatusOK, changedMember(b, m), nil
		case http.MethodDelete:
			if _, err := b.Apply(balancer.Edit{Remove: []string{m.Name()}}, balancer.ReasonAPI); err != nil {
				return 0, nil, editError(err)
			}
			h.logger().Info("balancer API: member removed", zap.String("balancer", b.Name()), zap.String("member", m.Name()))
			return http.StatusNoContent, nil, nil
		}
	}
	return 0, nil, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
}

func (h Handler) list() []*balancer.Balancer {
	if h.Balancers == nil {
		return nil
	}
	return h.Balancers()
}

// find finds a live balancer by name ("balancer://" prefix and case ignored).
func (h Handler) find(name string) *balancer.Balancer {
	name = strings.ToLower(strings.TrimPrefix(name, "balancer://"))
	for _, b := range h.list() {
		if b.Name() == name {
			return b
		}
	}
	return nil
}

// FindMember resolves {member}: a URL (exactly its normalized name, else the
// manager's longest-prefix rule), or a route.
func FindMember(b *balancer.Balancer, key string) *balancer.Member {
	if strings.Contains(key, "://") {
		if name, _, _, _, _, _, err := balancer.NormalizeURL(key); err == nil {
			if m := b.FindMemberByName(name); m != nil {
				return m
			}
		}
		if m := b.FindMember(key); m != nil {
			return m
		}
	}
	return b.FindMemberByRoute(key)
}

// bodyLimit bounds JSON request bodies.
const bodyLimit = 1 << 20

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, bodyLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "request body is empty, want a JSON object")
		}
		return errorf(http.StatusBadRequest, "decoding request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

// Duration is a duration in JSON: a Caddy duration string ("1s", "1500ms",
// "1d") or a number of seconds, as httpd reads a bare number.
type Duration struct {
	set bool
	d   time.Duration
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Duration) UnmarshalJSON(b []byte) error {
	a.set = true
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		a.d = time.Duration(n * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"5s\" or a number of seconds")
	}
	d, err := config.ParseSeconds(s)
	if err != nil {
		return err
	}
	a.d = d
	return nil
}

// BalancerPatch is the body of PATCH /balancers/{name}; absent fields are
// left alone.
type BalancerPatch struct {
	LBMethod *string `json:"lbmethod"`
	// StickySession is "COOKIE", "COOKIE|param", or "" to remove sticky
	// sessions.
	StickySession *string  `json:"stickysession"`
	NoFailover    *bool    `json:"nofailover"`
	ForceRecovery *bool    `json:"forcerecovery"`
	MaxAttempts   *int     `json:"maxattempts"`
	Timeout       Duration `json:"timeout"`
}

func (h Handler) patchBalancer(b *balancer.Balancer, r *http.Request) error {
	var p BalancerPatch
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	e := balancer.Edit{LBMethod: p.LBMethod, NoFailover: p.NoFailover, ForceRecovery: p.ForceRecovery, MaxAttempts: p.MaxAttempts}
	if p.StickySession != nil {
		ss := balancer.ParseStickySession(*p.StickySession)
		e.StickySession = &ss
	}
	if p.Timeout.set {
		e.Timeout = &p.Timeout.d
	}
	if _, err := b.Apply(e, balancer.ReasonAPI); err != nil {
		return editError(err)
	}
	h.logger().Info("balancer API: balancer changed", zap.String("balancer", b.Name()))
	return nil
}

// MemberPatch is the body of PATCH /balancers/{name}/members/{member} (and,
// with url, of POST /balancers/{name}/members); absent fields are left alone.
type MemberPatch struct {
	URL        *string  `json:"url"`
	LoadFactor *float64 `json:"loadfactor"`
	LBSet      *int     `json:"lbset"`
	Route      *string  `json:"route"`
	Redirect   *string  `json:"redirect"`
	// Status changes flags in httpd's syntax: "+D-N".
	Status     *string  `json:"status"`
	HCMethod   *string  `json:"hcmethod"`
	HCURI      *string  `json:"hcuri"`
	HCInterval Duration `json:"hcinterval"`
	HCPasses   *int     `json:"hcpasses"`
	HCFails    *int     `json:"hcfails"`
	HCExpr     *string  `json:"hcexpr"`
}

// memberEdit turns the patch into an edit of the member named name, whose
// health-check settings are hc.
func (p *MemberPatch) memberEdit(name string, hc balancer.HealthCheck) (balancer.MemberEdit, error) {
	me := balancer.MemberEdit{Name: name, LBSet: p.LBSet, Route: p.Route, Redirect: p.Redirect}
	if p.LoadFactor != nil {
		lf, err := balancer.LoadFactor(*p.LoadFactor)
		if err != nil {
			return me, errorf(http.StatusBadRequest, "%v", err)
		}
		me.LoadFactor = &lf
	}
	if p.Status != nil {
		set, clear, err := balancer.ParseStatusChange(*p.Status)
		if err != nil {
			return me, errorf(http.StatusBadRequest, "%v", err)
		}
		me.Set, me.Clear = set, clear
	}
	if hc, changed := p.healthCheck(hc); changed {
		me.HealthCheck = &hc
	}
	return me, nil
}

// healthCheck merges the hc fields into hc.
func (p *MemberPatch) healthCheck(hc balancer.HealthCheck) (balancer.HealthCheck, bool) {
	changed := false
	if p.HCMethod != nil {
		hc.Method, changed = *p.HCMethod, true
	}
	if p.HCURI != nil {
		hc.URI, changed = *p.HCURI, true
	}
	if p.HCInterval.set {
		hc.Interval, changed = p.HCInterval.d, true
	}
	if p.HCPasses != nil {
		hc.Passes, changed = *p.HCPasses, true
	}
	if p.HCFails != nil {
		hc.Fails, changed = *p.HCFails, true
	}
	if p.HCExpr != nil {
		hc.Expr, changed = *p.HCExpr, true
	}
	return hc, changed
}

func (h Handler) patchMember(b *balancer.Balancer, m *balancer.Member, r *http.Request) error {
	var p MemberPatch
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	if p.URL != nil {
		return errorf(http.StatusBadRequest, "url cannot be changed; add a new member and remove this one")
	}
	me, err := p.memberEdit(m.Name(), m.View().HC)
	if err != nil {
		return err
	}
	if _, err := b.Apply(balancer.Edit{Members: []balancer.MemberEdit{me}}, balancer.ReasonAPI); err != nil {
		return editError(err)
	}
	h.logger().Info("balancer API: member changed", zap.String("balancer", b.Name()), zap.String("member", m.Name()))
	return nil
}

func (h Handler) addMember(b *balancer.Balancer, r *http.Request) (*balancer.Member, error) {
	var p MemberPatch
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	if p.URL == nil || *p.URL == "" {
		return nil, errorf(http.StatusBadRequest, "url is required")
	}
	me, err := p.memberEdit("", balancer.HealthCheck{})
	if err != nil {
		return nil, err
	}
	mc := balancer.MemberConfig{URL: *p.URL}
	if me.LoadFactor != nil {
		mc.LoadFactor = *me.LoadFactor
	}
	if me.LBSet != nil {
		mc.LBSet = *me.LBSet
	}
	if me.Route != nil {
		mc.Route = *me.Route
	}
	if me.Redirect != nil {
		mc.Redirect = *me.Redirect
	}
	if me.HealthCheck != nil {
		mc.HealthCheck = *me.HealthCheck
	}
	// A new member starts Disabled, as from httpd's manager; "status" is
	// applied on top ("-D" enables it at once).
	mc.Status = (balancer.Disabled | me.Set) &^ me.Clear
	res, err := b.Apply(balancer.Edit{Add: []balancer.MemberConfig{mc}}, balancer.ReasonAPI)
	if err != nil {
		return nil, editError(err)
	}
	m := res.Added[0]
	h.logger().Info("balancer API: member added", zap.String("balancer", b.Name()), zap.String("member", m.Name()))
	return m, nil
}
