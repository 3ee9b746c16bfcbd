package balancer

import "strings"

// sessionRoute is find_session_route: look for the session value in the URL
// (the sticky path parameter) first, then in the Cookie header, then cut the
// route from it at the separator. ok is false when there is no route at all
// (no value, or a value without the separator); route may be empty when ok.
func (b *Balancer) sessionRoute(req *Request) (route, name string, ok bool) {
	var value string
	var found bool
	if b.stickyPath != "" {
		value, found = PathParam(req.URL, b.stickyPath, b.scolon)
		name = b.stickyPath
	}
	if !found && b.sticky != "" {
		value, found = CookieParam(req.Cookie, b.sticky)
		name = b.sticky
	}
	if !found {
		return "", "", false
	}
	route, ok = RouteFromValue(value, b.sep)
	if !ok {
		return "", "", false
	}
	return route, name, true
}

// RouteFromValue cuts the route from a session value: everything after the
// first separator; a value without it has no route. sep 0 means Off: the whole
// value is the route.
func RouteFromValue(value string, sep byte) (string, bool) {
	if sep == 0 {
		return value, true
	}
	i := strings.IndexByte(value, sep)
	if i < 0 {
		return "", false
	}
	return value[i+1:], true
}

// PathParam is get_path_param: find the parameter name as a plain substring
// anywhere in url; the first occurrence followed by '=' and at least one more
// character gives the value, which is the first token of the rest split on
// '?' and '&' (and ';' with scolon), leading delimiters skipped. As in httpd
// (`strstr(path + 1, name)` after path moved past the name, and the '=' if
// any), the next occurrence is searched from one character further on. An
// empty name finds nothing.
func PathParam(url, name string, scolon bool) (string, bool) {
	delims := "?&"
	if scolon {
		delims = "?&;"
	}
	if name == "" {
		return "", false
	}
	for i := 0; i <= len(url); i++ {
		j := strings.Index(url[i:], name)
		if j < 0 {
			return "", false
		}
		i += j + len(name)
		if i < len(url) && url[i] == '=' {
			i++
			if i < len(url) {
				rest := url[i:]
				k := 0
				for k < len(rest) && strings.IndexByte(delims, rest[k]) >= 0 {
					k++
				}
				rest = rest[k:]
				if rest == "" {
					return "", false
				}
				if e := strings.IndexAny(rest, delims); e >= 0 {
					rest = rest[:e]
				}
				return rest, true
			}
		}
	}
	return "", false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// CookieParam is get_cookie_param: an occurrence of the cookie name at the
// start of the header or after ';', ',' or white space, then optional white
// space, '=' and at least one character; the value runs to the first ';' or ','.
// The next occurrence is searched as httpd searches it: from one character
// after a rejected occurrence's start, or from one character past the
// character that was compared with '='.
func CookieParam(header, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for i := 0; i <= len(header); {
		j := strings.Index(header[i:], name)
		if j < 0 {
			return "", false
		}
		start := i + j
		if start > 0 {
			c := header[start-1]
			if c != ';' && c != ',' && !isSpace(c) {
				i = start + 1
				continue
			}
		}
		k := start + len(name)
		for k < len(header) && isSpace(header[k]) {
			k++
		}
		if k < len(header) && header[k] == '=' && k+1 < len(header) {
			v := header[k+1:]
			if e := strings.IndexAny(v, ";,"); e >= 0 {
				v = v[:e]
			}
			return v, true
		}
		i = k + 2
	}
	return "", false
}

// findRouteWorker is find_route_worker: first the members that are not hot
// standbys, then the hot standbys, each in configuration order; a member with
// exactly this route is returned if usable (after the retry rule); if it is not
// and it has a redirect, the redirect route is resolved the same way (to a
// depth below the member count). lbset, spares and drain are ignored here.
// Caller holds the lock.
func (b *Balancer) findRouteWorker(route string, depth int, now *clock) *Member {
	if route == "" {
		return nil // no member has an empty route
	}
	key := routeKeyOf(route)
	for pass := 0; pass < 2; pass++ {
		for _, m := range b.members {
			if m.routeKey != key || (m.status&HotStandby != 0) != (pass == 1) || m.route != route {
				continue
			}
			if m.isUsable() {
				return m
			}
			m.retryWorker(now)
			if m.isUsable() {
				return m
			}
			if m.redirect != "" && depth < len(b.members) {
				r := b.findRouteWorker(m.redirect, depth+1, now)
				if r != nil {
					if !r.isUsable() {
						r.retryWorker(now)
					}
					if r.isUsable() {
						return r
					}
				}
			}
		}
	}
	return nil
}
