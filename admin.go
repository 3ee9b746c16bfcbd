package caddybalancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

func init() {
	caddy.RegisterModule(AdminManager{})
}

// AdminManager is the admin API module `admin.api.balancer_manager`. On
// Caddy's admin endpoint it serves
//
//   - /balancer-manager (and below): httpd 2.4's balancer-manager, the HTML
//     page, its POST form protocol and ?xml=1, for existing automation
//     (Ansible's community.general.apache2_mod_proxy, curl scripts). Caddy's
//     admin origin check refuses a browser that opens the URL directly, so
//     people use the balancer_manager site handler;
//   - /balancers: a JSON API over the same balancers.
//
// It lists every live balancer of the running config.
type AdminManager struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminManager) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.balancer_manager",
		New: func() caddy.Module { return new(AdminManager) },
	}
}

// Provision sets up the module.
func (a *AdminManager) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	return nil
}

// Routes returns the admin routes.
func (a *AdminManager) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/balancer-manager", Handler: caddy.AdminHandlerFunc(a.serveManager)},
		{Pattern: "/balancer-manager/", Handler: caddy.AdminHandlerFunc(a.serveManager)},
		{Pattern: "/balancers", Handler: caddy.AdminHandlerFunc(a.serveAPI)},
		{Pattern: "/balancers/", Handler: caddy.AdminHandlerFunc(a.serveAPI)},
	}
}

// serveManager serves httpd's balancer-manager on the admin endpoint.
//
// The Referer gate differs from httpd's in one point: a request that carries
// no Referer at all keeps its parameters (it still needs the balancer's
// nonce to change anything). httpd 2.4.41+ drops them, as a CSRF defence for a
// page that any site's browser tab could post to. On Caddy's admin endpoint
// that defence is already there: the admin server rejects requests whose Host
// is not the admin address, and any browser request that carries Origin or
// Sec-Fetch-Mode (all current browsers send one of them on cross-site
// requests) from an origin other than the admin endpoint itself. What is
// left without a Referer are non-browser clients: curl/wget scripts and the
// Ansible module community.general.apache2_mod_proxy, which send none and so
// are broken against httpd >= 2.4.41. A Referer that names another host still
// drops all parameters, as in httpd. The site handler (balancer_manager
// directive) follows httpd exactly.
func (a *AdminManager) serveManager(w http.ResponseWriter, r *http.Request) error {
	serveManager(w, r, managerOptions{
		strictReferer: false,
		uri:           r.URL.Path,
		logger:        a.logger,
	})
	return nil
}

// ---- JSON API ------------------------------------------------------------

// apiBalancer is a balancer in the JSON API.
type apiBalancer struct {
	Name             string      `json:"name"`
	LBMethod         string      `json:"lbmethod"`
	StickySession    string      `json:"stickysession"`
	StickySessionSep string      `json:"stickysessionsep"`
	SColonPathDelim  bool        `json:"scolonpathdelim"`
	NoFailover       bool        `json:"nofailover"`
	MaxAttempts      int         `json:"maxattempts"`
	Timeout          string      `json:"timeout"`
	ForceRecovery    bool        `json:"forcerecovery"`
	FailOnStatus     []int       `json:"failonstatus"`
	FailOnTimeout    bool        `json:"failontimeout"`
	Growth           int         `json:"growth"`
	MaxMembers       int         `json:"max_members"`
	FreeSlots        int         `json:"free_slots"`
	Persist          bool        `json:"persist"`
	Nonce            string      `json:"nonce"`
	Members          []apiMember `json:"members"`
}

// apiMember is a member in the JSON API.
type apiMember struct {
	Name string `json:"name"`
	// URL is the same as name: the member's normalized URL.
	URL        string  `json:"url"`
	LoadFactor float64 `json:"loadfactor"`
	LBSet      int     `json:"lbset"`
	Route      string  `json:"route"`
	Redirect   string  `json:"redirect"`
	// Status is httpd's status string ("Init Ok "), Flags the set flags as
	// status letters ("OD"), Usable whether the member can take requests.
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
}

func toAPIBalancer(e *registryEntry) apiBalancer {
	v := e.bal.View()
	out := apiBalancer{
		Name: v.Name, LBMethod: v.LBMethod, SColonPathDelim: v.SColonPathDelim, NoFailover: v.NoFailover,
		MaxAttempts: v.MaxAttempts, Timeout: v.Timeout.String(), ForceRecovery: v.ForceRecovery,
		FailOnStatus: v.FailOnStatus, FailOnTimeout: v.FailOnTimeout, Growth: v.Growth,
		MaxMembers: v.MaxMembers, FreeSlots: v.FreeSlots(), Persist: persistEnabled(v.Name), Nonce: v.Nonce,
		Members: make([]apiMember, 0, len(v.Members)),
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
		out.Members = append(out.Members, toAPIMember(m))
	}
	return out
}

func toAPIMember(m balancer.MemberView) apiMember {
	hc := hcDefaults(m.HC)
	am := apiMember{
		Name: m.Name, URL: m.Name, LoadFactor: float64(m.LoadFactor) / 100, LBSet: m.LBSet,
		Route: m.Route, Redirect: m.Redirect, Status: m.Status.String(), Flags: m.Status.Letters(),
		Usable: m.Status.Usable(), LBStatus: m.LBStatus, Elected: m.Elected, Busy: m.Busy,
		Transferred: m.Transfer, Read: m.Read, Retries: m.Retries, Retry: m.Retry.String(),
		Timeout: m.Timeout.String(), Dynamic: m.Dynamic, HCMethod: hcMethodName(hc.Method), HCURI: hc.URI,
		HCInterval: hc.Interval.String(), HCPasses: hc.Passes, HCFails: hc.Fails, HCExpr: hc.Expr,
		PCount: m.PCount, FCount: m.FCount,
	}
	if !m.ErrorTime.IsZero() {
		t := m.ErrorTime.UTC()
		am.ErrorTime = &t
	}
	return am
}

// apiError is an error answer of the JSON API.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func apiErrorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	_ = enc.Encode(v)
}

// serveAPI serves the JSON API:
//
//	GET    /balancers
//	GET    /balancers/{name}
//	PATCH  /balancers/{name}
//	GET    /balancers/{name}/members
//	POST   /balancers/{name}/members
//	GET    /balancers/{name}/members/{member}
//	PATCH  /balancers/{name}/members/{member}
//	DELETE /balancers/{name}/members/{member}
//
// {member} is the member's URL, percent-encoded as one path segment, or its
// route. Errors are {"error": "..."} with 400, 404, 405 or 409.
func (a *AdminManager) serveAPI(w http.ResponseWriter, r *http.Request) error {
	status, body, err := a.api(r)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusBadRequest, msg: err.Error()}
		}
		if ae.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", allowFor(r))
		}
		writeJSON(w, ae.status, map[string]string{"error": ae.msg})
		return nil
	}
	if body == nil {
		w.WriteHeader(status)
		return nil
	}
	writeJSON(w, status, body)
	return nil
}

func allowFor(r *http.Request) string {
	segs, _ := apiPath(r)
	switch len(segs) {
	case 0:
		return "GET"
	case 1:
		return "GET, PATCH"
	case 2:
		return "GET, POST"
	default:
		return "GET, PATCH, DELETE"
	}
}

// apiPath splits the path after /balancers into decoded segments.
func apiPath(r *http.Request) ([]string, error) {
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/balancers")
	p = strings.Trim(p, "/")
	if p == "" {
		return nil, nil
	}
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, apiErrorf(http.StatusBadRequest, "bad path segment %q: %v", s, err)
		}
		segs[i] = d
	}
	return segs, nil
}

func (a *AdminManager) api(r *http.Request) (int, any, error) {
	segs, err := apiPath(r)
	if err != nil {
		return 0, nil, err
	}
	if len(segs) > 3 || (len(segs) >= 2 && segs[1] != "members") {
		return 0, nil, apiErrorf(http.StatusNotFound, "no such resource: %s", r.URL.Path)
	}
	if len(segs) == 0 {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return 0, nil, apiErrorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		out := []apiBalancer{}
		for _, e := range listBalancers(nil) {
			out = append(out, toAPIBalancer(e))
		}
		return http.StatusOK, out, nil
	}
	e := findEntry(segs[0])
	if e == nil {
		return 0, nil, apiErrorf(http.StatusNotFound, "unknown balancer %q", segs[0])
	}
	switch len(segs) {
	case 1:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, toAPIBalancer(e), nil
		case http.MethodPatch:
			if err := a.patchBalancer(e, r); err != nil {
				return 0, nil, err
			}
			persistBalancer(e.bal)
			return http.StatusOK, toAPIBalancer(e), nil
		}
	case 2:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, toAPIBalancer(e).Members, nil
		case http.MethodPost:
			m, err := a.addMember(e, r)
			if err != nil {
				return 0, nil, err
			}
			persistBalancer(e.bal)
			return http.StatusCreated, toAPIMember(m.View()), nil
		}
	case 3:
		m := findAPIMember(e.bal, segs[2])
		if m == nil {
			return 0, nil, apiErrorf(http.StatusNotFound, "balancer %q has no member %q", e.name, segs[2])
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return http.StatusOK, toAPIMember(m.View()), nil
		case http.MethodPatch:
			if err := a.patchMember(e, m, r); err != nil {
				return 0, nil, err
			}
			persistBalancer(e.bal)
			return http.StatusOK, toAPIMember(m.View()), nil
		case http.MethodDelete:
			if err := e.bal.RemoveMember(m); err != nil {
				if errors.Is(err, balancer.ErrNotDynamic) {
					return 0, nil, apiErrorf(http.StatusConflict, "member %s: %v", m.Name(), err)
				}
				return 0, nil, apiErrorf(http.StatusNotFound, "member %s: %v", m.Name(), err)
			}
			persistBalancer(e.bal)
			a.logger.Info("balancer API: member removed", zap.String("balancer", e.name), zap.String("member", m.Name()))
			return http.StatusNoContent, nil, nil
		}
	}
	return 0, nil, apiErrorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
}

// findEntry finds a live balancer by name ("balancer://" prefix and case ignored).
func findEntry(name string) *registryEntry {
	name = strings.ToLower(strings.TrimPrefix(name, "balancer://"))
	for _, e := range listBalancers(nil) {
		if e.name == name {
			return e
		}
	}
	return nil
}

// findAPIMember resolves {member}: a URL (exactly its normalized name, else
// the manager's longest-prefix rule), or a route.
func findAPIMember(b *balancer.Balancer, key string) *balancer.Member {
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

// apiBodyLimit bounds JSON request bodies.
const apiBodyLimit = 1 << 20

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, apiBodyLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return apiErrorf(http.StatusBadRequest, "request body is empty, want a JSON object")
		}
		return apiErrorf(http.StatusBadRequest, "decoding request body: %v", err)
	}
	if dec.More() {
		return apiErrorf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

// apiDuration is a duration in JSON: a Caddy duration string ("1s",
// "1500ms", "1d") or a number of seconds, as httpd reads a bare number.
type apiDuration struct {
	set bool
	d   time.Duration
}

func (a *apiDuration) UnmarshalJSON(b []byte) error {
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
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return err
	}
	a.d = d
	return nil
}

// balancerPatch is the body of PATCH /balancers/{name}; absent fields are
// left alone.
type balancerPatch struct {
	LBMethod      *string     `json:"lbmethod"`
	StickySession *string     `json:"stickysession"`
	NoFailover    *bool       `json:"nofailover"`
	MaxAttempts   *int        `json:"maxattempts"`
	Timeout       apiDuration `json:"timeout"`
}

func (a *AdminManager) patchBalancer(e *registryEntry, r *http.Request) error {
	var p balancerPatch
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	// Check everything first, so that a bad field changes nothing.
	if p.LBMethod != nil {
		if _, err := balancer.MethodByName(*p.LBMethod); err != nil {
			return apiErrorf(http.StatusBadRequest, "%v", err)
		}
	}
	if p.StickySession != nil && len(*p.StickySession) >= 63 {
		return apiErrorf(http.StatusBadRequest, "stickysession must be shorter than 63 characters")
	}
	if p.MaxAttempts != nil && (*p.MaxAttempts < 0 || *p.MaxAttempts > 99) {
		return apiErrorf(http.StatusBadRequest, "maxattempts must be between 0 and 99")
	}
	if p.Timeout.set && (p.Timeout.d < 0 || p.Timeout.d > 7200*time.Second) {
		return apiErrorf(http.StatusBadRequest, "timeout must be between 0 and 7200 seconds")
	}
	b := e.bal
	if p.LBMethod != nil {
		_ = b.SetLBMethod(*p.LBMethod)
	}
	if p.StickySession != nil {
		v := *p.StickySession
		if v == "" {
			v = "-"
		}
		_ = b.SetStickySession(v)
	}
	if p.NoFailover != nil {
		b.SetNoFailover(*p.NoFailover)
	}
	if p.MaxAttempts != nil {
		_ = b.SetMaxAttempts(*p.MaxAttempts)
	}
	if p.Timeout.set {
		_ = b.SetTimeout(p.Timeout.d)
	}
	a.logger.Info("balancer API: balancer changed", zap.String("balancer", e.name))
	return nil
}

// memberPatch is the body of PATCH /balancers/{name}/members/{member} (and,
// with url, of POST /balancers/{name}/members); absent fields are left alone.
type memberPatch struct {
	URL        *string     `json:"url"`
	LoadFactor *float64    `json:"loadfactor"`
	LBSet      *int        `json:"lbset"`
	Route      *string     `json:"route"`
	Redirect   *string     `json:"redirect"`
	Status     *string     `json:"status"`
	HCMethod   *string     `json:"hcmethod"`
	HCURI      *string     `json:"hcuri"`
	HCInterval apiDuration `json:"hcinterval"`
	HCPasses   *int        `json:"hcpasses"`
	HCFails    *int        `json:"hcfails"`
	HCExpr     *string     `json:"hcexpr"`
}

// check validates the fields and returns the load factor ×100 (0 if absent).
func (p *memberPatch) check() (int, error) {
	lf := 0
	if p.LoadFactor != nil {
		lf = int(*p.LoadFactor * 100)
		if *p.LoadFactor != *p.LoadFactor || lf < 100 || lf > 10000 {
			return 0, apiErrorf(http.StatusBadRequest, "loadfactor must be a number between 1..100")
		}
	}
	if p.LBSet != nil && (*p.LBSet < 0 || *p.LBSet > 99) {
		return 0, apiErrorf(http.StatusBadRequest, "lbset must be between 0 and 99")
	}
	if p.Route != nil && len(*p.Route) > 63 {
		return 0, apiErrorf(http.StatusBadRequest, "route must be shorter than 64 characters")
	}
	if p.Redirect != nil && len(*p.Redirect) > 63 {
		return 0, apiErrorf(http.StatusBadRequest, "redirect must be shorter than 64 characters")
	}
	if p.Status != nil {
		if _, err := balancer.ManagerStatus(*p.Status, 0); err != nil {
			return 0, apiErrorf(http.StatusBadRequest, "%v", err)
		}
	}
	return lf, nil
}

// healthCheck merges the hc fields into hc.
func (p *memberPatch) healthCheck(hc balancer.HealthCheck) (balancer.HealthCheck, bool) {
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

func validateHC(hc balancer.HealthCheck) error {
	if strings.EqualFold(hc.Method, "NONE") {
		hc.Method = ""
	}
	if err := hc.Validate(); err != nil {
		return apiErrorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

func (a *AdminManager) patchMember(e *registryEntry, m *balancer.Member, r *http.Request) error {
	var p memberPatch
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	if p.URL != nil {
		return apiErrorf(http.StatusBadRequest, "url cannot be changed; add a new member and remove this one")
	}
	lf, err := p.check()
	if err != nil {
		return err
	}
	hc, hcChanged := p.healthCheck(m.HealthCheck())
	if hcChanged {
		if err := validateHC(hc); err != nil {
			return err
		}
	}
	if lf != 0 {
		_ = m.SetLoadFactor(lf)
	}
	if p.LBSet != nil {
		_ = m.SetLBSet(*p.LBSet)
	}
	if p.Route != nil {
		m.SetRoute(*p.Route)
	}
	if p.Redirect != nil {
		m.SetRedirect(*p.Redirect)
	}
	if p.Status != nil {
		_ = m.ApplyStatus(*p.Status, balancer.ReasonAPI)
	}
	if hcChanged {
		if err := m.SetHealthCheck(hc); err != nil {
			return apiErrorf(http.StatusBadRequest, "%v", err)
		}
	}
	a.logger.Info("balancer API: member changed", zap.String("balancer", e.name), zap.String("member", m.Name()))
	return nil
}

func (a *AdminManager) addMember(e *registryEntry, r *http.Request) (*balancer.Member, error) {
	var p memberPatch
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	if p.URL == nil || *p.URL == "" {
		return nil, apiErrorf(http.StatusBadRequest, "url is required")
	}
	lf, err := p.check()
	if err != nil {
		return nil, err
	}
	mc := balancer.MemberConfig{URL: *p.URL, LoadFactor: lf}
	if p.LBSet != nil {
		mc.LBSet = *p.LBSet
	}
	if p.Route != nil {
		mc.Route = *p.Route
	}
	if p.Redirect != nil {
		mc.Redirect = *p.Redirect
	}
	if hc, changed := p.healthCheck(balancer.HealthCheck{}); changed {
		if strings.EqualFold(hc.Method, "NONE") {
			hc.Method = ""
		}
		hc.Method = strings.ToUpper(hc.Method)
		if err := validateHC(hc); err != nil {
			return nil, err
		}
		mc.HealthCheck = hc
	}
	// A new member starts Disabled, as from httpd's manager; "status" is
	// applied on top ("-D" enables it at once).
	st := balancer.Disabled
	if p.Status != nil {
		st, _ = balancer.ManagerStatus(*p.Status, st)
	}
	mc.Status = st
	m, err := e.bal.AddMemberConfig(mc, 0)
	switch {
	case errors.Is(err, balancer.ErrMemberExists), errors.Is(err, balancer.ErrNoFreeSlot):
		return nil, apiErrorf(http.StatusConflict, "%v", err)
	case err != nil:
		return nil, apiErrorf(http.StatusBadRequest, "%v", err)
	}
	a.logger.Info("balancer API: member added", zap.String("balancer", e.name), zap.String("member", m.Name()))
	return m, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminManager)(nil)
	_ caddy.Provisioner = (*AdminManager)(nil)
)
