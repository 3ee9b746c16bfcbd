// Package caddybalancer is the Caddy glue of caddy-balancer: the
// `http.handlers.balancer` handler, its Caddyfile directive, and the admin and
// selection-policy modules. The load-balancing engine, httpd 2.4's
// mod_proxy_balancer, is in package balancer.
package caddybalancer

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is an httpd `<Proxy balancer://name>` block with its ProxyPass: a
// reverse proxy whose upstreams are balancer members chosen as httpd 2.4's
// mod_proxy_balancer chooses them (lbsets, hot spares and standbys, status
// flags, sticky routes, the lbmethods, error and retry state).
//
// It embeds reverse_proxy: every reverse_proxy field (transport, headers,
// flush_interval, ...) is accepted inline, except those that choose upstreams
// (upstreams, dynamic_upstreams, load_balancing, health_checks): the balancer
// does that itself.
type Handler struct {
	reverseproxy.Handler

	// Name of the balancer (httpd's balancer://NAME, lower-cased). Blocks with
	// the same name share one balancer and its run-time state. Default: a name
	// derived from the member URLs.
	Name string `json:"name,omitempty"`

	// The lbmethod: byrequests (default), bytraffic or bybusyness.
	LBMethod string `json:"lbmethod,omitempty"`

	// StickySession names the session cookie, and optionally after a `|` the URL
	// parameter, that carry the route: `JSESSIONID|jsessionid`. Empty: no
	// sticky sessions.
	StickySession string `json:"stickysession,omitempty"`

	// StickySessionSep is the character that separates the route in the session
	// value (default "."), or "off" to use the whole value as the route.
	StickySessionSep string `json:"stickysessionsep,omitempty"`

	// SColonPathDelim makes ';' end a URL session value, as '&' does.
	SColonPathDelim bool `json:"scolonpathdelim,omitempty"`

	// NoFailover: a sticky request whose member is unusable gets 503 instead of
	// another member.
	NoFailover bool `json:"nofailover,omitempty"`

	// MaxAttempts is how many other members a request fails over to after a
	// connection failure. Default: members−1 (none with one member).
	MaxAttempts *int `json:"maxattempts,omitempty"`

	// Timeout is how long a request waits for a usable member before 503.
	// Default 0: answer 503 at once.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// ForceRecovery: when every member is in error, take them all out of error
	// and try again (default true).
	ForceRecovery *bool `json:"forcerecovery,omitempty"`

	// FailOnStatus lists member response codes that put the member in error.
	// The response is still passed to the client.
	FailOnStatus []int `json:"failonstatus,omitempty"`

	// FailOnTimeout puts a member in error when it times out (its member
	// `timeout`).
	FailOnTimeout bool `json:"failontimeout,omitempty"`

	// Growth is the number of members that may be added at run time.
	Growth int `json:"growth,omitempty"`

	// Persist keeps run-time changes in Caddy's storage across restarts
	// (httpd's BalancerPersist).
	Persist bool `json:"persist,omitempty"`

	// Nonce of the balancer-manager; "None" makes the manager read-only.
	// Default: random at first start.
	Nonce *string `json:"nonce,omitempty"`

	// RouteCookie, when set, makes the balancer send
	// `Set-Cookie: <stickysession cookie>=.<route>; <attributes>` whenever the
	// route changed, the job of httpd's `Header add Set-Cookie
	// "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED`.
	RouteCookie *RouteCookie `json:"route_cookie,omitempty"`

	// ProxyPassReverse is the list of httpd's ProxyPassReverse rules that
	// rewrite the Location, Content-Location, URI and Destination headers of
	// this handler's responses. As in httpd, every rule is tried in order on
	// each header value, whichever balancer or member served the response,
	// and the first rule that matches rewrites it. httpd's rule set is the
	// request's merged directory configuration: the server's rules first (in
	// configuration order), then those of the more specific <Location>. To
	// get httpd's server-wide behaviour, list the same rules in every
	// balancer handler of the site.
	ProxyPassReverse []ProxyPassReverse `json:"proxy_pass_reverse,omitempty"`

	// ProxyPassReverseCookieDomain rewrites the domain of Set-Cookie
	// (httpd's ProxyPassReverseCookieDomain), first matching rule wins.
	ProxyPassReverseCookieDomain []CookieRewrite `json:"proxy_pass_reverse_cookie_domain,omitempty"`

	// ProxyPassReverseCookiePath rewrites the path of Set-Cookie
	// (httpd's ProxyPassReverseCookiePath), first matching rule wins.
	ProxyPassReverseCookiePath []CookieRewrite `json:"proxy_pass_reverse_cookie_path,omitempty"`

	// Members of the balancer, in configuration order.
	Members []Member `json:"members,omitempty"`

	bal  *balancer.Balancer
	rmap *reverseMapper
	// memberHost: send the member's host as Host, as httpd does by default
	// (ProxyPreserveHost Off), unless the user sets Host with header_up.
	memberHost bool
	entry      *registryEntry
	logger     *zap.Logger

	// rpProvisioned: the embedded reverse_proxy's Provision was called, so
	// its Cleanup may be (it panics on an unprovisioned handler).
	rpProvisioned bool
}

// RouteCookie configures the route cookie.
type RouteCookie struct {
	// Attributes follow the value, e.g. "path=/; HttpOnly". Default "path=/".
	Attributes string `json:"attributes,omitempty"`
}

// ProxyPassReverse is one httpd `ProxyPassReverse <prefix> <real>` rule. Its
// real side is either a balancer (`balancer` and `path`: httpd's
// balancer://NAME/PART) or a plain URL or path (`url`), not both.
type ProxyPassReverse struct {
	// Prefix is the public side, httpd's first argument: a path (or an
	// absolute URL) that replaces the matched start of the value. A result
	// that is not an absolute URL is made absolute with the client request's
	// scheme and Host, as httpd's ap_construct_url (default port omitted).
	// Default "/".
	Prefix string `json:"prefix,omitempty"`

	// Balancer names the balancer whose members the rule maps (httpd's
	// balancer://NAME, case-insensitive). Empty: this handler's own balancer.
	// The balancer's members are looked up for each response, so members
	// added at run time count. A value matches when it starts with any
	// member's URL (case-insensitive) followed by Path (case-sensitive),
	// whichever member served the response. A name that no loaded
	// configuration defines is not a balancer, as in httpd: the rule then
	// compares "balancer://NAME" + Path as a plain URL, which practically
	// never matches.
	Balancer string `json:"balancer,omitempty"`

	// Path is the part after the balancer name in httpd's second argument
	// (balancer://name/sub → "/sub"); it must start with "/" and directly
	// follow the member URL. Empty or "/": the value need only start with a
	// member URL (and with prefix "/", a rest that starts with "/" is not
	// doubled).
	Path string `json:"path,omitempty"`

	// URL makes this a plain rule (httpd's ProxyPassReverse to a URL that is
	// not balancer://): a value that starts with URL (case-insensitive) gets
	// Prefix instead of that start. A URL that starts with "/" is compared
	// with the path of an absolute value (from the first "/" after "://") or
	// with the whole value if it is not absolute. Not with Balancer or Path.
	URL string `json:"url,omitempty"`
}

// CookieRewrite is one ProxyPassReverseCookieDomain/Path rule.
type CookieRewrite struct {
	// Internal is the domain or path the member sets.
	Internal string `json:"internal"`
	// Public replaces the whole attribute value when Internal is its prefix.
	Public string `json:"public"`
}

// Member is one httpd BalancerMember.
type Member struct {
	// URL of the member, scheme://host[:port][/path]. A path prefixes the
	// proxied path.
	URL string `json:"url"`
	// LoadFactor is the member's weight, 1 to 100 (decimals allowed; kept ×100
	// as httpd does). Default 1.
	LoadFactor float64 `json:"loadfactor,omitempty"`
	// LBSet is the member's tier, 0 to 99. Lower sets are used first.
	LBSet int `json:"lbset,omitempty"`
	// Route is the sticky-session route of this member.
	Route string `json:"route,omitempty"`
	// Redirect is the route that sticky requests of this member use while it is
	// unusable.
	Redirect string `json:"redirect,omitempty"`
	// Status holds initial flags in httpd syntax: "+H", "D", "+R-I" ...
	Status string `json:"status,omitempty"`
	// Retry is how long the member stays in error before it is tried again.
	// Default 60s; 0 retries it on every request.
	Retry *caddy.Duration `json:"retry,omitempty"`
	// Timeout is how long to wait for the member's response headers; 0 means the
	// transport's own timeouts.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// HCMethod is the health-check method: TCP, OPTIONS, HEAD, GET,
	// OPTIONS11, HEAD11, GET11. Empty: no checks.
	HCMethod string `json:"hcmethod,omitempty"`
	// HCURI is the health-check request URI.
	HCURI string `json:"hcuri,omitempty"`
	// HCInterval is the time between checks (default 30s).
	HCInterval caddy.Duration `json:"hcinterval,omitempty"`
	// HCPasses: passes needed to clear HcFl (default 1).
	HCPasses int `json:"hcpasses,omitempty"`
	// HCFails: failures needed to set HcFl (default 1).
	HCFails int `json:"hcfails,omitempty"`
	// HCExpr is a condition on the check response, as httpd's ProxyHCExpr.
	HCExpr string `json:"hcexpr,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.balancer",
		New: func() caddy.Module { return new(Handler) },
	}
}

// engineConfig translates the module's fields into the engine's configuration.
func (h *Handler) engineConfig() (balancer.Config, error) {
	cfg := balancer.Config{
		Name:            strings.ToLower(h.Name),
		LBMethod:        h.LBMethod,
		SColonPathDelim: h.SColonPathDelim,
		NoFailover:      h.NoFailover,
		Timeout:         time.Duration(h.Timeout),
		ForceRecovery:   h.ForceRecovery == nil || *h.ForceRecovery,
		FailOnStatus:    h.FailOnStatus,
		FailOnTimeout:   h.FailOnTimeout,
		Growth:          h.Growth,
		StickySeparator: '.',
	}
	if cfg.Name == "" {
		cfg.Name = defaultName(h.Members)
	}
	if h.StickySession != "" {
		cookie, path, _ := strings.Cut(h.StickySession, "|")
		cfg.StickySession, cfg.StickyPath = cookie, path
		if path == "" {
			cfg.StickyPath = cookie
		}
	}
	switch sep := h.StickySessionSep; {
	case sep == "":
	case strings.EqualFold(sep, "off"):
		cfg.StickySeparator = 0
	case len(sep) == 1:
		cfg.StickySeparator = sep[0]
	default:
		return cfg, fmt.Errorf("stickysessionsep must be a single character or Off, not %q", sep)
	}
	if h.MaxAttempts != nil {
		cfg.MaxAttempts, cfg.MaxAttemptsSet = *h.MaxAttempts, true
	}
	if h.Nonce != nil {
		cfg.NonceSet = true
		if *h.Nonce != "None" {
			cfg.Nonce = *h.Nonce
		}
	}
	for i, m := range h.Members {
		mc, err := m.engineConfig()
		if err != nil {
			return cfg, fmt.Errorf("member %d (%s): %w", i+1, m.URL, err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	return cfg, nil
}

func (m Member) engineConfig() (balancer.MemberConfig, error) {
	mc := balancer.MemberConfig{
		URL: m.URL, LBSet: m.LBSet, Route: m.Route, Redirect: m.Redirect,
		Timeout: time.Duration(m.Timeout),
		HealthCheck: balancer.HealthCheck{
			Method: strings.ToUpper(m.HCMethod), URI: m.HCURI, Interval: time.Duration(m.HCInterval),
			Passes: m.HCPasses, Fails: m.HCFails, Expr: m.HCExpr,
		},
	}
	if m.LoadFactor != 0 {
		lf := int(m.LoadFactor * 100)
		if lf < 100 || lf > 10000 {
			return mc, fmt.Errorf("loadfactor must be a number between 1..100, not %v", m.LoadFactor)
		}
		mc.LoadFactor = lf
	}
	st, err := balancer.ParseStatus(m.Status, 0)
	if err != nil {
		return mc, err
	}
	mc.Status = st
	if m.Retry != nil {
		r := time.Duration(*m.Retry)
		mc.Retry = &r
	}
	return mc, nil
}

// defaultName derives a balancer name from the member URLs, stable across
// reloads of the same configuration.
func defaultName(members []Member) string {
	if len(members) == 0 {
		return "default"
	}
	f := fnv.New32a()
	for _, m := range members {
		f.Write([]byte(m.URL))
		f.Write([]byte{0})
	}
	return fmt.Sprintf("auto%08x", f.Sum32())
}

// Provision sets up the balancer and the embedded reverse proxy.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if len(h.Upstreams) > 0 || h.DynamicUpstreamsRaw != nil {
		return fmt.Errorf("balancer: upstreams come from balancer_member, not 'to' or 'dynamic'")
	}
	if h.LoadBalancing != nil && (h.LoadBalancing.SelectionPolicyRaw != nil || h.LoadBalancing.Retries != 0 ||
		h.LoadBalancing.TryDuration != 0 || h.LoadBalancing.RetryMatchRaw != nil) {
		return fmt.Errorf("balancer: load balancing is set with lbmethod, maxattempts and timeout, not lb_* options")
	}
	if h.HealthChecks != nil {
		return fmt.Errorf("balancer: health checks are set per member with hcmethod, hcuri, hcinterval ..., not health_* options")
	}
	if err := validateReverseRules(h.ProxyPassReverse); err != nil {
		return err
	}
	cfg, err := h.engineConfig()
	if err != nil {
		return err
	}
	h.Name = cfg.Name
	entry, err := acquireBalancer(ctx, cfg, h.defines())
	if err != nil {
		return err
	}
	h.entry, h.bal = entry, entry.bal
	h.setupPersistence(ctx) // persist.go: BalancerPersist

	h.DynamicUpstreams = memberSource{h}
	h.LoadBalancing = &reverseproxy.LoadBalancing{SelectionPolicy: pickedSelector{}}
	h.rpProvisioned = true
	if err := h.Handler.Provision(ctx); err != nil {
		releaseBalancer(entry)
		h.entry = nil // Caddy calls Cleanup after a failed Provision: release once
		return err
	}
	h.Transport = newMemberTransport(h.Transport)
	h.rmap = h.reverseMapper()
	h.memberHost = !h.setsHostHeader()
	return h.provisionExtras(ctx)
}

// setsHostHeader reports whether header_up sets the Host header.
func (h *Handler) setsHostHeader() bool {
	if h.Headers == nil || h.Headers.Request == nil {
		return false
	}
	ops := h.Headers.Request
	if ops.Set.Get("Host") != "" || ops.Add.Get("Host") != "" {
		return true
	}
	return len(ops.Replace["Host"]) > 0
}

// defines reports whether this block defines the balancer (it has members or
// balancer parameters) rather than only referring to it by name.
func (h *Handler) defines() bool {
	return len(h.Members) > 0 || h.LBMethod != "" || h.StickySession != "" || h.StickySessionSep != "" ||
		h.SColonPathDelim || h.NoFailover || h.MaxAttempts != nil || h.Timeout != 0 || h.ForceRecovery != nil ||
		len(h.FailOnStatus) > 0 || h.FailOnTimeout || h.Growth != 0 || h.Persist || h.Nonce != nil
}

// Cleanup releases the balancer and the embedded reverse proxy.
func (h *Handler) Cleanup() error {
	if h.entry != nil {
		releaseBalancer(h.entry)
		h.entry = nil
	}
	if !h.rpProvisioned {
		return nil // Provision failed before the embedded reverse_proxy was set up
	}
	return h.Handler.Cleanup()
}

// pickedSelector returns the member the balancer already chose: the upstream
// source hands reverse_proxy a pool of exactly that one member.
type pickedSelector struct{}

func (pickedSelector) Select(pool reverseproxy.UpstreamPool, _ *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	if len(pool) == 0 {
		return nil
	}
	return pool[0]
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ reverseproxy.Selector       = pickedSelector{}
	_ reverseproxy.UpstreamSource = memberSource{}
)
