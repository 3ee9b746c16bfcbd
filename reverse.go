package caddybalancer

import (
	"net/http"
	"strings"

	"github.com/lbset/caddy-balancer/balancer"
)

// reverseHeaders are the response headers httpd's ProxyPassReverse rewrites
// (process_proxy_header in mod_proxy_http.c). The manual lists the first three;
// the code also rewrites Destination.
var reverseHeaders = [...]string{"Location", "Content-Location", "URI", "Destination"}

// reverseMapper rewrites member responses as httpd's ProxyPassReverse and
// ProxyPassReverseCookieDomain/Path do.
type reverseMapper struct {
	rule        *ProxyPassReverse
	cookiePath  []CookieRewrite
	cookieDomin []CookieRewrite
}

func (h *Handler) reverseMapper() *reverseMapper {
	if h.ProxyPassReverse == nil && len(h.ProxyPassReverseCookiePath) == 0 && len(h.ProxyPassReverseCookieDomain) == 0 {
		return nil
	}
	return &reverseMapper{rule: h.ProxyPassReverse, cookiePath: h.ProxyPassReverseCookiePath, cookieDomin: h.ProxyPassReverseCookieDomain}
}

// apply rewrites the headers of resp. frontScheme and frontHost are those of
// the client request, used to make a rewritten path absolute.
func (rm *reverseMapper) apply(resp *http.Response, b *balancer.Balancer, frontScheme, frontHost string) {
	if rm.rule != nil {
		var names []string
		for _, hdr := range reverseHeaders {
			vals := resp.Header.Values(hdr)
			if len(vals) == 0 {
				continue
			}
			if names == nil {
				for _, m := range b.Members() {
					names = append(names, m.Name())
				}
			}
			out := make([]string, len(vals))
			for i, v := range vals {
				out[i] = locationReverseMap(v, rm.rule.Prefix, rm.rule.Path, names, frontScheme, frontHost)
			}
			resp.Header[http.CanonicalHeaderKey(hdr)] = out
		}
	}
	if len(rm.cookiePath) > 0 || len(rm.cookieDomin) > 0 {
		if vals := resp.Header.Values("Set-Cookie"); len(vals) > 0 {
			out := make([]string, len(vals))
			for i, v := range vals {
				out[i] = cookieReverseMap(v, rm.cookiePath, rm.cookieDomin)
			}
			resp.Header["Set-Cookie"] = out
		}
	}
}

// locationReverseMap is ap_proxy_location_reverse_map for one rule whose real
// side is this balancer: a value that starts with any member's name
// (case-insensitive) followed by part (case-sensitive) is mapped to prefix +
// the rest, then made absolute with the front end's scheme and host.
func locationReverseMap(v, prefix, part string, members []string, scheme, host string) string {
	if prefix == "" {
		prefix = "/"
	}
	if part == "/" {
		part = ""
	}
	for _, m := range members {
		var rest string
		if part != "" {
			m = strings.TrimSuffix(m, "/")
			if !hasPrefixFold(v, m) || !strings.HasPrefix(v[len(m):], part) {
				continue
			}
			rest = v[len(m)+len(part):]
		} else {
			if !hasPrefixFold(v, m) {
				continue
			}
			rest = v[len(m):]
		}
		var out string
		if prefix == "/" && strings.HasPrefix(rest, "/") {
			out = rest
		} else {
			out = prefix + rest
		}
		if !strings.Contains(out, "://") {
			out = constructURL(scheme, host, out)
		}
		return out
	}
	return v
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
func cookieReverseMap(v string, pathRules, domainRules []CookieRewrite) string {
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

// routeCookie returns the Set-Cookie value for the route cookie, or "".
func routeCookie(rc *RouteCookie, cookieName, route string) string {
	if rc == nil || cookieName == "" || route == "" {
		return ""
	}
	attrs := rc.Attributes
	if attrs == "" {
		attrs = "path=/"
	}
	return cookieName + "=." + route + "; " + attrs
}
