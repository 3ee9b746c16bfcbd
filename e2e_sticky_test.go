package caddybalancer

import (
	"fmt"
	"strings"
	"testing"
)

// This file reproduces docs/behaviour.md §4.5 (route extraction), §4.6 (state
// interactions) and §4.7 (the route cookie) through a real Caddy loaded from a
// Caddyfile, in front of real backends. Each table row gets a balancer of its
// own (fresh state, so that "balanced" has one predictable answer: with
// byrequests and equal load factors the first usable member in configuration
// order, docs/behaviour.md §3.3 and §5.1) on the path /sNN, mapped as httpd's
// `ProxyPass /sNN balancer://sNN`. The balancer placeholders ({http.balancer.*},
// httpd's BALANCER_* variables, docs/behaviour.md §3.5) are sent back to the client with
// header_down. Expected values come from docs/behaviour.md's tables.
//
// The same rows are run against real httpd in TestOracleSticky.

// stickyMember is one BalancerMember of a row.
type stickyMember struct {
	backend string // b1..b5 (real backends) or "dead" (a port nobody listens on)
	route   string
	extra   string // more httpd BalancerMember parameters: "status=D redirect=r3"
}

// stickyWant is what one request must get.
type stickyWant struct {
	status  int    // 0: 200
	backend string // the backend that answers; "!bN": any backend but bN
	// route is BALANCER_SESSION_ROUTE ({http.balancer.session_route}); "" means
	// not set, emptyRoute set to the empty string.
	route string
	// via is BALANCER_SESSION_STICKY, the cookie or URL parameter name the route
	// came from; set only with route.
	via     string
	changed bool // BALANCER_ROUTE_CHANGED=1
}

const emptyRoute = "\x00empty"

type stickyReq struct {
	target  string   // request target after /sNN
	headers []string // "Name: value" lines, in order
	want    stickyWant
}

// stickyCase is one row of §4.5/§4.6.
type stickyCase struct {
	spec    string   // the row as docs/behaviour.md writes it
	params  []string // balancer parameters, httpd syntax
	members []stickyMember
	reqs    []stickyReq
}

const (
	stickyJSess = "stickysession=JSESSIONID|jsessionid"
	jsessCookie = "JSESSIONID"
	jsessParam  = "jsessionid"
)

// stickyRoutes123 are §4.5's members: routes r1 r2 r3 on backends b1 b2 b3.
var stickyRoutes123 = []stickyMember{{"b1", "r1", ""}, {"b2", "r2", ""}, {"b3", "r3", ""}}

// cookieReq is a request for /a with one Cookie header.
func cookieReq(v string, w stickyWant) stickyReq {
	return stickyReq{target: "/a", headers: []string{"Cookie: " + v}, want: w}
}

// urlOnlyReq is a request for target without cookies.
func urlOnlyReq(target string, w stickyWant) stickyReq { return stickyReq{target: target, want: w} }

// wantSticky: the member of the route answers, nothing changed.
func wantSticky(backend, route, via string) stickyWant {
	return stickyWant{backend: backend, route: route, via: via}
}

// wantBalanced: the chooser answers (b1 on a fresh balancer) and the route changed.
func wantBalanced(backend, route, via string) stickyWant {
	return stickyWant{backend: backend, route: route, via: via, changed: true}
}

// stickyCases are docs/behaviour.md §4.5 (balancer `st`, members r1/r2/r3,
// stickysession=JSESSIONID|jsessionid) and §4.6, one balancer per row.
func stickyCases() []stickyCase {
	t45 := func(spec string, reqs ...stickyReq) stickyCase {
		return stickyCase{spec: "§4.5 " + spec, params: []string{stickyJSess}, members: stickyRoutes123, reqs: reqs}
	}
	cs := []stickyCase{
		t45("cookie JSESSIONID=abc.r2", cookieReq("JSESSIONID=abc.r2", wantSticky("b2", "r2", jsessCookie))),
		t45("cookie JSESSIONID=abc.r2.x", cookieReq("JSESSIONID=abc.r2.x", wantBalanced("b1", "r2.x", jsessCookie))),
		t45("cookie JSESSIONID=abc (no dot)", cookieReq("JSESSIONID=abc", wantBalanced("b1", "", ""))),
		t45("cookie JSESSIONID=r3", cookieReq("JSESSIONID=r3", wantBalanced("b1", "", ""))),
		t45("cookie JSESSIONID=.r3", cookieReq("JSESSIONID=.r3", wantSticky("b3", "r3", jsessCookie))),
		t45("cookie x=1; JSESSIONID = abc.r3", cookieReq("x=1; JSESSIONID = abc.r3", wantSticky("b3", "r3", jsessCookie))),
		t45("cookie xJSESSIONID=abc.r3", cookieReq("xJSESSIONID=abc.r3", wantBalanced("b1", "", ""))),
		t45("cookie jsessionid=abc.r3 (wrong case)", cookieReq("jsessionid=abc.r3", wantBalanced("b1", "", ""))),
		t45(`cookie JSESSIONID="x.r2"`, cookieReq(`JSESSIONID="x.r2"`, wantBalanced("b1", `r2"`, jsessCookie))),
		t45("cookie JSESSIONID=x.r2 ; b=1", cookieReq("JSESSIONID=x.r2 ; b=1", wantBalanced("b1", "r2 ", jsessCookie))),
		t45("two headers Cookie: a=1 + Cookie: JSESSIONID=x.r3",
			stickyReq{target: "/a", headers: []string{"Cookie: a=1", "Cookie: JSESSIONID=x.r3"}, want: wantSticky("b3", "r3", jsessCookie)}),
		t45("Cookie: a=1, JSESSIONID=x.r2", cookieReq("a=1, JSESSIONID=x.r2", wantSticky("b2", "r2", jsessCookie))),
		t45("/st/a;jsessionid=abc.r3", urlOnlyReq("/a;jsessionid=abc.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a;jsessionid=abc.r3;foo=bar", urlOnlyReq("/a;jsessionid=abc.r3;foo=bar", wantBalanced("b1", "r3;foo=bar", jsessParam))),
		{spec: "§4.5 /st/a;jsessionid=abc.r3;foo=bar with scolonpathdelim=On", params: []string{stickyJSess, "scolonpathdelim=On"}, members: stickyRoutes123,
			reqs: []stickyReq{urlOnlyReq("/a;jsessionid=abc.r3;foo=bar", wantSticky("b3", "r3", jsessParam))}},
		t45("/st/a?jsessionid=abc.r3", urlOnlyReq("/a?jsessionid=abc.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a?x=1&jsessionid=abc.r3&y=2", urlOnlyReq("/a?x=1&jsessionid=abc.r3&y=2", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a?jsessionid=abc.r3;x", urlOnlyReq("/a?jsessionid=abc.r3;x", wantBalanced("b1", "r3;x", jsessParam))),
		t45("/st/a?foo=xjsessionid=abc.r3 (substring match)", urlOnlyReq("/a?foo=xjsessionid=abc.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/ajsessionid=abc.r3 (substring match in path)", urlOnlyReq("/ajsessionid=abc.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a?jsessionid=abc%2Er3 (query not decoded)", urlOnlyReq("/a?jsessionid=abc%2Er3", wantBalanced("b1", "", ""))),
		t45("/st/a;jsessionid=abc%2Er3 (path decoded)", urlOnlyReq("/a;jsessionid=abc%2Er3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a%3Bjsessionid=abc.r3", urlOnlyReq("/a%3Bjsessionid=abc.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a?jsessionid=", urlOnlyReq("/a?jsessionid=", wantBalanced("b1", "", ""))),
		t45("/st/a?jsessionid=&jsessionid=x.r3 (tokenizer skips leading &)", urlOnlyReq("/a?jsessionid=&jsessionid=x.r3", wantSticky("b3", "r3", jsessParam))),
		t45("/st/a;jsessionid=abc.r2?jsessionid=abc.r3 (first occurrence)", urlOnlyReq("/a;jsessionid=abc.r2?jsessionid=abc.r3", wantSticky("b2", "r2", jsessParam))),
		t45("URL param r2 and cookie r3 (URL wins)",
			stickyReq{target: "/a;jsessionid=x.r2", headers: []string{"Cookie: JSESSIONID=x.r3"}, want: wantSticky("b2", "r2", jsessParam)}),
		{spec: "§4.5 stickysessionsep=Off, cookie ROUTEID=r2", params: []string{"stickysession=ROUTEID", "stickysessionsep=Off"}, members: stickyRoutes123,
			reqs: []stickyReq{cookieReq("ROUTEID=r2", wantSticky("b2", "r2", "ROUTEID"))}},
		{spec: "§4.5 stickysessionsep=Off, cookie ROUTEID=x.r2", params: []string{"stickysession=ROUTEID", "stickysessionsep=Off"}, members: stickyRoutes123,
			reqs: []stickyReq{cookieReq("ROUTEID=x.r2", wantBalanced("b1", "x.r2", "ROUTEID"))}},
		{spec: "§4.5 stickysessionsep=!, cookie ROUTEID=x!r2", params: []string{"stickysession=ROUTEID", "stickysessionsep=!"}, members: stickyRoutes123,
			reqs: []stickyReq{cookieReq("ROUTEID=x!r2", wantSticky("b2", "r2", "ROUTEID"))}},
		{spec: "§4.5 stickysessionsep=!, cookie ROUTEID=x.r2", params: []string{"stickysession=ROUTEID", "stickysessionsep=!"}, members: stickyRoutes123,
			reqs: []stickyReq{cookieReq("ROUTEID=x.r2", wantBalanced("b1", "", ""))}},
		// Not rows of the table, but its rules (§4.3, §3.5): no session at all,
		// and a value ending in the separator (a route, empty: no sticky member).
		t45("(§3.5) no cookie, no parameter", urlOnlyReq("/a", wantBalanced("b1", "", ""))),
		t45("(§4.3) cookie JSESSIONID=abc. (empty route)", cookieReq("JSESSIONID=abc.", wantBalanced("b1", emptyRoute, jsessCookie))),

		// §4.6
		{spec: "§4.6 r1 status=D redirect=r3, cookie .r1 → r3, ROUTE_CHANGED=1", params: []string{stickyJSess},
			members: []stickyMember{{"b1", "r1", "status=D redirect=r3"}, {"b2", "r2", ""}, {"b3", "r3", ""}},
			reqs: []stickyReq{
				cookieReq("JSESSIONID=.r1", wantBalanced("b3", "r1", jsessCookie)),
				// redirect is only for sticky requests (§4.4 DOC≠CODE): no cookie is
				// balanced; b2, as the sticky pick lowered b3's lbstatus (§3.1 step 4).
				urlOnlyReq("/a", wantBalanced("b2", "", "")),
			}},
		{spec: "§4.6 r1 status=N (drain), cookie .r1 → r1; requests without cookie never go to r1", params: []string{stickyJSess},
			members: []stickyMember{{"b1", "r1", "status=N"}, {"b2", "r2", ""}, {"b3", "r3", ""}},
			reqs: []stickyReq{
				cookieReq("JSESSIONID=.r1", wantSticky("b1", "r1", jsessCookie)),
				urlOnlyReq("/a", wantBalanced("!b1", "", "")),
				urlOnlyReq("/a", wantBalanced("!b1", "", "")),
				urlOnlyReq("/a", wantBalanced("!b1", "", "")),
				urlOnlyReq("/a", wantBalanced("!b1", "", "")),
				cookieReq("JSESSIONID=.r1", wantSticky("b1", "r1", jsessCookie)),
			}},
		{spec: "§4.6 rX on a standby and on a regular member, cookie .rX → the regular member", params: []string{stickyJSess},
			members: []stickyMember{{"b1", "r1", ""}, {"b2", "rX", "status=+H"}, {"b3", "rX", ""}},
			reqs:    []stickyReq{cookieReq("JSESSIONID=.rX", wantSticky("b3", "rX", jsessCookie))}},
	}
	// §4.6: r1 S / r2 D / r4 (config status=E) / r5 C; one fresh balancer per
	// cookie. The usable regular member b3 is the chooser's first candidate.
	sdec := []stickyMember{{"b1", "r1", "status=S"}, {"b2", "r2", "status=D"}, {"b3", "r3", ""}, {"b4", "r4", "status=E"}, {"b5", "r5", "status=C"}}
	for _, r := range []string{"r1", "r2", "r5"} {
		cs = append(cs, stickyCase{spec: "§4.6 r1 S / r2 D / r4 E / r5 C, cookie ." + r + " → balanced, ROUTE_CHANGED=1", params: []string{stickyJSess},
			members: sdec, reqs: []stickyReq{cookieReq("JSESSIONID=."+r, wantBalanced("b3", r, jsessCookie))}})
	}
	cs = append(cs,
		stickyCase{spec: "§4.6 r1 S / r2 D / r4 E / r5 C, cookie .r4 → r4 (E lifted because error_time=0)", params: []string{stickyJSess},
			members: sdec, reqs: []stickyReq{cookieReq("JSESSIONID=.r4", wantSticky("b4", "r4", jsessCookie))}},
		stickyCase{spec: "§4.6 nofailover=On, r2 dead (initially usable), cookie .r2 → 503, later 503 immediately", params: []string{stickyJSess, "nofailover=On"},
			members: []stickyMember{{"b1", "r1", ""}, {"dead", "r2", ""}, {"b3", "r3", ""}},
			reqs: []stickyReq{
				cookieReq("JSESSIONID=.r2", stickyWant{status: 503}),
				cookieReq("JSESSIONID=.r2", stickyWant{status: 503}),
				// A request without a route is still balanced (to a live member).
				urlOnlyReq("/a", wantBalanced("!dead", "", "")),
			}},
		stickyCase{spec: "§4.6 nofailover=On, cookie .r9 (no such route) → balanced normally", params: []string{stickyJSess, "nofailover=On"},
			members: stickyRoutes123, reqs: []stickyReq{cookieReq("JSESSIONID=.r9", wantBalanced("b1", "r9", jsessCookie))}},
		stickyCase{spec: "§4.6 nofailover=Off, r2 dead, cookie .r2 → failover to another member, ROUTE_CHANGED=1", params: []string{stickyJSess},
			members: []stickyMember{{"b1", "r1", ""}, {"dead", "r2", ""}, {"b3", "r3", ""}},
			reqs: []stickyReq{
				cookieReq("JSESSIONID=.r2", wantBalanced("!dead", "r2", jsessCookie)),
				cookieReq("JSESSIONID=.r2", wantBalanced("!dead", "r2", jsessCookie)),
			}},
	)
	return cs
}

// stickySetup is the rows with their member URLs resolved.
type stickySetup struct {
	cases    []stickyCase
	backends map[string]*backend
	urls     [][]string // [case][member] member URL
}

// newStickySetup starts the backends b1..b5 and gives every dead member a
// port of its own.
func newStickySetup(t testing.TB) *stickySetup {
	s := &stickySetup{cases: stickyCases(), backends: map[string]*backend{}}
	for _, b := range startBackends(t, 5) {
		s.backends[b.Name] = b
	}
	for _, c := range s.cases {
		var us []string
		for _, m := range c.members {
			if m.backend == "dead" {
				us = append(us, deadURL(t))
			} else {
				us = append(us, s.backends[m.backend].URL)
			}
		}
		s.urls = append(s.urls, us)
	}
	return s
}

func stickyCaseName(i int) string { return fmt.Sprintf("s%02d", i+1) }

// cookieName is the stickysession cookie of a case.
func (c stickyCase) cookieName() string {
	for _, p := range c.params {
		if v, ok := strings.CutPrefix(p, "stickysession="); ok {
			name, _, _ := strings.Cut(v, "|")
			return name
		}
	}
	return ""
}

// placeholderHeaders are the response headers that carry the balancer
// placeholders, each value in brackets so that white space survives.
var placeholderHeaders = []struct{ header, placeholder, env string }{
	{"X-Balancer-Name", "http.balancer.name", "BALANCER_NAME"},
	{"X-Worker-Name", "http.balancer.worker_name", "BALANCER_WORKER_NAME"},
	{"X-Worker-Route", "http.balancer.worker_route", "BALANCER_WORKER_ROUTE"},
	{"X-Route-Changed", "http.balancer.route_changed", "BALANCER_ROUTE_CHANGED"},
	{"X-Session-Sticky", "http.balancer.session_sticky", "BALANCER_SESSION_STICKY"},
	{"X-Session-Route", "http.balancer.session_route", "BALANCER_SESSION_ROUTE"},
}

// caddyfile renders the Caddy side: one balancer per row on /sNN.
func (s *stickySetup) caddyfile(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tauto_https off\n}\nhttp://:%d {\n\tbind 127.0.0.1\n", port)
	for i, c := range s.cases {
		n := stickyCaseName(i)
		fmt.Fprintf(&b, "\t# %s\n\thandle_path /%s/* {\n\t\tbalancer %s {\n", c.spec, n, n)
		for _, p := range c.params {
			k, v, _ := strings.Cut(p, "=")
			fmt.Fprintf(&b, "\t\t\t%s %s\n", k, v)
		}
		for j, m := range c.members {
			fmt.Fprintf(&b, "\t\t\tbalancer_member %s route=%s %s\n", s.urls[i][j], m.route, m.extra)
		}
		b.WriteString("\t\t\troute_cookie\n")
		for _, ph := range placeholderHeaders {
			fmt.Fprintf(&b, "\t\t\theader_down %s \"[{%s}]\"\n", ph.header, ph.placeholder)
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// httpdConf renders the httpd side, docs/behaviour.md §4.7's configuration for the cookie.
func (s *stickySetup) httpdConf() string {
	var b strings.Builder
	for _, ph := range placeholderHeaders {
		fmt.Fprintf(&b, "Header set %s \"[%%{%s}e]\"\n", ph.header, ph.env)
	}
	for i, c := range s.cases {
		n := stickyCaseName(i)
		fmt.Fprintf(&b, "# %s\n<Proxy \"balancer://%s\">\n", c.spec, n)
		for j, m := range c.members {
			fmt.Fprintf(&b, "    BalancerMember %q route=%s %s\n", s.urls[i][j], m.route, m.extra)
		}
		fmt.Fprintf(&b, "    ProxySet %s\n</Proxy>\n", strings.Join(c.params, " "))
		fmt.Fprintf(&b, "ProxyPass \"/%s\" \"balancer://%s\"\n", n, n)
		fmt.Fprintf(&b, "<Location \"/%s\">\n    Header add Set-Cookie \"%s=.%%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED\n</Location>\n", n, c.cookieName())
	}
	return b.String()
}

// stickyAnswer is the comparable part of an answer.
type stickyAnswer struct {
	Status  int
	Backend string
	// Vars holds the six placeholders in placeholderHeaders order; unsetVar
	// when not set.
	Vars      [6]string
	SetCookie string
}

const unsetVar = "(unset)"

func (a stickyAnswer) String() string {
	if a.Status != 200 {
		return fmt.Sprintf("status %d", a.Status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", a.Backend)
	for i, ph := range placeholderHeaders {
		fmt.Fprintf(&b, " %s=%q", ph.env[len("BALANCER_"):], a.Vars[i])
	}
	fmt.Fprintf(&b, " Set-Cookie=%q", a.SetCookie)
	return b.String()
}

// stickyAnswerOf reads an answer of either front end: a placeholder Caddy did not
// know stays "{http.balancer.…}", an environment variable httpd did not have
// is "(null)"; both mean not set.
func stickyAnswerOf(r result) stickyAnswer {
	a := stickyAnswer{Status: r.Status}
	if r.Status != 200 {
		return a
	}
	a.Backend = r.Backend
	for i, ph := range placeholderHeaders {
		vs := r.Header.Values(ph.header)
		v := unsetVar + "(missing header)"
		if len(vs) == 1 && strings.HasPrefix(vs[0], "[") && strings.HasSuffix(vs[0], "]") {
			v = vs[0][1 : len(vs[0])-1]
			if v == "(null)" || v == "{"+ph.placeholder+"}" {
				v = unsetVar
			}
		}
		a.Vars[i] = v
	}
	a.SetCookie = strings.Join(r.Header.Values("Set-Cookie"), " | ")
	return a
}

// expected is the answer docs/behaviour.md's table gives for request q of case ci.
// "!bN" backends are resolved against got (any backend but bN is accepted).
func (s *stickySetup) expected(ci int, q stickyReq, got stickyAnswer) stickyAnswer {
	c := s.cases[ci]
	w := q.want
	if w.status != 0 && w.status != 200 {
		return stickyAnswer{Status: w.status}
	}
	a := stickyAnswer{Status: 200, Backend: w.backend}
	if not, ok := strings.CutPrefix(w.backend, "!"); ok {
		a.Backend = "(any backend but " + not + ")"
		if got.Backend != "" && got.Backend != not {
			a.Backend = got.Backend
		}
	}
	workerName, workerRoute := "(no member on backend "+a.Backend+")", ""
	for j, m := range c.members {
		if m.backend == a.Backend {
			workerName, workerRoute = s.urls[ci][j], m.route
		}
	}
	route, via, changed := unsetVar, unsetVar, unsetVar
	switch w.route {
	case "":
	case emptyRoute:
		route, via = "", w.via
	default:
		route, via = w.route, w.via
	}
	if w.changed {
		changed = "1"
	}
	a.Vars = [6]string{"balancer://" + stickyCaseName(ci), workerName, workerRoute, changed, via, route}
	if w.changed {
		a.SetCookie = c.cookieName() + "=." + workerRoute + "; path=/"
	}
	return a
}

// run sends every row's requests to the front end at addr and returns
// the answers, [case][request].
func (s *stickySetup) run(t *testing.T, addr string) [][]stickyAnswer {
	out := make([][]stickyAnswer, len(s.cases))
	for i, c := range s.cases {
		for _, q := range c.reqs {
			out[i] = append(out[i], stickyAnswerOf(rawGet(t, addr, "/"+stickyCaseName(i)+q.target, q.headers...)))
		}
	}
	return out
}

// describe names request j of case i for messages.
func (s *stickySetup) describe(i, j int) string {
	c := s.cases[i]
	q := c.reqs[j]
	return fmt.Sprintf("%s [/%s: %s request %d: GET /%s%s %q]", c.spec, stickyCaseName(i), strings.Join(c.params, " "), j+1, stickyCaseName(i), q.target, q.headers)
}

// TestE2EStickyTables reproduces docs/behaviour.md §4.5 and §4.6 row by row through Caddy,
// with the placeholders and the route cookie (§4.7: set only when the route
// changed).
func TestE2EStickyTables(t *testing.T) {
	s := newStickySetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	got := s.run(t, fmt.Sprintf("127.0.0.1:%d", port))
	n := 0
	for i, c := range s.cases {
		for j, q := range c.reqs {
			want := s.expected(i, q, got[i][j])
			if got[i][j] != want {
				t.Errorf("%s\n got  %v\n want %v", s.describe(i, j), got[i][j], want)
			}
			n++
		}
	}
	t.Logf("%d requests over %d rows of docs/behaviour.md §4.5/§4.6", n, len(s.cases))
}

// TestE2ERouteCookie is docs/behaviour.md §4.7, the manual's "let httpd set the cookie"
// configuration: `Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e;
// path=/" env=BALANCER_ROUTE_CHANGED` with stickysession=ROUTEID is
// route_cookie. The answer carries `Set-Cookie: ROUTEID=.<route>; path=/` only
// while the client has no valid route; a client that keeps the cookie stays
// on its member.
func TestE2ERouteCookie(t *testing.T) {
	bs := startBackends(t, 2)
	dead := deadURL(t)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	route /attrs/* {
		balancer attrs {
			stickysession ROUTEID
			balancer_member %s route=1
			route_cookie "path=/app; HttpOnly"
		}
	}
	balancer mycluster {
		stickysession ROUTEID
		balancer_member %s route=1
		balancer_member %s route=2
		balancer_member %s route=3 status=D
		route_cookie
	}
}`, port, bs[0].URL, bs[0].URL, bs[1].URL, dead))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	check := func(what string, r result, backend, setCookie string) {
		t.Helper()
		sc := strings.Join(r.Header.Values("Set-Cookie"), " | ")
		if r.Status != 200 || r.Backend != backend || sc != setCookie {
			t.Errorf("%s: got %d from %q, Set-Cookie %q; want 200 from %q, Set-Cookie %q", what, r.Status, r.Backend, sc, backend, setCookie)
		}
	}
	// No cookie: balanced (b1 first), cookie for route 1.
	check("no cookie", get(t, base+"/"), "b1", "ROUTEID=.1; path=/")
	// The client sends the cookie back: same member, no new cookie.
	for i := 0; i < 3; i++ {
		check("cookie ROUTEID=.1", get(t, base+"/", "Cookie: ROUTEID=.1"), "b1", "")
	}
	check("cookie ROUTEID=.2", get(t, base+"/", "Cookie: ROUTEID=.2"), "b2", "")
	// A route nobody has, a member that is disabled, a value without the
	// separator: balanced, and the cookie names the new route.
	r := get(t, base+"/", "Cookie: ROUTEID=.9")
	check("cookie ROUTEID=.9", r, r.Backend, "ROUTEID=."+strings.TrimPrefix(r.Backend, "b")+"; path=/")
	r = get(t, base+"/", "Cookie: ROUTEID=.3")
	check("cookie ROUTEID=.3 (member disabled)", r, r.Backend, "ROUTEID=."+strings.TrimPrefix(r.Backend, "b")+"; path=/")
	if r.Backend != "b1" && r.Backend != "b2" {
		t.Errorf("cookie ROUTEID=.3: answered by %q", r.Backend)
	}
	r = get(t, base+"/", "Cookie: ROUTEID=2")
	check("cookie ROUTEID=2 (no separator, §4.3)", r, r.Backend, "ROUTEID=."+strings.TrimPrefix(r.Backend, "b")+"; path=/")
	// Attributes given to route_cookie follow the value.
	check("route_cookie attributes", get(t, base+"/attrs/x"), "b1", "ROUTEID=.1; path=/app; HttpOnly")
	check("route_cookie attributes, valid cookie", get(t, base+"/attrs/x", "Cookie: ROUTEID=.1"), "b1", "")
}
