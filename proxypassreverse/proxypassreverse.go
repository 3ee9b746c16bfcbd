// Package proxypassreverse is httpd's ProxyPassReverse,
// ProxyPassReverseCookieDomain and ProxyPassReverseCookiePath: the rewriting
// of the Location, Content-Location, URI and Destination headers and of
// Set-Cookie's domain and path in member responses
// (ap_proxy_location_reverse_map and ap_proxy_cookie_reverse_map in
// proxy_util.c; docs/behaviour.md §9).
package proxypassreverse

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/lbset/caddy-balancer/balancer"
)

// Rule is one httpd `ProxyPassReverse <prefix> <real>` rule. Its real side
// is either a balancer (Balancer and Path: httpd's balancer://NAME/PART) or
// a plain URL or path (URL), not both.
type Rule struct {
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

// CookieRule is one ProxyPassReverseCookieDomain/Path rule.
type CookieRule struct {
	// Internal is the domain or path the member sets.
	Internal string `json:"internal"`
	// Public replaces the whole attribute value when Internal is its prefix.
	Public string `json:"public"`
}

// Headers are the response headers httpd's ProxyPassReverse rewrites
// (process_proxy_header in mod_proxy_http.c). The manual lists the first three;
// the code also rewrites Destination.
var Headers = [...]string{"Location", "Content-Location", "URI", "Destination"}

// Mapper rewrites member responses as httpd's ProxyPassReverse and
// ProxyPassReverseCookieDomain/Path do.
type Mapper struct {
	rules        []reverseRule
	cookiePath   []CookieRule
	cookieDomain []CookieRule
	lookup       func(name string) *balancer.Balancer
}

// reverseRule is one ProxyPassReverse rule, normalized.
type reverseRule struct {
	prefix string // fake; never empty
	// A balancer rule: own (this handler's balancer) or balancer (another
	// one's name, lower case), and part ("" for none).
	own      bool
	balancer string
	part     string
	// A plain rule: real is its URL or path.
	plain bool
	real  string
}

// Validate reports a ProxyPassReverse rule that is not valid.
func Validate(rules []Rule) error {
	for i, r := range rules {
		switch {
		case r.URL != "" && (r.Balancer != "" || r.Path != ""):
			return fmt.Errorf("proxy_pass_reverse[%d]: url %q cannot go with balancer or path: a rule maps either a balancer or a plain URL", i, r.URL)
		case r.Path != "" && !strings.HasPrefix(r.Path, "/"):
			return fmt.Errorf("proxy_pass_reverse[%d]: path %q must start with '/'", i, r.Path)
		case strings.ContainsAny(r.Balancer, "/: \t\r\n?#"):
			return fmt.Errorf("proxy_pass_reverse[%d]: balancer %q must be a balancer name (without balancer:// and path)", i, r.Balancer)
		}
	}
	return nil
}

// New returns the mapper of a balancer handler's rules, nil if it has none.
// own is the handler's balancer name; lookup finds another balancer by name
// (nil if there is none) when a response is mapped.
func New(own string, rules []Rule, cookiePath, cookieDomain []CookieRule, lookup func(name string) *balancer.Balancer) *Mapper {
	if len(rules) == 0 && len(cookiePath) == 0 && len(cookieDomain) == 0 {
		return nil
	}
	rm := &Mapper{cookiePath: cookiePath, cookieDomain: cookieDomain, lookup: lookup}
	for _, r := range rules {
		rr := reverseRule{prefix: r.Prefix}
		if rr.prefix == "" {
			rr.prefix = "/"
		}
		if r.URL != "" {
			rr.plain, rr.real = true, r.URL
		} else {
			name := strings.ToLower(r.Balancer)
			rr.own = name == "" || name == strings.ToLower(own)
			if !rr.own {
				rr.balancer = name
			}
			rr.part = r.Path
			if rr.part == "/" {
				rr.part = ""
			}
		}
		rm.rules = append(rm.rules, rr)
	}
	return rm
}

// Apply rewrites the headers of resp. own is the handler's balancer;
// frontScheme and frontHost are those of the client request, used to make a
// rewritten path absolute.
func (rm *Mapper) Apply(resp *http.Response, own *balancer.Balancer, frontScheme, frontHost string) {
	if len(rm.rules) > 0 {
		var rules []resolvedRule
		for _, hdr := range Headers {
			vals := resp.Header.Values(hdr)
			if len(vals) == 0 {
				continue
			}
			if rules == nil {
				rules = rm.resolve(own)
			}
			out := make([]string, len(vals))
			for i, v := range vals {
				out[i] = locationReverseMap(v, rules, frontScheme, frontHost)
			}
			resp.Header[http.CanonicalHeaderKey(hdr)] = out
		}
	}
	if len(rm.cookiePath) > 0 || len(rm.cookieDomain) > 0 {
		if vals := resp.Header.Values("Set-Cookie"); len(vals) > 0 {
			out := make([]string, len(vals))
			for i, v := range vals {
				out[i] = cookieReverseMap(v, rm.cookiePath, rm.cookieDomain)
			}
			resp.Header["Set-Cookie"] = out
		}
	}
}

// resolvedRule is a rule as it applies to one response: a balancer rule
// with the member names of its balancer at that moment, or a plain rule.
type resolvedRule struct {
	prefix  string
	members []string // balancer rule: the member names (URLs)
	part    string   // balancer rule: PART, "" for none
	plain   bool
	real    string // plain rule: the URL or path
}

// resolve looks up the balancers of the rules: own for this handler's,
// lookup for the others. As in httpd, a name that is not a
// balancer makes the rule a plain one with "balancer://NAME/PART" as its URL.
func (rm *Mapper) resolve(own *balancer.Balancer) []resolvedRule {
	out := make([]resolvedRule, len(rm.rules))
	for i, r := range rm.rules {
		rr := resolvedRule{prefix: r.prefix, part: r.part, plain: r.plain, real: r.real}
		if !r.plain {
			b := own
			if !r.own {
				b = nil
				if rm.lookup != nil {
					b = rm.lookup(r.balancer)
				}
			}
			if b == nil {
				rr.plain, rr.real = true, "balancer://"+r.balancer+r.part
			} else {
				for _, m := range b.Members() {
					rr.members = append(rr.members, m.Name())
				}
			}
		}
		out[i] = rr
	}
	return out
}

// locationReverseMap is ap_proxy_location_reverse_map: the rules are tried in
// order, the first that matches v gives the result, made absolute with the
// front end's scheme and host unless it is an absolute URL; no match leaves v
// as it is.
//
// A balancer rule matches a value that starts with any member's name
// (case-insensitive), followed by the rule's PART (case-sensitive, after
// dropping one trailing '/' of the member name); the result is prefix + the
// rest (without PART, a prefix of "/" and a rest starting with '/' give just
// the rest). A plain rule matches a value that starts with its URL
// (case-insensitive); a URL that is a path is compared with the path of an
// absolute value (from the first '/' after "://") or with the whole value;
// the result is prefix + the rest.
func locationReverseMap(v string, rules []resolvedRule, scheme, host string) string {
	for _, r := range rules {
		out, ok := "", false
		if r.plain {
			out, ok = plainReverseMap(v, r.prefix, r.real)
		} else {
			out, ok = balancerReverseMap(v, r.prefix, r.part, r.members)
		}
		if !ok {
			continue
		}
		if !isURL(out) {
			out = constructURL(scheme, host, out)
		}
		return out
	}
	return v
}

// balancerReverseMap is one balancer rule of ap_proxy_location_reverse_map.
func balancerReverseMap(v, prefix, part string, members []string) (string, bool) {
	for _, m := range members {
		if part != "" {
			m = strings.TrimSuffix(m, "/")
			if !hasPrefixFold(v, m) || !strings.HasPrefix(v[len(m):], part) {
				continue
			}
			return prefix + v[len(m)+len(part):], true
		}
		if !hasPrefixFold(v, m) {
			continue
		}
		rest := v[len(m):]
		if prefix == "/" && strings.HasPrefix(rest, "/") {
			return rest, true
		}
		return prefix + rest, true
	}
	return "", false
}

// plainReverseMap is one plain rule of ap_proxy_location_reverse_map.
func plainReverseMap(v, prefix, real string) (string, bool) {
	if real == "" {
		return "", false
	}
	part := v
	if real[0] == '/' {
		if i := strings.Index(v, "://"); i >= 0 {
			if j := strings.IndexByte(v[i+3:], '/'); j >= 0 {
				part = v[i+3+j:]
			}
		}
	}
	if !hasPrefixFold(part, real) {
		return "", false
	}
	return prefix + part[len(real):], true
}

// isURL is httpd's ap_is_url: the value starts with a scheme (letters,
// digits, '+', '-', '.') and a ':'.
func isURL(u string) bool {
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c == ':':
			return i > 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return false
}

// constructURL is ap_construct_url: scheme://host[:port]path, default port omitted.
func constructURL(scheme, host, path string) string {
	if (scheme == "http" && strings.HasSuffix(host, ":80")) || (scheme == "https" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return scheme + "://" + host + path
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// cookieReverseMap is ap_proxy_cookie_reverse_map: of the ';'-separated
// tokens, the last `path=` and the last `domain=` (attribute names
// case-insensitive; the first token counts too) are matched against the rules:
// the first path rule whose internal path is a case-sensitive prefix, the first
// domain rule whose internal domain is a case-insensitive prefix; the whole
// value up to the next ';' is replaced by the public value. Everything else is
// kept byte for byte.
func cookieReverseMap(v string, pathRules, domainRules []CookieRule) string {
	pathStart, pathEnd, domStart, domEnd := -1, -1, -1, -1
	for i := 0; i <= len(v); {
		end := strings.IndexByte(v[i:], ';')
		if end < 0 {
			end = len(v)
		} else {
			end += i
		}
		j := i
		for j < end && isSpaceByte(v[j]) {
			j++
		}
		tok := v[j:end]
		switch {
		case len(pathRules) > 0 && hasPrefixFold(tok, "path="):
			pathStart, pathEnd = j+len("path="), end
		case len(domainRules) > 0 && hasPrefixFold(tok, "domain="):
			domStart, domEnd = j+len("domain="), end
		}
		i = end + 1
	}
	type repl struct {
		start, end int
		val        string
	}
	var rs []repl
	if pathStart >= 0 {
		val := v[pathStart:pathEnd]
		for _, r := range pathRules {
			if strings.HasPrefix(val, r.Internal) {
				rs = append(rs, repl{pathStart, pathEnd, r.Public})
				break
			}
		}
	}
	if domStart >= 0 {
		val := v[domStart:domEnd]
		for _, r := range domainRules {
			if hasPrefixFold(val, r.Internal) {
				rs = append(rs, repl{domStart, domEnd, r.Public})
				break
			}
		}
	}
	if len(rs) == 0 {
		return v
	}
	if len(rs) == 2 && rs[1].start < rs[0].start {
		rs[0], rs[1] = rs[1], rs[0]
	}
	var sb strings.Builder
	last := 0
	for _, r := range rs {
		sb.WriteString(v[last:r.start])
		sb.WriteString(r.val)
		last = r.end
	}
	sb.WriteString(v[last:])
	return sb.String()
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
