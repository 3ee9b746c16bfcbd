package httpdadapter

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// How httpd 2.4 finds the balancer of a ProxyPass target, and how the
// adapter follows it when the name is only known per request.
//
// httpd maps the request to a URL first and looks the balancer up second:
//
//   - ap_proxy_trans_match (mod_proxy.c) maps the request: for ProxyPass the
//     target URL followed by the rest of the path after the ProxyPass path;
//     for ProxyPassMatch the target with $1…$9 and & filled in from the
//     regular expression (or, when the target has no reference, followed by
//     the whole path);
//   - proxy_balancer_pre_request (mod_proxy_balancer.c) calls
//     ap_proxy_get_balancer (proxy_util.c) on that mapped URL, which cuts the
//     name at the first '/' after "balancer://" and lower-cases it; a name
//     no balancer has leaves the request to no handler: 500 (AH01144).
//   - balancer_fixup sends the member the path after the name ("/" when
//     there is none).
//
// So the name is cut after the substitution: `ProxyPassMatch ^(/.*)$
// balancer://mycluster$1` reaches balancer://mycluster with the path $1,
// because $1 starts with '/'; `ProxyPassMatch ^/app/(.*)$
// balancer://mycluster$1` sends /app/x/y to balancer://myclusterx with the
// path /y; and `ProxyPass / balancer://mycluster` (no '/' after the name)
// sends / to mycluster but /x to balancer://myclusterx. The adapter writes
// such a target as the mapped URL in a Caddy variable and one route per
// balancer whose name could come out of it, each cutting the name as
// ap_proxy_get_balancer does, and 500 when none matches.
//
// At configuration time httpd's add_pass (mod_proxy.c) also looks up, or
// creates, a balancer by the target as written, cut the same way:
// balancer://mycluster$1 for the first example above. That balancer never
// serves a request (it shows in httpd's balancer-manager, without members),
// and the balancer parameters of the ProxyPassMatch line go to it; the
// adapter leaves it out and warns about such parameters.

// hdDynTarget is a ProxyPass(Match) target whose balancer is only known per
// request.
type hdDynTarget struct {
	// template is the target after "balancer://", as written.
	template string
	// prefix is the part of the name that is the same for every request
	// (lower case): the name's text before the first reference.
	prefix string
	// appendRest: a ProxyPass (not Match), whose target is followed by the
	// rest of the request path.
	appendRest bool
}

// hdDynamicTarget returns the dynamic target of a ProxyPass(Match) to the
// balancer URL real, or nil when the name is the same for every request:
// for ProxyPassMatch when a reference fills in part of the name; for
// ProxyPass when the URL has no '/' after the name and the path ends in '/'
// (the rest of the request path then starts right after the name; after a
// path without a final '/', alias_match leaves a rest that is empty or
// starts with '/').
func hdDynamicTarget(regex bool, fake, real string) *hdDynTarget {
	rest := real[len("balancer://"):]
	namePart, _, hasPath := strings.Cut(rest, "/")
	switch {
	case regex:
		if i := hdFirstRef(namePart); i >= 0 {
			lit, _ := hdRegexSubst(namePart[:i], "")
			return &hdDynTarget{template: rest, prefix: strings.ToLower(strings.NewReplacer(`\{`, "{", `\}`, "}").Replace(lit))}
		}
	case !hasPath && strings.HasSuffix(fake, "/"):
		return &hdDynTarget{template: rest, prefix: strings.ToLower(rest), appendRest: true}
	}
	return nil
}

// hdFirstRef returns the index of the first ap_pregsub reference ($0-$9 or
// &, not escaped by a backslash) in s, or -1.
func hdFirstRef(s string) int {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == '$' || s[i+1] == '&'):
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9', s[i] == '&':
			return i
		}
	}
	return -1
}

// parseDynamicPass completes a ProxyPass(Match) whose balancer is only known
// per request; kvs are the line's balancer parameters.
func (c *hdConfig) parseDynamicPass(pass *hdPass, dyn *hdDynTarget, real string, kvs []string) (*hdPass, error) {
	p := pass.pos
	pass.dyn = dyn
	if dyn.appendRest {
		// add_pass finds the balancer by the URL as written, which is its
		// name: the parameters are that balancer's.
		b, err := c.balancerFor(pass.scope, real, p)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			if err := c.passBalancerParam(b, p, kv); err != nil {
				return nil, err
			}
		}
		c.warn(p, "the URL has no '/' after the balancer name and the path %q ends in '/': httpd appends the rest of the request path to the name, so only %s itself reaches balancer://%s (%sx/y goes to balancer://%sx with the path /y, or gets 500); translated as httpd does it. Write %s/ to send every request under %s to balancer://%s",
			pass.fake, pass.fake, dyn.prefix, pass.fake, dyn.prefix, real, pass.fake, dyn.prefix)
		return pass, nil
	}
	if len(kvs) > 0 {
		c.warn(p, "%s: in httpd these parameters go to a balancer named %s (add_pass cuts the name from the URL as written), which no request reaches; they have no effect and are not translated. Set them with ProxySet in the <Proxy> section of the balancer",
			strings.Join(kvs, " "), hdAsWritten(real))
	}
	if pass.regex && !hdRefsStartWithSlash(pass.fake, dyn.template) {
		c.warn(p, "the balancer name is cut from %s after the references are filled in (ap_proxy_get_balancer: up to the first '/'), so it depends on the request; translated as httpd does it: a request whose name is no balancer's gets 500",
			hdAsWritten(real))
	}
	return pass, nil
}

// passBalancerParam applies one key=value parameter of a ProxyPass line to
// its balancer.
func (c *hdConfig) passBalancerParam(b *hdBalancer, p hdPos, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return p.errf("invalid parameter %q: must be key=value", kv)
	}
	key = strings.ToLower(key)
	if !hdBalancerKeys[key] {
		return p.errf("unknown Balancer parameter %q (worker parameters belong on BalancerMember)", key)
	}
	return c.applyBalancerParam(b, hdParam{pos: p, key: key, val: val})
}

// hdAsWritten is the balancer:// part of a URL as httpd's add_pass names
// the balancer: up to the first '/', lower case.
func hdAsWritten(real string) string {
	name, _ := hdSplitBalancerURL(real)
	return "balancer://" + name
}

// hdRefsStartWithSlash reports whether the name part of a ProxyPassMatch
// target is a literal followed by one reference $N (and nothing else), and
// group N of the regular expression always starts with '/' when it takes
// part in the match: then the name is the literal for every request, as in
// `ProxyPassMatch ^(/.*)$ balancer://mycluster$1`.
func hdRefsStartWithSlash(pattern, template string) bool {
	namePart, _, _ := strings.Cut(template, "/")
	i := hdFirstRef(namePart)
	if i < 0 || namePart[i] != '$' || i+2 != len(namePart) {
		return false
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return false
	}
	g := hdCapture(re, int(namePart[i+1]-'0'))
	return g != nil && hdStartsWithSlash(g.Sub[0])
}

// hdCapture finds capture group n.
func hdCapture(re *syntax.Regexp, n int) *syntax.Regexp {
	if re.Op == syntax.OpCapture && re.Cap == n {
		return re
	}
	for _, s := range re.Sub {
		if g := hdCapture(s, n); g != nil {
			return g
		}
	}
	return nil
}

// hdStartsWithSlash reports whether every match of re starts with '/'.
func hdStartsWithSlash(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) > 0 && re.Rune[0] == '/'
	case syntax.OpCapture, syntax.OpPlus:
		return hdStartsWithSlash(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			switch s.Op {
			case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEmptyMatch:
				continue
			}
			return hdStartsWithSlash(s)
		}
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !hdStartsWithSlash(s) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

// dynamicCandidates returns the balancers a dynamic target of scope s can
// reach: those the scope sees whose name starts with the target's prefix,
// in configuration order.
func (c *hdConfig) dynamicCandidates(s *hdScope, dyn *hdDynTarget) []*hdBalancer {
	var out []*hdBalancer
	seen := map[string]bool{}
	for _, b := range c.balancers {
		if seen[b.name] || !strings.HasPrefix(b.name, dyn.prefix) {
			continue
		}
		if lb := c.lookupBalancer(s, b.name); lb != nil {
			seen[b.name] = true
			out = append(out, lb.effective())
		}
	}
	return out
}

// hdDynVar is the Caddy variable that holds the mapped target of a
// dynamic ProxyPass(Match), after "balancer://".
const hdDynVar = "httpd_balancer_url"

// dynamicPassRoutes writes the route of a ProxyPass(Match) whose balancer is
// only known per request: the mapped URL goes into a variable, then one
// route per balancer that could be named cuts the name from it as
// ap_proxy_get_balancer does, rewrites the path to what follows the name
// and hands the request to that balancer; no match is httpd's 500.
func (e *hdEmitter) dynamicPassRoutes(eff *hdEff, p *hdPass, set, base map[string]any, locAccess []any) ([]any, error) {
	name := hdRegexName(set)
	var mapped string
	if p.dyn.appendRest {
		mapped = hdEscapeBraces(p.dyn.template) + fmt.Sprintf("{http.regexp.%s.1}", name)
	} else {
		mapped, _ = hdRegexSubst(p.dyn.template, name)
	}
	cands := e.c.dynamicCandidates(eff.s, p.dyn)
	if len(cands) == 0 {
		e.warnOnce(p.pos, "no balancer's name starts with %q: httpd answers 500 to every request of this line", p.dyn.prefix)
	}
	var sub []any
	for i, b := range cands {
		vname := fmt.Sprintf("%sb%d", name, i+1)
		match := map[string]any{"vars_regexp": map[string]any{hdDynVar: map[string]any{
			"name":    vname,
			"pattern": `(?is)^` + regexp.QuoteMeta(b.name) + `(?:/(.*))?$`,
		}}}
		targetURL := "balancer://" + b.name + "/"
		deny, h, err := e.targetHandler(eff, p, b, targetURL, set, locAccess)
		if err != nil {
			return nil, err
		}
		handlers := []any{map[string]any{"handler": "rewrite", "uri": fmt.Sprintf("/{http.regexp.%s.1}", vname)}, h}
		if deny != nil {
			// A <Proxy> section of this balancer refuses some clients.
			if not := hdSetsOf(deny["not"]); len(not) == 0 {
				handlers = []any{hdForbidden()}
			} else {
				handlers = []any{map[string]any{"handler": "subroute", "routes": []any{
					hdRoute(map[string]any{"not": not}, hdForbidden()),
					hdRoute(nil, handlers...),
				}}}
			}
		}
		sub = append(sub, map[string]any{"match": []any{match}, "handle": handlers, "terminal": true})
	}
	sub = append(sub, map[string]any{"handle": []any{map[string]any{"handler": "static_response", "status_code": 500}}})
	return []any{hdRoute(base,
		map[string]any{"handler": "vars", hdDynVar: mapped},
		map[string]any{"handler": "subroute", "routes": sub},
	)}, nil
}
