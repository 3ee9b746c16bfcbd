package httpdadapter

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

// This file writes the model of the httpd configuration as Caddy JSON.
//
// Each listening port becomes one Caddy server. Its routes pick the
// virtual host as httpd does (address, then ServerName/ServerAlias, else the
// first virtual host of the address), and each virtual host's routes are, in
// order: 403 for requests its <Location> access rules refuse; the ProxyPass
// rules (those in <Location> first, then the main server's, then the virtual
// host's, first match wins, ProxyPass ... ! excluding); <Location> handlers
// (SetHandler balancer-manager); 404 for anything else.

// hdEff is a scope as httpd sees it after merging the main server into a
// virtual host.
type hdEff struct {
	s            *hdScope
	passes       []*hdPass
	locations    []*hdLocation
	proxies      []*hdProxySect
	reverses     []*hdReverse
	cookieDomain []hdCookieRule
	cookiePath   []hdCookieRule
	headers      []*hdHeaderOp
	preserveHost bool
	addHeaders   bool
	timeout      time.Duration
}

func (c *hdConfig) effective(s *hdScope) *hdEff {
	e := &hdEff{s: s, addHeaders: true}
	m := c.main
	if s.vhost {
		e.passes = append(e.passes, m.passes...)
		e.locations = append(e.locations, m.locations...)
		e.proxies = append(e.proxies, m.proxies...)
		e.reverses = append(e.reverses, m.reverses...)
		e.cookieDomain = append(e.cookieDomain, m.cookieDomain...)
		e.cookiePath = append(e.cookiePath, m.cookiePath...)
		e.headers = append(e.headers, m.headers...)
	}
	e.passes = append(e.passes, s.passes...)
	e.locations = append(e.locations, s.locations...)
	e.proxies = append(e.proxies, s.proxies...)
	e.reverses = append(e.reverses, s.reverses...)
	e.cookieDomain = append(e.cookieDomain, s.cookieDomain...)
	e.cookiePath = append(e.cookiePath, s.cookiePath...)
	e.headers = append(e.headers, s.headers...)
	pick := func(v, mv *bool, def bool) bool {
		switch {
		case v != nil:
			return *v
		case s.vhost && mv != nil:
			return *mv
		}
		return def
	}
	e.preserveHost = pick(s.preserveHost, m.preserveHost, false)
	e.addHeaders = pick(s.addHeaders, m.addHeaders, true)
	// The worker timeout defaults to ProxyTimeout, else to Timeout.
	for _, t := range []time.Duration{s.proxyTimeout, m.proxyTimeout, s.coreTimeout, m.coreTimeout} {
		if t > 0 {
			e.timeout = t
			break
		}
	}
	return e
}

// hdEmitter holds the state of one emit run.
type hdEmitter struct {
	c        *hdConfig
	regexN   int
	warned   map[string]bool
	tlsFiles []map[string]any
}

func (e *hdEmitter) warnOnce(p hdPos, format string, args ...any) {
	key := fmt.Sprintf("%s:%d:%s", p.File, p.Line, fmt.Sprintf(format, args...))
	if e.warned[key] {
		return
	}
	e.warned[key] = true
	e.c.warn(p, format, args...)
}

// hdPortGroup is the Listen addresses of one port.
type hdPortGroup struct {
	port  string
	addrs []string
	hosts []string // "" for every address
	https bool
	pos   hdPos
}

// emit writes the Caddy JSON.
func (c *hdConfig) emit() ([]byte, error) {
	e := &hdEmitter{c: c, warned: map[string]bool{}}
	c.markUsed()
	groups := c.portGroups()
	servers := map[string]any{}
	for i, g := range groups {
		routes, err := e.portRoutes(g)
		if err != nil {
			return nil, err
		}
		srv := map[string]any{
			"listen":          g.addrs,
			"routes":          routes,
			"automatic_https": map[string]any{"disable": true},
		}
		pols, err := e.tlsPolicies(g)
		if err != nil {
			return nil, err
		}
		if len(pols) > 0 {
			srv["tls_connection_policies"] = pols
		} else if g.https {
			c.warn(g.pos, "port %s is an https port, but no <VirtualHost> on it has SSLEngine on with a certificate: it serves plain HTTP in Caddy", g.port)
		}
		servers[fmt.Sprintf("srv%d", i)] = srv
	}
	for _, b := range c.balancers {
		if b.alias == nil && !b.used {
			c.warn(b.pos, "balancer://%s is not used by any ProxyPass; Caddy creates balancers where a route uses them, so it is left out", b.name)
		}
	}
	apps := map[string]any{"http": map[string]any{"servers": servers}}
	if len(e.tlsFiles) > 0 {
		apps["tls"] = map[string]any{"certificates": map[string]any{"load_files": e.tlsFiles}}
	}
	return json.Marshal(map[string]any{"apps": apps})
}

// markUsed marks the balancers some ProxyPass uses.
func (c *hdConfig) markUsed() {
	scopes := append([]*hdScope{c.main}, c.vhosts...)
	for _, s := range scopes {
		e := c.effective(s)
		passes := e.passes
		for _, l := range e.locations {
			if l.pass != nil {
				passes = append(passes, l.pass)
			}
		}
		for _, p := range passes {
			if p.dyn != nil {
				for _, b := range c.dynamicCandidates(s, p.dyn) {
					b.used = true
				}
			}
			if p.balName == "" {
				continue
			}
			if b := c.lookupBalancer(s, p.balName); b != nil {
				b.effective().used = true
			}
		}
	}
}

// portGroups groups the Listen addresses by port, in order of appearance.
// Without Listen, the ports of the virtual hosts (else 80) are used.
func (c *hdConfig) portGroups() []*hdPortGroup {
	listens := c.listens
	if len(listens) == 0 {
		// The warning names the first <VirtualHost> that gives a port; with
		// none, the main file, without a line: the default applies to the
		// whole configuration.
		ports := []string{}
		seen := map[string]bool{}
		where := hdPos{File: c.mainFile}
		for _, v := range c.vhosts {
			for _, a := range v.addrs {
				if a.port != "*" && !seen[a.port] {
					if len(ports) == 0 {
						where = v.pos
					}
					seen[a.port] = true
					ports = append(ports, a.port)
				}
			}
		}
		if len(ports) == 0 {
			ports = []string{"80"}
			c.warn(where, "the configuration has no Listen directive; listening on port 80, httpd's default")
		} else {
			c.warn(where, "the configuration has no Listen directive; listening on the port(s) of the <VirtualHost> addresses: %s", strings.Join(ports, ", "))
		}
		for _, p := range ports {
			listens = append(listens, hdListen{port: p, https: p == "443"})
		}
	}
	var groups []*hdPortGroup
	byPort := map[string]*hdPortGroup{}
	for _, l := range listens {
		g := byPort[l.port]
		if g == nil {
			g = &hdPortGroup{port: l.port, pos: l.pos}
			byPort[l.port] = g
			groups = append(groups, g)
		}
		g.addrs = append(g.addrs, net.JoinHostPort(l.host, l.port))
		g.hosts = append(g.hosts, l.host)
		g.https = g.https || l.https
	}
	return groups
}

// vhostsOn returns the virtual hosts with an address on port, each with the
// address's host.
func (c *hdConfig) vhostsOn(port string) (byIP map[string][]*hdScope, ips []string, wild []*hdScope) {
	byIP = map[string][]*hdScope{}
	for _, v := range c.vhosts {
		for _, a := range v.addrs {
			if a.port != "*" && a.port != port {
				continue
			}
			if a.host == "*" {
				wild = append(wild, v)
				continue
			}
			if len(byIP[a.host]) == 0 {
				ips = append(ips, a.host)
			}
			byIP[a.host] = append(byIP[a.host], v)
		}
	}
	return byIP, ips, wild
}

// portRoutes writes the routes of one port's server: virtual host selection.
func (e *hdEmitter) portRoutes(g *hdPortGroup) ([]any, error) {
	c := e.c
	byIP, ips, wild := c.vhostsOn(g.port)
	if len(ips) == 0 && len(wild) == 0 {
		return e.scopeRoutes(c.main)
	}
	anyHost := false
	for _, h := range g.hosts {
		if h == "" || h == "0.0.0.0" || h == "::" {
			anyHost = true
		}
	}
	var routes []any
	for _, ip := range ips {
		vs := byIP[ip]
		listened := anyHost
		only := !anyHost
		for _, h := range g.hosts {
			if h == ip {
				listened = true
			} else {
				only = false
			}
		}
		if !listened {
			for _, v := range vs {
				c.warn(v.pos, "no Listen on %s port %s: this virtual host cannot be reached", ip, g.port)
			}
			continue
		}
		sel, err := e.nameSelect(vs)
		if err != nil {
			return nil, err
		}
		if only {
			// Every address of this port is this IP: its virtual hosts
			// take every request.
			return sel, nil
		}
		routes = append(routes, map[string]any{
			"match":    []any{map[string]any{"expression": fmt.Sprintf("{http.request.local.host} == '%s'", ip)}},
			"handle":   []any{map[string]any{"handler": "subroute", "routes": sel}},
			"terminal": true,
		})
	}
	var rest []any
	var err error
	if len(wild) > 0 {
		rest, err = e.nameSelect(wild)
	} else {
		rest, err = e.scopeRoutes(c.main)
	}
	if err != nil {
		return nil, err
	}
	return append(routes, rest...), nil
}

// nameSelect picks among the virtual hosts of one address by Host, the first
// one being the default.
func (e *hdEmitter) nameSelect(vs []*hdScope) ([]any, error) {
	if len(vs) == 1 {
		return e.scopeRoutes(vs[0])
	}
	claimed := map[string]bool{}
	for _, n := range vs[0].names {
		claimed[strings.ToLower(n)] = true
	}
	var routes []any
	for _, v := range vs[1:] {
		var names []string
		for _, n := range v.names {
			ln := strings.ToLower(n)
			if !claimed[ln] {
				claimed[ln] = true
				names = append(names, ln)
			}
		}
		if len(names) == 0 {
			e.warnOnce(v.pos, "no ServerName or ServerAlias of its own: an earlier virtual host on the same address takes its requests")
			continue
		}
		sub, err := e.scopeRoutes(v)
		if err != nil {
			return nil, err
		}
		routes = append(routes, map[string]any{
			"match":    []any{map[string]any{"host": names}},
			"handle":   []any{map[string]any{"handler": "subroute", "routes": sub}},
			"terminal": true,
		})
	}
	def, err := e.scopeRoutes(vs[0])
	if err != nil {
		return nil, err
	}
	routes = append(routes, map[string]any{
		"handle": []any{map[string]any{"handler": "subroute", "routes": def}},
	})
	return routes, nil
}

// scopeRoutes writes the routes of the main server or one virtual host.
func (e *hdEmitter) scopeRoutes(s *hdScope) ([]any, error) {
	c := e.c
	eff := c.effective(s)
	var routes []any

	// 1. Access: the last matching <Location> with access rules decides.
	var accessLocs []*hdLocation
	for _, l := range eff.locations {
		if l.access != nil {
			accessLocs = append(accessLocs, l)
		}
	}
	var locAccessSets []any // every <Location> with access rules
	for i := len(accessLocs) - 1; i >= 0; i-- {
		l := accessLocs[i]
		set := e.locMatcher(l)
		var not []any
		for _, later := range accessLocs[i+1:] {
			not = append(not, e.locMatcher(later))
		}
		locAccessSets = append(locAccessSets, e.locMatcher(l))
		switch l.access.cond.op {
		case "true":
			continue
		case "false":
		default:
			not = append(not, l.access.cond.matcherSets()...)
		}
		if len(not) > 0 {
			set["not"] = not
		}
		routes = append(routes, hdRoute(set, hdForbidden()))
	}

	// 2. ProxyPass: <Location> ones first (the last matching section wins),
	// then the server's in order; an exclusion keeps the later ones off.
	var exclusions []any
	var passes []*hdPass
	for i := len(eff.locations) - 1; i >= 0; i-- {
		if p := eff.locations[i].pass; p != nil {
			passes = append(passes, p)
		}
	}
	passes = append(passes, eff.passes...)
	for _, p := range passes {
		set := e.passMatcher(p)
		if p.exclude {
			exclusions = append(exclusions, set)
			continue
		}
		rs, err := e.passRoutes(eff, p, set, exclusions, locAccessSets)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}

	// 3. <Location> handlers, the last matching section winning.
	var shadow []any
	for i := len(eff.locations) - 1; i >= 0; i-- {
		l := eff.locations[i]
		if l.handlerPos.Line == 0 {
			continue
		}
		set := e.locMatcher(l)
		if l.handler != "balancer-manager" {
			shadow = append(shadow, set)
			continue
		}
		if len(shadow) > 0 {
			set["not"] = append([]any(nil), shadow...)
		}
		if !l.regex {
			if by := hdShadowingPass(passes, l.path); by != nil {
				e.warnOnce(l.handlerPos, "ProxyPass at %s:%d takes the requests for %s before this handler (as in httpd); add `ProxyPass %s !` before it to reach the balancer-manager", by.pos.File, by.pos.Line, l.path, l.path)
			}
		}
		routes = append(routes, hdRoute(set, map[string]any{"handler": "balancer_manager", "balancers": c.visibleBalancers(s)}))
		shadow = append(shadow, e.locMatcher(l))
	}

	// 4. Nothing else: httpd's own content is not translated.
	routes = append(routes, hdRoute(nil, map[string]any{"handler": "static_response", "status_code": 404}))
	return routes, nil
}

// hdShadowingPass returns the ProxyPass that takes the requests for path,
// unless an exclusion comes first.
func hdShadowingPass(passes []*hdPass, path string) *hdPass {
	for _, p := range passes {
		var hit bool
		if p.regex {
			if re, err := regexp.Compile(p.fake); err == nil {
				hit = re.MatchString(path)
			}
		} else {
			hit = hdPathCovers(p.fake, path) || hdPathCovers(p.fake, path+"/")
		}
		if !hit {
			continue
		}
		if p.exclude {
			return nil
		}
		return p
	}
	return nil
}

// visibleBalancers lists the Caddy names of the balancers a scope's manager shows.
func (c *hdConfig) visibleBalancers(s *hdScope) []string {
	names := []string{}
	seen := map[string]bool{}
	add := func(b *hdBalancer) {
		b = b.effective()
		if b.used && !seen[b.caddyName] {
			seen[b.caddyName] = true
			names = append(names, b.caddyName)
		}
	}
	for _, b := range c.balancers {
		if b.scope == s {
			add(b)
		}
	}
	if s.vhost && c.inherits(s) {
		for _, b := range c.balancers {
			if b.scope == c.main && s.balancers[b.name] == nil {
				add(b)
			}
		}
	}
	return names
}

func hdRoute(set map[string]any, handlers ...any) map[string]any {
	r := map[string]any{"handle": handlers}
	if len(set) > 0 {
		r["match"] = []any{set}
	}
	return r
}

func hdForbidden() map[string]any {
	return map[string]any{"handler": "static_response", "status_code": 403}
}

// hdGlobRE converts an fnmatch pattern to a regular expression.
func hdGlobRE(g string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// locMatcher matches the requests of a <Location>: the path and what is
// below it (segment-wise), or the regular expression.
func (e *hdEmitter) locMatcher(l *hdLocation) map[string]any {
	if l.regex {
		return map[string]any{"path_regexp": map[string]any{"pattern": l.path}}
	}
	if strings.ContainsAny(l.path, "?[") {
		return map[string]any{"path_regexp": map[string]any{"pattern": hdGlobRE(l.path) + "(/|$)"}}
	}
	return hdPrefixMatcher(l.path)
}

// hdPrefixMatcher matches path and what is below it; "/" matches everything.
func hdPrefixMatcher(p string) map[string]any {
	if p == "/" || p == "" {
		return map[string]any{}
	}
	if strings.HasSuffix(p, "/") {
		return map[string]any{"path": []string{p + "*"}}
	}
	return map[string]any{"path": []string{p, p + "/*"}}
}

// passMatcher matches the requests of a ProxyPass.
func (e *hdEmitter) passMatcher(p *hdPass) map[string]any {
	if p.dyn != nil && p.dyn.appendRest {
		// The rest of the path after the ProxyPass path is part of the
		// mapped URL (balancerurl.go).
		e.regexN++
		return map[string]any{"path_regexp": map[string]any{"name": fmt.Sprintf("pp%d", e.regexN), "pattern": "^" + regexp.QuoteMeta(p.fake) + "(.*)$"}}
	}
	if p.regex {
		e.regexN++
		return map[string]any{"path_regexp": map[string]any{"name": fmt.Sprintf("pp%d", e.regexN), "pattern": p.fake}}
	}
	if strings.ContainsAny(p.fake, "*?[") {
		return map[string]any{"path_regexp": map[string]any{"pattern": "^" + regexp.QuoteMeta(strings.TrimSuffix(p.fake, "/")) + map[bool]string{true: "/", false: "(/|$)"}[strings.HasSuffix(p.fake, "/")]}}
	}
	return hdPrefixMatcher(p.fake)
}

// passRoutes writes the route of one ProxyPass, preceded by the 403 route
// of a <Proxy> section's access rules.
func (e *hdEmitter) passRoutes(eff *hdEff, p *hdPass, set map[string]any, exclusions, locAccess []any) ([]any, error) {
	c := e.c
	base := map[string]any{}
	for k, v := range set {
		base[k] = v
	}
	if len(exclusions) > 0 {
		base["not"] = append([]any(nil), exclusions...)
	}
	if p.dyn != nil {
		return e.dynamicPassRoutes(eff, p, set, base, locAccess)
	}

	// The target as <Proxy> sections see it.
	var b *hdBalancer
	targetURL := ""
	if p.balName != "" {
		if lb := c.lookupBalancer(eff.s, p.balName); lb != nil {
			b = lb.effective()
		}
		targetURL = "balancer://" + p.balName + p.realPath
	} else {
		targetURL = p.target.String()
	}
	handlers := e.pathRewrites(p, set)
	deny, h, err := e.targetHandler(eff, p, b, targetURL, set, locAccess)
	if err != nil {
		return nil, err
	}
	var routes []any
	if deny != nil {
		// Checked before the ProxyPass's own route: the request's other
		// matchers, minus the exclusions, decide as for the route itself.
		for k, v := range set {
			deny[k] = v
		}
		deny["not"] = append(append([]any(nil), exclusions...), hdSetsOf(deny["not"])...)
		if len(deny["not"].([]any)) == 0 {
			delete(deny, "not")
		}
		routes = append(routes, hdRoute(deny, hdForbidden()))
	}
	handlers = append(handlers, h)
	routes = append(routes, hdRoute(base, handlers...))
	return routes, nil
}

// hdSetsOf returns the matcher sets of a "not" value ([]any), or none.
func hdSetsOf(v any) []any {
	sets, _ := v.([]any)
	return sets
}

// targetHandler writes what serves a request of ProxyPass p once its
// target URL is known (b is its balancer; nil for a plain URL): the handler,
// and the matcher set under which a <Proxy> section's access rules refuse
// it with 403 (nil if they do not), without the ProxyPass's own matchers.
func (e *hdEmitter) targetHandler(eff *hdEff, p *hdPass, b *hdBalancer, targetURL string, set map[string]any, locAccess []any) (map[string]any, any, error) {
	sects := hdMatchingProxies(eff.proxies, targetURL)

	// <Proxy> access: the last matching section with rules, unless a
	// <Location> with rules covers the request (it wins).
	var deny map[string]any
	for i := len(sects) - 1; i >= 0; i-- {
		a := sects[i].access
		if a == nil {
			continue
		}
		if a.cond.op != "true" {
			not := append([]any(nil), locAccess...)
			if a.cond.op != "false" {
				not = append(not, a.cond.matcherSets()...)
			}
			deny = map[string]any{"not": not}
		}
		break
	}

	locs := hdCovering(eff.locations, p)
	var hdrs []*hdHeaderOp
	hdrs = append(hdrs, eff.headers...)
	for _, s := range sects {
		hdrs = append(hdrs, s.headers...)
	}
	for _, l := range locs {
		hdrs = append(hdrs, l.headers...)
	}
	var reverses []*hdReverse
	reverses = append(reverses, eff.reverses...)
	cookieDomain := append([]hdCookieRule(nil), eff.cookieDomain...)
	cookiePath := append([]hdCookieRule(nil), eff.cookiePath...)
	for _, l := range locs {
		reverses = append(reverses, l.reverses...)
		cookieDomain = append(cookieDomain, l.cookieDomain...)
		cookiePath = append(cookiePath, l.cookiePath...)
	}

	var h any
	var err error
	switch {
	case p.balName != "" && b == nil:
		e.warnOnce(p.pos, "balancer://%s is not visible in this virtual host (BalancerInherit and ProxyPassInherit are Off): httpd answers 500", p.balName)
		h = map[string]any{"handler": "static_response", "status_code": 500}
	case b != nil:
		h, err = e.balancerHandler(eff, p, b, hdrs, reverses, cookieDomain, cookiePath)
	default:
		h, err = e.plainHandler(eff, p, hdRegexName(set), hdrs, reverses, cookieDomain, cookiePath)
	}
	return deny, h, err
}

// hdMatchingProxies returns the <Proxy> sections whose URL matches target.
func hdMatchingProxies(sects []*hdProxySect, target string) []*hdProxySect {
	var out []*hdProxySect
	lt := strings.ToLower(target)
	for _, s := range sects {
		pat := s.pattern
		ok := false
		switch {
		case s.regex:
			if re, err := regexp.Compile(pat); err == nil {
				ok = re.MatchString(target)
			}
		case pat == "*":
			ok = true
		case strings.ContainsAny(pat, "*?["):
			if re, err := regexp.Compile(hdGlobRE(strings.ToLower(pat))); err == nil {
				ok = re.MatchString(lt)
			}
		case hdIsBalancerURL(pat):
			name, _ := hdSplitBalancerURL(pat)
			ok = strings.HasPrefix(lt, "balancer://"+name+"/") || lt == "balancer://"+name
		default:
			ok = strings.HasPrefix(lt, strings.ToLower(pat))
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// hdCovering returns the <Location>s whose directives apply to a ProxyPass's
// requests: its own, and those whose path is a prefix of its path.
func hdCovering(locs []*hdLocation, p *hdPass) []*hdLocation {
	var out []*hdLocation
	for _, l := range locs {
		if l == p.loc {
			out = append(out, l)
			continue
		}
		if l.regex || p.regex {
			continue
		}
		if hdPathCovers(l.path, p.fake) {
			out = append(out, l)
		}
	}
	return out
}

func hdPathCovers(l, f string) bool {
	if l == "/" || l == f {
		return true
	}
	if !strings.HasPrefix(f, l) {
		return false
	}
	return strings.HasSuffix(l, "/") || f[len(l)] == '/'
}

// pathRewrites maps the request path to the backend path as httpd does:
// the target's path + what follows the ProxyPass path; for ProxyPassMatch
// the target with $1... substituted (or followed by the whole path when it
// has no reference).
func (e *hdEmitter) pathRewrites(p *hdPass, set map[string]any) []any {
	if p.regex {
		sub, changed := hdRegexSubst(p.realPath, hdRegexName(set))
		if changed {
			return []any{map[string]any{"handler": "rewrite", "uri": sub}}
		}
		if p.realPath == "" {
			return nil
		}
		return []any{map[string]any{"handler": "rewrite", "uri": hdEscapeBraces(p.realPath) + "{http.request.uri.path}"}}
	}
	f, r := p.fake, p.realPath
	if strings.HasSuffix(f, "/") && !strings.HasSuffix(r, "/") {
		if r == "" {
			e.warnOnce(p.pos, "the path %q ends in '/' but the URL has no path: httpd appends the rest of the request path to the host name (a broken URL); translated as if the URL ended in '/'", f)
		} else {
			e.warnOnce(p.pos, "the path %q ends in '/' but the URL path %q does not: httpd joins them without a '/'; translated with one", f, r)
		}
	} else if !strings.HasSuffix(f, "/") && strings.HasSuffix(r, "/") && r != "/" || f != "/" && !strings.HasSuffix(f, "/") && r == "/" {
		e.warnOnce(p.pos, "the URL ends in '/' but the path %q does not: httpd sends a double slash (%s//...); Caddy sends one", f, strings.TrimSuffix(r, "/"))
	}
	if f == r {
		return nil
	}
	ft, rt := strings.TrimSuffix(f, "/"), strings.TrimSuffix(r, "/")
	if ft == rt {
		return nil
	}
	var out []any
	if ft != "" {
		out = append(out, map[string]any{"handler": "rewrite", "strip_path_prefix": ft})
	}
	if rt != "" {
		out = append(out, map[string]any{"handler": "rewrite", "uri": hdEscapeBraces(rt) + "{http.request.uri.path}"})
	}
	return out
}

// hdRegexName is the name of a matcher set's path_regexp.
func hdRegexName(set map[string]any) string {
	if pr, ok := set["path_regexp"].(map[string]any); ok {
		name, _ := pr["name"].(string)
		return name
	}
	return ""
}

func hdEscapeBraces(s string) string {
	return strings.NewReplacer("{", `\{`, "}", `\}`).Replace(s)
}

// hdRegexSubst converts ap_pregsub references ($0-$9, &) to the placeholders
// of the path_regexp matcher named name.
func hdRegexSubst(s, name string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s) && (s[i+1] == '$' || s[i+1] == '&'):
			b.WriteByte(s[i+1])
			i++
		case ch == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			fmt.Fprintf(&b, "{http.regexp.%s.%c}", name, s[i+1])
			i++
			changed = true
		case ch == '&':
			fmt.Fprintf(&b, "{http.regexp.%s.0}", name)
			changed = true
		case ch == '{' || ch == '}':
			b.WriteByte('\\')
			b.WriteByte(ch)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), changed
}

// balancerHandler writes the balancer handler of one ProxyPass.
func (e *hdEmitter) balancerHandler(eff *hdEff, p *hdPass, b *hdBalancer, hdrs []*hdHeaderOp, reverses []*hdReverse, cookieDomain, cookiePath []hdCookieRule) (config.Handler, error) {
	h := config.Handler{Balancer: config.Balancer{Name: b.caddyName}}
	if !b.emitted {
		b.emitted = true
		e.defineBalancer(&h.Balancer, b)
	}
	// ProxyPassReverse: httpd tries every rule of the request's merged
	// directory configuration in order (server first, then <Location>),
	// whichever ProxyPass served the request: the whole list, balancer and
	// plain rules alike, goes into every balancer handler of the scope.
	h.ProxyPassReverse = e.reverseRules(eff, reverses)
	for _, r := range cookieDomain {
		h.ProxyPassReverseCookieDomain = append(h.ProxyPassReverseCookieDomain, r.rule)
	}
	for _, r := range cookiePath {
		h.ProxyPassReverseCookiePath = append(h.ProxyPassReverseCookiePath, r.rule)
	}
	cookie, _, _ := strings.Cut(b.h.StickySession, "|")
	var ops []*hdHeaderOp
	for _, op := range hdrs {
		if op.routeCookie == nil {
			ops = append(ops, op)
			continue
		}
		if cookie != "" && op.routeCookie.cookie == cookie {
			h.RouteCookie = &config.RouteCookie{Attributes: op.routeCookie.attrs}
		} else {
			e.warnOnce(op.pos, "not translated for balancer://%s: its stickysession cookie is %q, not %q (Caddy's route_cookie sets the stickysession cookie)", b.name, cookie, op.routeCookie.cookie)
		}
	}
	h.Headers = e.headerOps(eff, ops, nil, nil, nil, true)
	if b.connTimeout > 0 {
		h.TransportRaw = caddyconfig.JSONModuleObject(&reverseproxy.HTTPTransport{DialTimeout: caddy.Duration(b.connTimeout)},
			"protocol", "http", nil)
	}
	return h, nil
}

// reverseRules writes the ProxyPassReverse rules of a balancer handler, in
// httpd's order. A rule for a balancer this scope does not see, or one that
// no ProxyPass uses (Caddy does not create it), is left out with a warning.
func (e *hdEmitter) reverseRules(eff *hdEff, reverses []*hdReverse) []proxypassreverse.Rule {
	var rules []proxypassreverse.Rule
	for _, r := range reverses {
		if r.balName == "" {
			rules = append(rules, proxypassreverse.Rule{Prefix: r.fake, URL: r.real})
			continue
		}
		rb := e.c.lookupBalancer(eff.s, r.balName)
		if rb == nil {
			e.warnOnce(r.pos, "balancer://%s is not defined here: the rule never matches (nor in httpd)", r.balName)
			continue
		}
		rb = rb.effective()
		if !rb.used {
			e.warnOnce(r.pos, "balancer://%s is not used by any ProxyPass, so Caddy does not create it: this rule does not apply", r.balName)
			continue
		}
		rules = append(rules, proxypassreverse.Rule{Prefix: r.fake, Balancer: rb.caddyName, Path: r.part})
	}
	return rules
}

// defineBalancer writes the balancer's parameters and members into h: httpd's
// model as read, with the scope's ProxyTimeout as the members' default timeout.
func (e *hdEmitter) defineBalancer(h *config.Balancer, b *hdBalancer) {
	name := h.Name
	*h = b.h
	h.Name = name
	if b.connTimeoutVaries {
		e.warnOnce(b.pos, "balancer://%s: the members have different connectiontimeout values; Caddy has one dial timeout per handler, the largest (%s) is used", b.name, b.connTimeout)
	}
	defTimeout := e.c.effective(b.scope).timeout
	h.Members = append([]config.Member(nil), b.h.Members...)
	for i := range h.Members {
		if h.Members[i].Timeout == 0 && defTimeout != 0 {
			h.Members[i].Timeout = caddy.Duration(defTimeout)
		}
	}
	if len(h.Members) == 0 {
		e.warnOnce(b.pos, "balancer://%s has no members (no BalancerMember names it): every request it gets is answered 503, as in httpd", b.name)
	}
}

// plainHandler writes a reverse_proxy to one URL.
func (e *hdEmitter) plainHandler(eff *hdEff, p *hdPass, name string, hdrs []*hdHeaderOp, reverses []*hdReverse, cookieDomain, cookiePath []hdCookieRule) (json.RawMessage, error) {
	u := p.target
	scheme := strings.ToLower(u.Scheme)
	host, port := u.Hostname(), u.Port()
	defPort := map[string]string{"http": "80", "https": "443"}[scheme]
	if port == "" {
		port = defPort
	}
	dialHost, _ := hdRegexSubst(host, name)
	dialPort, _ := hdRegexSubst(port, name)
	h := &reverseproxy.Handler{Upstreams: reverseproxy.UpstreamPool{{Dial: net.JoinHostPort(dialHost, dialPort)}}}
	var transport reverseproxy.HTTPTransport
	if scheme == "https" {
		transport.TLS = &reverseproxy.TLSConfig{}
	}
	wp := p.worker
	if sw := e.c.plainWorkers[hdWorkerKey(p.target.String())]; sw != nil {
		if wp.timeout == 0 {
			wp.timeout = sw.timeout
		}
		if wp.connTimeout == 0 {
			wp.connTimeout = sw.connTimeout
		}
	}
	if wp.timeout == 0 {
		wp.timeout = eff.timeout
	}
	transport.DialTimeout = caddy.Duration(wp.connTimeout)
	transport.ResponseHeaderTimeout = caddy.Duration(wp.timeout)
	if transport.TLS != nil || transport.DialTimeout != 0 || transport.ResponseHeaderTimeout != 0 {
		h.TransportRaw = caddyconfig.JSONModuleObject(&transport, "protocol", "http", nil)
	}
	var plainRev []*hdReverse
	for _, r := range reverses {
		if r.balName == "" {
			plainRev = append(plainRev, r)
		} else if rb := e.c.lookupBalancer(eff.s, r.balName); rb != nil && rb.effective().used {
			e.warnOnce(r.pos, "the rule for balancer://%s is not applied to the responses of ProxyPass %s (%s:%d): a ProxyPass to a URL becomes Caddy's reverse_proxy, which has no balancer rules", r.balName, p.fake, p.pos.File, p.pos.Line)
		}
	}
	hostHdr := dialHost
	if strings.Contains(hostHdr, ":") {
		hostHdr = "[" + hostHdr + "]"
	}
	if port != defPort {
		hostHdr += ":" + dialPort
	}
	hdrOps := e.headerOps(eff, hdrs, plainRev, cookieDomain, cookiePath, false)
	if !eff.preserveHost {
		if hdrOps == nil {
			hdrOps = &headers.Handler{}
		}
		if hdrOps.Request == nil {
			hdrOps.Request = &headers.HeaderOps{}
		}
		if hdrOps.Request.Set == nil {
			hdrOps.Request.Set = http.Header{}
		}
		hdrOps.Request.Set["Host"] = []string{hostHdr}
	}
	h.Headers = hdrOps
	return caddyconfig.JSONModuleObject(h, "handler", "reverse_proxy", nil), nil
}

// headerOps writes reverse_proxy's headers: header_up and header_down
// operations from Header/RequestHeader, ProxyPreserveHost, ProxyAddHeaders,
// and the ProxyPassReverse(Cookie*) rules of plain URLs.
func (e *hdEmitter) headerOps(eff *hdEff, ops []*hdHeaderOp, plainRev []*hdReverse, cookieDomain, cookiePath []hdCookieRule, isBalancer bool) *headers.Handler {
	req, resp := &headers.HeaderOps{}, &headers.HeaderOps{}
	// Header names are kept as written (no canonicalization), as httpd
	// passes them.
	add := func(h *http.Header, name, val string) {
		if *h == nil {
			*h = http.Header{}
		}
		(*h)[name] = append((*h)[name], val)
	}
	replace := func(ops *headers.HeaderOps, name, search, repl string) {
		if ops.Replace == nil {
			ops.Replace = map[string][]headers.Replacement{}
		}
		ops.Replace[name] = append(ops.Replace[name], headers.Replacement{SearchRegexp: search, Replace: repl})
	}
	if isBalancer && eff.preserveHost {
		add(&req.Set, "Host", "{http.request.hostport}")
	}
	if !eff.addHeaders {
		req.Delete = append(req.Delete, "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto")
	}
	for _, op := range ops {
		m := resp
		if op.request {
			m = req
		}
		switch op.action {
		case "set":
			add(&m.Set, op.name, op.value)
		case "add":
			add(&m.Add, op.name, op.value)
		case "unset":
			m.Delete = append(m.Delete, op.name)
		case "edit":
			replace(m, op.name, op.search, op.value)
		}
	}
	for _, r := range plainRev {
		search, repl := hdReverseRegexp(r)
		for _, hdr := range proxypassreverse.Headers {
			replace(resp, hdr, search, repl)
		}
	}
	for _, r := range cookieDomain {
		replace(resp, "Set-Cookie", `(?i)((?:^|;)\s*domain=)`+regexp.QuoteMeta(r.rule.Internal)+`[^;]*`,
			"${1}"+hdReplEscape(r.rule.Public))
	}
	for _, r := range cookiePath {
		replace(resp, "Set-Cookie", `((?:^|;)\s*(?i:path)=)`+regexp.QuoteMeta(r.rule.Internal)+`[^;]*`,
			"${1}"+hdReplEscape(r.rule.Public))
	}
	empty := func(o *headers.HeaderOps) bool {
		return len(o.Add) == 0 && len(o.Set) == 0 && len(o.Delete) == 0 && len(o.Replace) == 0
	}
	out := &headers.Handler{}
	if !empty(req) {
		out.Request = req
	}
	if !empty(resp) {
		out.Response = &headers.RespHeaderOps{HeaderOps: resp}
	}
	if out.Request == nil && out.Response == nil {
		return nil
	}
	return out
}

// hdReplEscape escapes $ in a regexp replacement.
func hdReplEscape(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// hdReverseRegexp is a plain-URL ProxyPassReverse as a header replacement:
// a value that starts with the URL (case-insensitive) gets the path
// instead, made absolute with the request's scheme and host. A real that
// is a path matches the path of an absolute URL, or a bare path.
func hdReverseRegexp(r *hdReverse) (search, replace string) {
	prefix := "{http.request.scheme}://{http.request.hostport}"
	fake := hdReplEscape(r.fake)
	if strings.HasPrefix(r.real, "/") {
		return `(?i)^(?:[a-z][a-z0-9+.-]*://[^/]*)?` + regexp.QuoteMeta(r.real), prefix + fake
	}
	if strings.Contains(r.fake, "://") {
		prefix = ""
	}
	return `(?i)^` + regexp.QuoteMeta(r.real), prefix + fake
}

// tlsPolicies writes the TLS connection policies of a port whose virtual
// hosts have SSLEngine on, and records their certificates.
func (e *hdEmitter) tlsPolicies(g *hdPortGroup) ([]any, error) {
	byIP, ips, wild := e.c.vhostsOn(g.port)
	var vs []*hdScope
	for _, ip := range ips {
		vs = append(vs, byIP[ip]...)
	}
	vs = append(vs, wild...)
	var tlsV, plain []*hdScope
	seen := map[*hdScope]bool{}
	for _, v := range vs {
		if seen[v] {
			continue
		}
		seen[v] = true
		if v.sslEngine != nil {
			tlsV = append(tlsV, v)
		} else {
			plain = append(plain, v)
		}
	}
	if len(tlsV) == 0 {
		return nil, nil
	}
	for _, v := range plain {
		e.warnOnce(v.pos, "virtual host without SSLEngine on port %s, where others use TLS: Caddy serves TLS on the whole port", g.port)
	}
	var pols []any
	var def any
	for _, v := range tlsV {
		t := v.tls
		if t == nil || t.cert == "" || t.key == "" {
			return nil, v.sslEngine.errf("SSLEngine on needs SSLCertificateFile and SSLCertificateKeyFile in the same virtual host (certificates in the certificate file with the key are not read)")
		}
		if t.tag == "" {
			t.tag = fmt.Sprintf("httpd_vhost%d", v.index)
			e.tlsFiles = append(e.tlsFiles, map[string]any{"certificate": t.cert, "key": t.key, "tags": []string{t.tag}})
		}
		pol := map[string]any{"certificate_selection": map[string]any{"any_tag": []string{t.tag}}}
		if def == nil {
			def = pol
		}
		if len(v.names) > 0 {
			names := make([]string, len(v.names))
			for i, n := range v.names {
				names[i] = strings.ToLower(n)
			}
			pols = append(pols, map[string]any{"match": map[string]any{"sni": names}, "certificate_selection": map[string]any{"any_tag": []string{t.tag}}})
		}
	}
	pols = append(pols, def)
	return pols, nil
}

// hdKnownDirectives and hdKnownSections answer <IfDirective> and <IfSection>.
var hdKnownDirectives = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, n := range []string{
		"listen", "servername", "serveralias", "proxypass", "proxypassmatch", "proxypassreverse",
		"proxypassreversecookiedomain", "proxypassreversecookiepath", "balancermember", "proxyset",
		"balancerpersist", "balancergrowth", "balancerinherit", "proxypassinherit", "proxypreservehost",
		"proxyaddheaders", "proxytimeout", "timeout", "proxyrequests", "proxyremote", "proxyremotematch",
		"proxyhcexpr", "proxyhctemplate", "header", "requestheader", "rewriterule", "sslengine",
		"sslcertificatefile", "sslcertificatekeyfile", "sslproxyengine", "sethandler", "require",
		"order", "allow", "deny", "satisfy", "include", "includeoptional", "define", "undefine",
		"serverroot", "loadmodule",
	} {
		m[n] = struct{}{}
	}
	for n := range hdQuiet {
		m[n] = struct{}{}
	}
	for n := range hdLoud {
		m[n] = struct{}{}
	}
	return m
}()

var hdKnownSections = map[string]struct{}{
	"virtualhost": {}, "location": {}, "locationmatch": {}, "proxy": {}, "proxymatch": {},
	"directory": {}, "directorymatch": {}, "files": {}, "filesmatch": {}, "ifmodule": {},
	"ifdefine": {}, "ifversion": {}, "iffile": {}, "ifdirective": {}, "ifsection": {},
	"if": {}, "elseif": {}, "else": {}, "limit": {}, "limitexcept": {}, "requireall": {},
	"requireany": {}, "requirenone": {},
}
