package httpdadapter

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Access control (mod_authz_core, mod_authz_host, mod_access_compat) and
// header directives (mod_headers) of the httpd adapter.

// hdCond is an access condition: who is allowed.
type hdCond struct {
	op      string // "true", "false", "ip", "method", "and", "or", "not"
	ips     []string
	methods []string
	kids    []*hdCond
}

var (
	hdTrue     = &hdCond{op: "true"}
	hdFalse    = &hdCond{op: "false"}
	hdLoopback = &hdCond{op: "ip", ips: []string{"127.0.0.0/8", "::1"}}
)

// hdAccess is the access rule of a <Location> or <Proxy> section.
type hdAccess struct {
	pos  hdPos
	cond *hdCond
}

// hdAccessBuilder collects the access directives of one section.
type hdAccessBuilder struct {
	c        *hdConfig
	pos      *hdPos
	requires []*hdCond
	order    string
	allows   []*hdCond
	denies   []*hdCond
	allowAll bool
	denyAll  bool
	compat   bool
	satisfy  string
	err      error // the first configuration error
}

// take consumes d if it is an access directive.
func (a *hdAccessBuilder) take(d *hdDirective) bool {
	p := posOf(d)
	switch d.lname() {
	case "require", "requireall", "requireany", "requirenone":
		if !d.Section && d.lname() != "require" {
			return false
		}
		c, err := a.c.requireCond(d)
		if _, bad := err.(*hdError); bad && a.err == nil {
			a.err = err // as httpd, which does not start
		} else if err != nil {
			a.c.warn(p, "%v; access is denied to everyone in the Caddy configuration", err)
			c = hdFalse
		}
		a.requires = append(a.requires, c)
		a.mark(p)
		return true
	case "order":
		if len(d.Args) != 1 {
			a.c.warn(p, "takes Deny,Allow or Allow,Deny; ignored")
			return true
		}
		a.order = strings.ToLower(strings.ReplaceAll(d.Args[0], " ", ""))
		a.compat = true
		a.mark(p)
		return true
	case "allow", "deny":
		if len(d.Args) < 2 || !strings.EqualFold(d.Args[0], "from") {
			a.c.warn(p, "takes from and hosts; ignored")
			return true
		}
		a.compat = true
		for _, h := range d.Args[1:] {
			var c *hdCond
			if strings.EqualFold(h, "all") {
				if d.lname() == "allow" {
					a.allowAll = true
				} else {
					a.denyAll = true
				}
				continue
			}
			c, err := a.c.hostCond(h, p)
			if err != nil {
				a.c.warn(p, "%v", err)
				continue
			}
			if d.lname() == "allow" {
				a.allows = append(a.allows, c)
			} else {
				a.denies = append(a.denies, c)
			}
		}
		a.mark(p)
		return true
	case "satisfy":
		if len(d.Args) == 1 {
			a.satisfy = strings.ToLower(d.Args[0])
		}
		a.mark(p)
		return true
	case "authmerging":
		a.c.warn(p, "not translated: the last matching section's rules apply, as with AuthMerging Off")
		return true
	}
	return false
}

func (a *hdAccessBuilder) mark(p hdPos) {
	if a.pos == nil {
		a.pos = &p
	}
}

// build returns the section's access rule, or nil if it has none.
func (a *hdAccessBuilder) build(p hdPos) (*hdAccess, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.pos == nil {
		return nil, nil
	}
	var parts []*hdCond
	if len(a.requires) > 0 {
		parts = append(parts, hdOr(a.requires))
	}
	if a.compat {
		parts = append(parts, a.compatCond())
	}
	cond := parts[0]
	if len(parts) == 2 {
		if a.satisfy == "any" {
			cond = hdOr(parts)
		} else {
			cond = hdAnd(parts)
		}
		a.c.warn(*a.pos, "Require mixed with Order/Allow/Deny: translated as both must allow (Satisfy %s)", map[bool]string{true: "Any: either", false: "All"}[a.satisfy == "any"])
	}
	return &hdAccess{pos: *a.pos, cond: hdSimplify(cond)}, nil
}

// compatCond evaluates Order/Allow/Deny (mod_access_compat).
func (a *hdAccessBuilder) compatCond() *hdCond {
	allow := hdFalse
	if a.allowAll {
		allow = hdTrue
	} else if len(a.allows) > 0 {
		allow = hdOr(a.allows)
	}
	deny := hdFalse
	if a.denyAll {
		deny = hdTrue
	} else if len(a.denies) > 0 {
		deny = hdOr(a.denies)
	}
	switch a.order {
	case "allow,deny", "mutual-failure":
		return hdAnd([]*hdCond{allow, {op: "not", kids: []*hdCond{deny}}})
	default: // deny,allow (the default)
		return hdOr([]*hdCond{allow, {op: "not", kids: []*hdCond{deny}}})
	}
}

// requireCond reads a Require line or a <RequireAll|Any|None> section.
func (c *hdConfig) requireCond(d *hdDirective) (*hdCond, error) {
	p := posOf(d)
	if d.Section {
		var kids []*hdCond
		for _, sd := range d.Body {
			switch sd.lname() {
			case "require", "requireall", "requireany", "requirenone":
				k, err := c.requireCond(sd)
				if err != nil {
					return nil, err
				}
				kids = append(kids, k)
			default:
				c.warn(posOf(sd), "not allowed in <%s>; ignored", d.Name)
			}
		}
		if len(kids) == 0 {
			return nil, p.errf("<%s> has no Require", d.Name)
		}
		switch d.lname() {
		case "requireall":
			return hdAnd(kids), nil
		case "requireany":
			return hdOr(kids), nil
		default:
			return &hdCond{op: "not", kids: []*hdCond{hdOr(kids)}}, nil
		}
	}
	args := d.Args
	neg := false
	if len(args) > 0 && strings.EqualFold(args[0], "not") {
		neg, args = true, args[1:]
	}
	if len(args) == 0 {
		return nil, p.errf("Require takes a provider")
	}
	var cond *hdCond
	switch strings.ToLower(args[0]) {
	case "all":
		if len(args) != 2 {
			return nil, p.errf("Require all takes granted or denied")
		}
		switch strings.ToLower(args[1]) {
		case "granted":
			cond = hdTrue
		case "denied":
			cond = hdFalse
		default:
			return nil, p.errf("Require all takes granted or denied, not %q", args[1])
		}
	case "ip":
		if len(args) < 2 {
			return nil, p.errf("Require ip takes addresses")
		}
		var ips []string
		for _, a := range args[1:] {
			r, err := hdIPRange(a)
			if err != nil {
				return nil, p.errf("%v", err)
			}
			ips = append(ips, r)
		}
		cond = &hdCond{op: "ip", ips: ips}
	case "local":
		cond = hdLoopback
	case "host":
		var kids []*hdCond
		for _, h := range args[1:] {
			k, err := c.hostCond(h, p)
			if err != nil {
				c.warn(p, "%v", err)
				k = hdFalse
			}
			kids = append(kids, k)
		}
		if len(kids) == 0 {
			return nil, p.errf("Require host takes host names")
		}
		cond = hdOr(kids)
	case "method":
		if len(args) < 2 {
			return nil, p.errf("Require method takes methods")
		}
		var ms []string
		for _, m := range args[1:] {
			ms = append(ms, strings.ToUpper(m))
		}
		cond = &hdCond{op: "method", methods: ms}
	default:
		return nil, fmt.Errorf("cannot translate Require %s (Caddy matches clients by address, not by %s)", strings.Join(args, " "), args[0])
	}
	if neg {
		cond = &hdCond{op: "not", kids: []*hdCond{cond}}
	}
	return cond, nil
}

// hostCond is the condition of a host name, address or network in Require
// host / Allow from / Deny from. Caddy cannot look clients up in the DNS:
// localhost (what 127.0.0.1 and ::1 resolve to) becomes the loopback
// addresses; another name matches nobody, with an error the caller reports.
func (c *hdConfig) hostCond(h string, p hdPos) (*hdCond, error) {
	if r, err := hdIPRange(h); err == nil {
		return &hdCond{op: "ip", ips: []string{r}}, nil
	}
	lh := strings.ToLower(strings.TrimPrefix(h, "."))
	if lh == "localhost" || lh == "localhost.localdomain" || lh == "ip6-localhost" {
		return hdLoopback, nil
	}
	if strings.HasPrefix(strings.ToLower(h), "env=") {
		return hdFalse, fmt.Errorf("%s cannot be translated (environment conditions); it matches nobody in the Caddy configuration", h)
	}
	return hdFalse, fmt.Errorf("host name %q cannot be translated (Caddy does not look up client names in the DNS); it matches nobody in the Caddy configuration: use remote_ip with the addresses", h)
}

// hdIPRange converts an httpd address (full, partial "10.1", CIDR,
// network/netmask, IPv6) to an address or CIDR range.
func hdIPRange(a string) (string, error) {
	if strings.Contains(a, "/") {
		ipPart, mask, _ := strings.Cut(a, "/")
		ip := net.ParseIP(ipPart)
		if ip == nil {
			return "", fmt.Errorf("invalid address %q", a)
		}
		if _, err := strconv.Atoi(mask); err == nil {
			if _, _, err := net.ParseCIDR(a); err != nil {
				return "", fmt.Errorf("invalid network %q", a)
			}
			return a, nil
		}
		m := net.ParseIP(mask)
		if m == nil || m.To4() == nil {
			return "", fmt.Errorf("invalid netmask in %q", a)
		}
		ones, bits := net.IPMask(m.To4()).Size()
		if bits == 0 {
			return "", fmt.Errorf("invalid netmask in %q", a)
		}
		return fmt.Sprintf("%s/%d", ipPart, ones), nil
	}
	if ip := net.ParseIP(a); ip != nil {
		return a, nil
	}
	// Partial IPv4: 10, 10.1, 10.1.2
	parts := strings.Split(strings.TrimSuffix(a, "."), ".")
	if len(parts) >= 1 && len(parts) <= 3 {
		for _, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 255 {
				return "", fmt.Errorf("invalid address %q", a)
			}
		}
		full := append(parts, make([]string, 4-len(parts))...)
		for i := len(parts); i < 4; i++ {
			full[i] = "0"
		}
		return fmt.Sprintf("%s/%d", strings.Join(full, "."), 8*len(parts)), nil
	}
	return "", fmt.Errorf("invalid address %q", a)
}

func hdOr(kids []*hdCond) *hdCond {
	if len(kids) == 1 {
		return kids[0]
	}
	return &hdCond{op: "or", kids: kids}
}

func hdAnd(kids []*hdCond) *hdCond {
	if len(kids) == 1 {
		return kids[0]
	}
	return &hdCond{op: "and", kids: kids}
}

// hdSimplify folds constants and merges address lists.
func hdSimplify(c *hdCond) *hdCond {
	switch c.op {
	case "not":
		k := hdSimplify(c.kids[0])
		switch k.op {
		case "true":
			return hdFalse
		case "false":
			return hdTrue
		case "not":
			return k.kids[0]
		}
		return &hdCond{op: "not", kids: []*hdCond{k}}
	case "or", "and":
		var kids []*hdCond
		var ips []string
		for _, k := range c.kids {
			k = hdSimplify(k)
			switch {
			case c.op == "or" && k.op == "true", c.op == "and" && k.op == "false":
				return k
			case c.op == "or" && k.op == "false", c.op == "and" && k.op == "true":
				continue
			case c.op == "or" && k.op == "ip":
				ips = append(ips, k.ips...)
				continue
			case k.op == c.op:
				kids = append(kids, k.kids...)
				continue
			}
			kids = append(kids, k)
		}
		if len(ips) > 0 {
			kids = append([]*hdCond{{op: "ip", ips: hdUniq(ips)}}, kids...)
		}
		switch len(kids) {
		case 0:
			if c.op == "or" {
				return hdFalse
			}
			return hdTrue
		case 1:
			return kids[0]
		}
		return &hdCond{op: c.op, kids: kids}
	}
	return c
}

func hdUniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// matcherSets writes the condition as Caddy matcher sets (any set matches).
// Conditions with and/not become one CEL expression.
func (c *hdCond) matcherSets() []any {
	switch c.op {
	case "ip":
		return []any{map[string]any{"remote_ip": map[string]any{"ranges": c.ips}}}
	case "method":
		return []any{map[string]any{"method": c.methods}}
	case "or":
		var out []any
		for _, k := range c.kids {
			if k.op == "and" || k.op == "not" {
				return []any{map[string]any{"expression": c.cel()}}
			}
			out = append(out, k.matcherSets()...)
		}
		return out
	}
	return []any{map[string]any{"expression": c.cel()}}
}

// cel writes the condition as a CEL expression for Caddy's expression matcher.
func (c *hdCond) cel() string {
	quote := func(vals []string) string {
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
		}
		return strings.Join(q, ", ")
	}
	switch c.op {
	case "true":
		return "true"
	case "false":
		return "false"
	case "ip":
		return "remote_ip(" + quote(c.ips) + ")"
	case "method":
		return "method(" + quote(c.methods) + ")"
	case "not":
		return "!(" + c.kids[0].cel() + ")"
	}
	parts := make([]string, len(c.kids))
	for i, k := range c.kids {
		parts[i] = k.cel()
	}
	sep := " || "
	if c.op == "and" {
		sep = " && "
	}
	return "(" + strings.Join(parts, sep) + ")"
}

// hdHeaderOp is one Header or RequestHeader directive that is translated.
type hdHeaderOp struct {
	pos     hdPos
	request bool
	action  string // set, add, unset, edit
	name    string
	value   string // Caddy placeholders
	search  string // edit: regular expression
	// routeCookie is set for httpd's route cookie idiom:
	// Header add Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; attrs" env=BALANCER_ROUTE_CHANGED
	routeCookie *hdRouteCookie
}

type hdRouteCookie struct {
	cookie string
	attrs  string
}

// hdBalancerEnv maps mod_proxy_balancer's environment variables to the
// plugin's placeholders.
var hdBalancerEnv = map[string]string{
	"BALANCER_NAME":           "{http.balancer.name}",
	"BALANCER_WORKER_NAME":    "{http.balancer.worker_name}",
	"BALANCER_WORKER_ROUTE":   "{http.balancer.worker_route}",
	"BALANCER_ROUTE_CHANGED":  "{http.balancer.route_changed}",
	"BALANCER_SESSION_STICKY": "{http.balancer.session_sticky}",
	"BALANCER_SESSION_ROUTE":  "{http.balancer.session_route}",
}

var hdFormatRE = regexp.MustCompile(`%(%|\{[^}]*\}[a-zA-Z]|[a-zA-Z])`)

// hdHeaderValue converts a mod_headers value to a Caddy value: %% and the
// BALANCER_* variables (%{VAR}e) translate, other format specifiers do not.
func hdHeaderValue(v string) (string, error) {
	var err error
	escaped := strings.NewReplacer("{", `\{`, "}", `\}`)
	var out strings.Builder
	last := 0
	for _, m := range hdFormatRE.FindAllStringIndex(v, -1) {
		out.WriteString(escaped.Replace(v[last:m[0]]))
		spec := v[m[0]:m[1]]
		switch {
		case spec == "%%":
			out.WriteString("%")
		case strings.HasPrefix(spec, "%{") && strings.HasSuffix(spec, "}e"):
			name := spec[2 : len(spec)-2]
			if ph, ok := hdBalancerEnv[name]; ok {
				out.WriteString(ph)
			} else if err == nil {
				err = fmt.Errorf("format %s cannot be translated (only the BALANCER_* variables can)", spec)
			}
		default:
			if err == nil {
				err = fmt.Errorf("format %s cannot be translated", spec)
			}
		}
		last = m[1]
	}
	out.WriteString(escaped.Replace(v[last:]))
	return out.String(), err
}

// parseHeader reads Header and RequestHeader. It returns nil (with a
// warning) for what cannot be translated.
func (c *hdConfig) parseHeader(d *hdDirective) (*hdHeaderOp, error) {
	p := posOf(d)
	args := d.Args
	request := d.lname() == "requestheader"
	if !request && len(args) > 0 {
		switch strings.ToLower(args[0]) {
		case "always", "onsuccess":
			args = args[1:]
		}
	}
	if len(args) < 2 {
		return nil, p.errf("takes an action and a header name")
	}
	action := strings.ToLower(args[0])
	name := args[1]
	rest := args[2:]
	// A trailing condition: early, env=[!]var, expr=...
	var cond string
	if n := len(rest); n > 0 {
		last := rest[n-1]
		ll := strings.ToLower(last)
		if ll == "early" || strings.HasPrefix(ll, "env=") || strings.HasPrefix(ll, "expr=") {
			need := 1 // value
			if action == "unset" {
				need = 0
			} else if action == "edit" || action == "edit*" {
				need = 2
			}
			if n > need {
				cond, rest = last, rest[:n-1]
			}
		}
	}
	op := &hdHeaderOp{pos: p, request: request, name: name}
	switch action {
	case "set", "add", "append", "merge":
		if len(rest) != 1 {
			return nil, p.errf("%s %s takes one value", action, name)
		}
		if !request && strings.EqualFold(name, "Set-Cookie") && strings.Contains(rest[0], "%{BALANCER_WORKER_ROUTE}e") {
			return c.routeCookieOp(op, rest[0], cond)
		}
		v, err := hdHeaderValue(rest[0])
		if err != nil {
			c.warn(p, "not translated: %v", err)
			return nil, nil
		}
		op.action, op.value = action, v
		if action == "append" || action == "merge" {
			op.action = "add"
			if action == "merge" {
				c.warn(p, "merge is translated as add: the value is added even when already present")
			}
		}
	case "unset":
		if len(rest) != 0 {
			return nil, p.errf("unset %s takes no value", name)
		}
		op.action = "unset"
	case "edit", "edit*":
		if len(rest) != 2 {
			return nil, p.errf("%s %s takes a regular expression and a replacement", action, name)
		}
		if _, err := regexp.Compile(rest[0]); err != nil {
			return nil, p.errf("invalid regular expression %q: %v", rest[0], err)
		}
		v, err := hdHeaderValue(rest[1])
		if err != nil {
			c.warn(p, "not translated: %v", err)
			return nil, nil
		}
		op.action, op.search, op.value = "edit", rest[0], v
		if action == "edit" {
			c.warn(p, "edit is translated as edit*: every match is replaced, not only the first")
		}
	default:
		c.warn(p, "action %q is not translated", action)
		return nil, nil
	}
	if cond != "" {
		if strings.EqualFold(cond, "early") {
			c.warn(p, "early is not translated; the header is applied to the proxied request/response")
		} else {
			c.warn(p, "not translated: the condition %s cannot be expressed in Caddy header operations", cond)
			return nil, nil
		}
	}
	if !request && len(d.Args) > 0 && strings.EqualFold(d.Args[0], "always") {
		c.warn(p, "always: applied to proxied responses only (not to Caddy's own error responses)")
	}
	return op, nil
}

// routeCookieOp reads httpd's route cookie idiom into a route_cookie.
func (c *hdConfig) routeCookieOp(op *hdHeaderOp, value, cond string) (*hdHeaderOp, error) {
	p := op.pos
	name, rest, ok := strings.Cut(value, "=")
	const ph = "%{BALANCER_WORKER_ROUTE}e"
	i := strings.Index(rest, ph)
	if !ok || name == "" || i < 0 {
		c.warn(p, "not translated: want NAME=.%s; attributes", ph)
		return nil, nil
	}
	prefix := rest[:i]
	attrs := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(rest[i+len(ph):]), ";"))
	if strings.ContainsAny(attrs, "%") {
		c.warn(p, "not translated: format specifiers in the cookie attributes")
		return nil, nil
	}
	if prefix != "." {
		if prefix != "" && !strings.ContainsAny(prefix[len(prefix)-1:], ".") {
			c.warn(p, "the cookie value %q before the route does not end with the separator '.'; Caddy's route_cookie writes %s=.<route>", prefix, name)
		} else {
			c.warn(p, "the cookie value is written %s=.<route> (without %q); the route that stickiness reads is the same", name, strings.TrimSuffix(prefix, "."))
		}
	}
	if !strings.EqualFold(cond, "env=BALANCER_ROUTE_CHANGED") {
		c.warn(p, "translated as route_cookie, which is only sent when the route changed (env=BALANCER_ROUTE_CHANGED)")
	}
	op.routeCookie = &hdRouteCookie{cookie: name, attrs: attrs}
	return op, nil
}
