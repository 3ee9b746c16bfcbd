// Package config is the JSON configuration of the `http.handlers.balancer`
// handler, httpd's `<Proxy balancer://...>` block with its ProxySet keys,
// BalancerMembers and ProxyPassReverse rules, and the reading of those keys
// from httpd-style text (`loadfactor=3`, `retry 60`, `timeout 1500ms`). The
// Caddyfile directive and the httpd config adapter both read parameters
// through SetParam; the handler embeds Balancer, and the adapter and the
// conformance suite marshal Handler values, so there is one JSON writer.
// Every rule is the engine's (package balancer): this package only parses.
package config

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

// Balancer is the balancer part of the handler's JSON: httpd's ProxySet
// keys, the members and the response rewriting rules.
type Balancer struct {
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

	// Growth is the number of members that may be added at run time, 0 to 100.
	Growth int `json:"growth,omitempty"`

	// GrowthAllow limits the members added at run time (manager, JSON API,
	// fleet sync, restored state) to these hosts: host names, IP addresses
	// or CIDR ranges ("10.0.0.0/8"). A name given here matches the member's
	// host name as written; a range matches every address the host resolves
	// to when the member is added. Default: any host, except this Caddy's
	// own listeners (its admin endpoint and its sites), which are always
	// refused.
	GrowthAllow []string `json:"growth_allow,omitempty"`

	// SlowStart is the time, 0 to 24h, over which a member that becomes
	// usable again (out of Err, HcFl, Dis or Stop) or is added at run time
	// ramps up from almost nothing to its loadfactor, linearly, instead of
	// taking its whole share at once. httpd has no slow start. Default 0:
	// off. A member's own slowstart overrides it.
	SlowStart caddy.Duration `json:"slowstart,omitempty"`

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
	ProxyPassReverse []proxypassreverse.Rule `json:"proxy_pass_reverse,omitempty"`

	// ProxyPassReverseCookieDomain rewrites the domain of Set-Cookie
	// (httpd's ProxyPassReverseCookieDomain), first matching rule wins.
	ProxyPassReverseCookieDomain []proxypassreverse.CookieRule `json:"proxy_pass_reverse_cookie_domain,omitempty"`

	// ProxyPassReverseCookiePath rewrites the path of Set-Cookie
	// (httpd's ProxyPassReverseCookiePath), first matching rule wins.
	ProxyPassReverseCookiePath []proxypassreverse.CookieRule `json:"proxy_pass_reverse_cookie_path,omitempty"`

	// Members of the balancer, in configuration order.
	Members []Member `json:"members,omitempty"`
}

// RouteCookie configures the route cookie.
type RouteCookie struct {
	// Attributes follow the value, e.g. "path=/; HttpOnly". Default "path=/".
	Attributes string `json:"attributes,omitempty"`
}

// Member is one httpd BalancerMember.
type Member struct {
	// URL of the member, http[s]://host[:port][/path]. A path prefixes the
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
	// HCInterval is the time between checks (default 30s, at least 100ms).
	HCInterval caddy.Duration `json:"hcinterval,omitempty"`
	// HCPasses: passes needed to clear HcFl (default 1).
	HCPasses int `json:"hcpasses,omitempty"`
	// HCFails: failures needed to set HcFl (default 1).
	HCFails int `json:"hcfails,omitempty"`
	// HCExpr is a condition on the check response, as httpd's ProxyHCExpr.
	HCExpr string `json:"hcexpr,omitempty"`
	// SlowStart is this member's slow-start window, overriding the
	// balancer's slowstart; 0 turns slow start off for the member. Not an
	// httpd key.
	SlowStart *caddy.Duration `json:"slowstart,omitempty"`
}

// Handler is the whole JSON of an `http.handlers.balancer` handler: the
// embedded reverse_proxy fields (transport, headers, ...) and the balancer's.
// The httpd adapter and the conformance suite write handlers through it.
type Handler struct {
	reverseproxy.Handler
	Balancer
}

// MarshalJSON writes the handler with its module name ("handler": "balancer").
func (h Handler) MarshalJSON() ([]byte, error) {
	type inline struct {
		Name string `json:"handler"`
		reverseproxy.Handler
		Balancer
	}
	return json.Marshal(inline{Name: "balancer", Handler: h.Handler, Balancer: h.Balancer})
}

// Engine translates the configuration into the engine's.
func (b *Balancer) Engine() (balancer.Config, error) {
	cfg := balancer.Config{
		Name:            strings.ToLower(b.Name),
		LBMethod:        b.LBMethod,
		SColonPathDelim: b.SColonPathDelim,
		NoFailover:      b.NoFailover,
		Timeout:         time.Duration(b.Timeout),
		ForceRecovery:   b.ForceRecovery == nil || *b.ForceRecovery,
		FailOnStatus:    b.FailOnStatus,
		FailOnTimeout:   b.FailOnTimeout,
		Growth:          b.Growth,
		GrowthAllow:     b.GrowthAllow,
		SlowStart:       time.Duration(b.SlowStart),
		StickySeparator: '.',
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName(b.Members)
	}
	if b.StickySession != "" {
		ss := balancer.ParseStickySession(b.StickySession)
		cfg.StickySession, cfg.StickyPath = ss.Cookie, ss.Path
	}
	switch sep := b.StickySessionSep; {
	case sep == "":
	case strings.EqualFold(sep, "off"):
		cfg.StickySeparator = 0
	case len(sep) == 1:
		cfg.StickySeparator = sep[0]
	default:
		return cfg, balancer.Invalid("stickysessionsep", sep)
	}
	if b.MaxAttempts != nil {
		cfg.MaxAttempts, cfg.MaxAttemptsSet = *b.MaxAttempts, true
	}
	if b.Nonce != nil {
		cfg.NonceSet = true
		if *b.Nonce != "None" {
			cfg.Nonce = *b.Nonce
		}
	}
	for i, m := range b.Members {
		mc, err := m.Engine()
		if err != nil {
			return cfg, fmt.Errorf("member %d (%s): %w", i+1, m.URL, err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	if err := proxypassreverse.Validate(b.ProxyPassReverse); err != nil {
		return cfg, err
	}
	return cfg, balancer.Validate(cfg)
}

// Engine translates the member into the engine's configuration.
func (m Member) Engine() (balancer.MemberConfig, error) {
	mc := balancer.MemberConfig{
		URL: m.URL, LBSet: m.LBSet, Route: m.Route, Redirect: m.Redirect,
		Timeout: time.Duration(m.Timeout),
		HealthCheck: balancer.HealthCheck{
			Method: strings.ToUpper(m.HCMethod), URI: m.HCURI, Interval: time.Duration(m.HCInterval),
			Passes: m.HCPasses, Fails: m.HCFails, Expr: m.HCExpr,
		},
	}
	if m.LoadFactor != 0 {
		lf, err := balancer.LoadFactor(m.LoadFactor)
		if err != nil {
			return mc, err
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
	if m.SlowStart != nil {
		ss := time.Duration(*m.SlowStart)
		mc.SlowStart = &ss
	}
	return mc, nil
}

// DefaultName derives a balancer name from the member URLs, stable across
// reloads of the same configuration.
func DefaultName(members []Member) string {
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

// Defines reports whether this block defines the balancer (it has members or
// balancer parameters) rather than only referring to it by name.
func (b *Balancer) Defines() bool {
	return len(b.Members) > 0 || b.LBMethod != "" || b.StickySession != "" || b.StickySessionSep != "" ||
		b.SColonPathDelim || b.NoFailover || b.MaxAttempts != nil || b.Timeout != 0 || b.ForceRecovery != nil ||
		len(b.FailOnStatus) > 0 || b.FailOnTimeout || b.Growth != 0 || len(b.GrowthAllow) > 0 || b.Persist || b.Nonce != nil || b.SlowStart != 0
}

// ParseName reads a balancer name as httpd's ProxyPass and <Proxy> take it:
// NAME or balancer://NAME[/path] (the path is ignored), lower-cased.
func ParseName(arg string) (string, error) {
	name := arg
	if len(name) >= len("balancer://") && strings.EqualFold(name[:len("balancer://")], "balancer://") {
		name = name[len("balancer://"):]
		name, _, _ = strings.Cut(name, "/") // httpd ignores the path
	} else if strings.Contains(name, "://") || strings.Contains(name, ":") || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is not a balancer name (it looks like an address); members are set with balancer_member <url> (httpd's BalancerMember)", arg)
	}
	name = strings.ToLower(name)
	if err := balancer.CheckName(name); err != nil {
		return "", err
	}
	return name, nil
}

// BalancerKeys are the balancer parameters SetParam reads (httpd's ProxySet
// keys and BalancerPersist, BalancerGrowth's equivalents, and slowstart,
// which httpd does not have).
var BalancerKeys = []string{
	"lbmethod", "stickysession", "stickysessionsep", "scolonpathdelim", "nofailover", "maxattempts",
	"timeout", "forcerecovery", "failonstatus", "failontimeout", "growth", "persist", "nonce", "slowstart",
}

// SetParam sets one balancer parameter from its httpd-style value, as
// set_balancer_param reads it; key is lower-case. The error states the rule.
func (b *Balancer) SetParam(key, val string) error {
	switch key {
	case "lbmethod":
		m := strings.ToLower(val)
		if _, err := balancer.MethodByName(m); err != nil {
			return balancer.Invalid("lbmethod", val)
		}
		b.LBMethod = m
	case "stickysession":
		ss := balancer.ParseStickySession(val)
		if ss.Cookie == "" {
			return balancer.Invalid("stickysession", val)
		}
		if err := balancer.CheckStickySession(ss.Cookie, ss.Path); err != nil {
			return err
		}
		b.StickySession = val
	case "stickysessionsep":
		switch {
		case strings.EqualFold(val, "off"):
			b.StickySessionSep = "off"
		case len(val) == 1:
			b.StickySessionSep = val
		default:
			return balancer.Invalid("stickysessionsep", val)
		}
	case "scolonpathdelim":
		return setOnOff(&b.SColonPathDelim, key, val)
	case "nofailover":
		return setOnOff(&b.NoFailover, key, val)
	case "failontimeout":
		return setOnOff(&b.FailOnTimeout, key, val)
	case "persist":
		return setOnOff(&b.Persist, key, val)
	case "forcerecovery":
		var on bool
		if err := setOnOff(&on, key, val); err != nil {
			return err
		}
		b.ForceRecovery = &on
	case "maxattempts":
		n, err := number(key, val, balancer.CheckMaxAttempts)
		if err != nil {
			return err
		}
		b.MaxAttempts = &n
	case "timeout":
		d, err := duration(key, val, balancer.CheckTimeout)
		if err != nil {
			return err
		}
		b.Timeout = d
	case "failonstatus":
		codes, err := ParseFailOnStatus([]string{val})
		if err != nil {
			return err
		}
		b.FailOnStatus = codes // a later occurrence replaces the list, as in httpd
	case "growth":
		n, err := number(key, val, balancer.CheckGrowth)
		if err != nil {
			return err
		}
		b.Growth = n
	case "slowstart":
		d, err := duration(key, val, balancer.CheckSlowStart)
		if err != nil {
			return err
		}
		b.SlowStart = d
	case "nonce":
		if strings.EqualFold(val, "none") {
			val = "None"
		} else if err := balancer.CheckNonce(val); err != nil {
			return err
		}
		b.Nonce = &val
	default:
		return fmt.Errorf("unknown balancer parameter %q", key)
	}
	return nil
}

// ParseFailOnStatus reads httpd's failonstatus list: codes separated by
// commas and/or spaces.
func ParseFailOnStatus(args []string) ([]int, error) {
	var codes []int
	for _, a := range args {
		for _, f := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			c, err := strconv.Atoi(f)
			if err != nil || balancer.CheckFailOnStatus(c) != nil {
				return nil, balancer.Invalid("failonstatus", f)
			}
			codes = append(codes, c)
		}
	}
	if len(codes) == 0 {
		return nil, balancer.Invalid("failonstatus", strings.Join(args, " "))
	}
	return codes, nil
}

// MemberKeys are the BalancerMember keys the balancer implements.
var MemberKeys = map[string]struct{}{
	"loadfactor": {}, "lbset": {}, "route": {}, "redirect": {}, "status": {}, "retry": {}, "timeout": {},
	"hcmethod": {}, "hcuri": {}, "hcinterval": {}, "hcpasses": {}, "hcfails": {}, "hcexpr": {},
}

// ExtensionMemberKeys are the member keys of this plugin that httpd's
// BalancerMember does not have: SetParam reads them, the httpd adapter
// does not.
var ExtensionMemberKeys = map[string]struct{}{"slowstart": {}}

// UnsupportedMemberKeys are httpd BalancerMember keys the balancer does not
// implement, with what to use instead. They are rejected, never ignored.
var UnsupportedMemberKeys = map[string]string{
	"connectiontimeout": "the connect timeout is the transport's: transport http { dial_timeout <duration> }",
	"ping":              "use transport http { expect_continue_timeout <duration> } for HTTP members",
	"acquire":           "Caddy's transport has no pool acquire timeout",
	"max":               "use transport http { max_conns_per_host <n> }",
	"smax":              "use transport http { keepalive_idle_conns_per_host <n> }",
	"min":               "Caddy's transport keeps no minimum of connections",
	"ttl":               "use transport http { keepalive <idle timeout> }",
	"keepalive":         "use transport http { keepalive_interval <duration> } for TCP keepalive probes",
	"disablereuse":      "use transport http { keepalive off } to close connections after each request",
	"enablereuse":       "connections are reused by default; use transport http { keepalive off } to disable",
	"flushpackets":      "use the flush_interval subdirective",
	"flushwait":         "use the flush_interval subdirective",
	"iobuffersize":      "use transport http { read_buffer <size> write_buffer <size> }",
	"receivebuffersize": "use transport http { read_buffer <size> }",
	"responsefieldsize": "use transport http { max_response_header <size> }",
	"addressttl":        "use transport http { resolvers ... }; Caddy resolves member names on each connection",
	"upgrade":           "Caddy proxies protocol upgrades (WebSocket) without configuration",
	"secret":            "AJP is not supported",
	"flusher":           "mod_proxy_fdpass is not supported",
	"hctemplate":        "set hcmethod, hcuri, hcinterval, hcpasses, hcfails and hcexpr on the member itself",
}

// SetPair applies one httpd-style key=value member parameter.
func (m *Member) SetPair(pair string) error {
	key, val, ok := strings.Cut(pair, "=")
	if !ok || key == "" {
		return fmt.Errorf("parameter %q must be key=value", pair)
	}
	return m.SetParam(strings.ToLower(key), val)
}

// SetParam sets one BalancerMember parameter from its value, as httpd's
// set_worker_param and set_worker_hc_param read it; key is lower-case. The
// error states the rule.
func (m *Member) SetParam(key, val string) error {
	switch key {
	case "loadfactor":
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return balancer.Invalid("loadfactor", val)
		}
		if _, err := balancer.LoadFactor(f); err != nil {
			return err
		}
		m.LoadFactor = f
	case "lbset":
		n, err := number(key, val, balancer.CheckLBSet)
		if err != nil {
			return err
		}
		m.LBSet = n
	case "route", "redirect":
		if err := balancer.CheckRoute(key, val); err != nil {
			return err
		}
		if key == "route" {
			m.Route = val
		} else {
			m.Redirect = val
		}
	case "status":
		// httpd applies each status= in turn; keep the earlier ones.
		s := val
		if m.Status != "" && s != "" && s[0] != '+' && s[0] != '-' {
			s = "+" + s
		}
		s = m.Status + s
		if _, err := balancer.ParseStatus(s, 0); err != nil {
			return fmt.Errorf("status=%s: %v", val, err)
		}
		m.Status = s
	case "retry":
		d, err := duration(key, val, balancer.CheckRetry)
		if err != nil {
			return err
		}
		m.Retry = &d
	case "timeout":
		d, err := duration(key, val, balancer.CheckTimeout)
		if err != nil {
			return err
		}
		m.Timeout = d
	case "hcmethod":
		meth := strings.ToUpper(val)
		if !balancer.ValidHCMethod(meth) || meth == "" {
			return balancer.Invalid("hcmethod", val)
		}
		if meth == "NONE" {
			meth = ""
		}
		m.HCMethod = meth
	case "hcuri":
		if err := (balancer.HealthCheck{URI: val}).Validate(); err != nil {
			return err
		}
		m.HCURI = val
	case "hcinterval":
		d, err := duration(key, val, func(d time.Duration) error {
			if d == 0 {
				return balancer.Invalid(key, val)
			}
			return balancer.HealthCheck{Interval: d}.Validate()
		})
		if err != nil {
			return err
		}
		m.HCInterval = d
	case "hcpasses":
		n, err := number(key, val, func(n int) error { return balancer.HealthCheck{Passes: n}.Validate() })
		if err != nil {
			return err
		}
		m.HCPasses = n
	case "hcfails":
		n, err := number(key, val, func(n int) error { return balancer.HealthCheck{Fails: n}.Validate() })
		if err != nil {
			return err
		}
		m.HCFails = n
	case "hcexpr":
		if _, err := balancer.ParseHCExpr(val); err != nil {
			return err
		}
		m.HCExpr = val
	case "slowstart":
		d, err := duration(key, val, balancer.CheckSlowStart)
		if err != nil {
			return err
		}
		m.SlowStart = &d
	default:
		if hint, ok := UnsupportedMemberKeys[key]; ok {
			return fmt.Errorf("member parameter %q is not supported: %s", key, hint)
		}
		return fmt.Errorf("unknown member parameter %q", key)
	}
	return nil
}

// number reads an integer parameter and checks it with the engine's rule.
func number(key, val string, check func(int) error) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil {
		return 0, balancer.Invalid(key, val)
	}
	return n, check(n)
}

// duration reads a time parameter (ParseSeconds) and checks it with the
// engine's rule.
func duration(key, val string, check func(time.Duration) error) (caddy.Duration, error) {
	d, err := ParseSeconds(val)
	if err != nil {
		return 0, balancer.Invalid(key, val)
	}
	return caddy.Duration(d), check(d)
}

// setOnOff reads httpd's On|Off, in any case.
func setOnOff(dst *bool, key, val string) error {
	switch strings.ToLower(val) {
	case "on":
		*dst = true
	case "off":
		*dst = false
	default:
		return balancer.Invalid(key, val)
	}
	return nil
}

// ParseSeconds reads a time as httpd does, a bare integer being seconds, or
// as a Caddy duration (1500ms, 2m, 1d).
func ParseSeconds(s string) (time.Duration, error) {
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	return caddy.ParseDuration(s)
}

// isInteger reports whether s is an optionally signed decimal integer.
func isInteger(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
