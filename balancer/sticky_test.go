package balancer

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stickyTableConfig is the balancer of §4.5: balancer://st with members routes r1/r2/r3,
// stickysession=JSESSIONID|jsessionid, default separator '.'.
func stickyTableConfig(t *testing.T) Config {
	cfg := Config{Name: "st", StickySession: "JSESSIONID", StickyPath: "jsessionid", StickySeparator: '.', ForceRecovery: true}
	for _, r := range words("r1 r2 r3") {
		m := cfgMember(t, "m"+r[1:], "")
		m.Route = r
		cfg.Members = append(cfg.Members, m)
	}
	return cfg
}

// stickyBalancerURL is what the glue hands the engine for a request to /st/...
// proxied by `ProxyPass /st balancer://st`: "balancer://st" + the %-decoded
// mapped path + "?" + the raw query; with nocanon the raw path.
func stickyBalancerURL(t *testing.T, reqURI string, nocanon bool) string {
	t.Helper()
	path, query, hasQuery := strings.Cut(reqURI, "?")
	path = strings.TrimPrefix(path, "/st")
	if !nocanon {
		p, err := url.PathUnescape(path)
		if err != nil {
			t.Fatalf("unescape %q: %v", path, err)
		}
		path = p
	}
	u := "balancer://st" + path
	if hasQuery {
		u += "?" + query
	}
	return u
}

// §4.5: the observed route extraction table. chosen is the route of the member
// the request goes to, or "" when it is balanced (on a fresh balancer that is
// the first member, r1, with ROUTE_CHANGED). route is BALANCER_SESSION_ROUTE
// ("-" for none). value is what PathParam/CookieParam extract (sticky from
// the URL when fromURL), "-" for nothing.
func TestRouteExtractionTable(t *testing.T) {
	type row struct {
		name    string
		uri     string // request URI, default /st/a
		nocanon bool
		cookie  string
		setup   func(*Config)
		value   string
		fromURL bool
		chosen  string
		route   string
	}
	scolon := func(c *Config) { c.SColonPathDelim = true }
	routeid := func(sep byte) func(*Config) {
		return func(c *Config) { c.StickySession, c.StickyPath, c.StickySeparator = "ROUTEID", "ROUTEID", sep }
	}
	rows := []row{
		{name: "cookie abc.r2", cookie: "JSESSIONID=abc.r2", value: "abc.r2", chosen: "r2", route: "r2"},
		{name: "cookie abc.r2.x", cookie: "JSESSIONID=abc.r2.x", value: "abc.r2.x", route: "r2.x"},
		{name: "cookie without dot", cookie: "JSESSIONID=abc", value: "abc", route: "-"},
		{name: "cookie r3", cookie: "JSESSIONID=r3", value: "r3", route: "-"},
		{name: "cookie .r3", cookie: "JSESSIONID=.r3", value: ".r3", chosen: "r3", route: "r3"},
		{name: "cookie with spaces", cookie: "x=1; JSESSIONID = abc.r3", value: " abc.r3", chosen: "r3", route: "r3"},
		{name: "cookie name suffix", cookie: "xJSESSIONID=abc.r3", value: "-", route: "-"},
		{name: "cookie wrong case", cookie: "jsessionid=abc.r3", value: "-", route: "-"},
		{name: "cookie quoted", cookie: `JSESSIONID="x.r2"`, value: `"x.r2"`, route: `r2"`},
		{name: "cookie trailing space", cookie: "JSESSIONID=x.r2 ; b=1", value: "x.r2 ", route: "r2 "},
		{name: "two Cookie headers", cookie: "a=1, JSESSIONID=x.r3", value: "x.r3", chosen: "r3", route: "r3"},
		{name: "comma-joined cookie", cookie: "a=1, JSESSIONID=x.r2", value: "x.r2", chosen: "r2", route: "r2"},
		{name: "path param", uri: "/st/a;jsessionid=abc.r3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "path param ;foo", uri: "/st/a;jsessionid=abc.r3;foo=bar", fromURL: true, value: "abc.r3;foo=bar", route: "r3;foo=bar"},
		{name: "path param ;foo scolonpathdelim", uri: "/st/a;jsessionid=abc.r3;foo=bar", setup: scolon, fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "query", uri: "/st/a?jsessionid=abc.r3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "query middle", uri: "/st/a?x=1&jsessionid=abc.r3&y=2", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "query ;x", uri: "/st/a?jsessionid=abc.r3;x", fromURL: true, value: "abc.r3;x", route: "r3;x"},
		{name: "query substring", uri: "/st/a?foo=xjsessionid=abc.r3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "path substring", uri: "/st/ajsessionid=abc.r3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "query %2E not decoded", uri: "/st/a?jsessionid=abc%2Er3", fromURL: true, value: "abc%2Er3", route: "-"},
		{name: "path %2E decoded", uri: "/st/a;jsessionid=abc%2Er3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "path %3B decoded", uri: "/st/a%3Bjsessionid=abc.r3", fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "path %2E nocanon", uri: "/st/a;jsessionid=abc%2Er3", nocanon: true, fromURL: true, value: "abc%2Er3", route: "-"},
		{name: "path %3B nocanon", uri: "/st/a%3Bjsessionid=abc.r3", nocanon: true, fromURL: true, value: "abc.r3", chosen: "r3", route: "r3"},
		{name: "query empty value", uri: "/st/a?jsessionid=", value: "-", route: "-"},
		{name: "query empty then value", uri: "/st/a?jsessionid=&jsessionid=x.r3", fromURL: true, value: "jsessionid=x.r3", chosen: "r3", route: "r3"},
		{name: "path before query", uri: "/st/a;jsessionid=abc.r2?jsessionid=abc.r3", fromURL: true, value: "abc.r2", chosen: "r2", route: "r2"},
		{name: "URL wins over cookie", uri: "/st/a;jsessionid=x.r2", cookie: "JSESSIONID=x.r3", fromURL: true, value: "x.r2", chosen: "r2", route: "r2"},
		{name: "sep Off ROUTEID=r2", cookie: "ROUTEID=r2", setup: routeid(0), value: "r2", chosen: "r2", route: "r2"},
		{name: "sep Off ROUTEID=x.r2", cookie: "ROUTEID=x.r2", setup: routeid(0), value: "x.r2", route: "x.r2"},
		{name: "sep ! ROUTEID=x!r2", cookie: "ROUTEID=x!r2", setup: routeid('!'), value: "x!r2", chosen: "r2", route: "r2"},
		{name: "sep ! ROUTEID=x.r2", cookie: "ROUTEID=x.r2", setup: routeid('!'), value: "x.r2", route: "-"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			cfg := stickyTableConfig(t)
			if r.setup != nil {
				r.setup(&cfg)
			}
			uri := r.uri
			if uri == "" {
				uri = "/st/a"
			}
			req := &Request{URL: stickyBalancerURL(t, uri, r.nocanon), Cookie: r.cookie}

			// The extraction functions.
			v, found := PathParam(req.URL, cfg.StickyPath, cfg.SColonPathDelim)
			if !found {
				v, found = CookieParam(req.Cookie, cfg.StickySession)
				if found && r.fromURL {
					t.Errorf("value came from the cookie, want the URL")
				}
			} else if !r.fromURL {
				t.Errorf("value came from the URL %q, want the cookie", req.URL)
			}
			gotValue := "-"
			if found {
				gotValue = v
			}
			if gotValue != r.value {
				t.Errorf("session value %q, want %q (URL %q, Cookie %q)", gotValue, r.value, req.URL, req.Cookie)
			}
			gotRoute := "-"
			if found {
				if rt, ok := RouteFromValue(v, cfg.StickySeparator); ok {
					gotRoute = rt
				}
			}
			if gotRoute != r.route {
				t.Errorf("RouteFromValue: route %q, want %q", gotRoute, r.route)
			}

			// The selection and the BALANCER_* values.
			b := newTestBalancer(t, cfg, nil)
			p, err := b.Pick(context.Background(), req)
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			defer p.Member.Release()
			chosen := r.chosen
			if chosen == "" {
				chosen = "r1" // balanced on a fresh balancer: the first member
			}
			if got := stateOf(t, b, memberLabel(p.Member)).Route; got != chosen {
				t.Errorf("chosen member route %q, want %q", got, chosen)
			}
			if p.RouteChanged != (r.chosen == "") {
				t.Errorf("RouteChanged = %v, want %v", p.RouteChanged, r.chosen == "")
			}
			if r.route == "-" {
				if p.HasRoute || p.Route != "" || p.StickyName != "" {
					t.Errorf("session route %v %q sticky %q, want none", p.HasRoute, p.Route, p.StickyName)
				}
			} else {
				wantName := cfg.StickySession
				if r.fromURL {
					wantName = cfg.StickyPath
				}
				if !p.HasRoute || p.Route != r.route || p.StickyName != wantName {
					t.Errorf("session route %v %q sticky %q, want %q %q", p.HasRoute, p.Route, p.StickyName, r.route, wantName)
				}
			}
		})
	}
}

// cookieReq is a request carrying cookie JSESSIONID=.<route>.
func cookieReq(route string) *Request {
	return &Request{URL: "balancer://st/a", Cookie: "JSESSIONID=." + route}
}

var noCookieReq = &Request{URL: "balancer://st/a"}

func routedConfig(t *testing.T, members ...string) Config {
	cfg := Config{Name: "st", StickySession: "JSESSIONID", StickyPath: "jsessionid", StickySeparator: '.', ForceRecovery: true}
	for _, m := range members {
		// "route[:status[:redirect]]"
		parts := strings.Split(m, ":")
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		mc := cfgMember(t, parts[0], parts[1])
		mc.Route = parts[0]
		mc.Redirect = parts[2]
		cfg.Members = append(cfg.Members, mc)
	}
	return cfg
}

func pickOne(t *testing.T, b *Balancer, req *Request) (Pick, string) {
	t.Helper()
	p, err := b.Pick(context.Background(), req)
	if err != nil {
		t.Fatalf("Pick(%q): %v", req.Cookie, err)
	}
	p.Member.Release()
	return p, memberLabel(p.Member)
}

// §4.6 r1 status=D redirect=r3, cookie .r1 → r3 with ROUTE_CHANGED; requests
// without a route are balanced normally (not sent to the redirect).
func TestStickyRedirect(t *testing.T) {
	b := newTestBalancer(t, routedConfig(t, "r1:D:r3", "r2", "r3"), nil)
	wantSeq(t, "no cookie", pickN(t, b, 4, noCookieReq), words("r2 r3 r2 r3"))
	p, got := pickOne(t, b, cookieReq("r1"))
	if got != "r3" || !p.RouteChanged || p.Route != "r1" {
		t.Errorf("cookie .r1: %s changed=%v route %q, want r3 true r1", got, p.RouteChanged, p.Route)
	}

	// The redirect target is unusable too: balanced.
	b = newTestBalancer(t, routedConfig(t, "r1:D:r2", "r2:D", "r3"), nil)
	p, got = pickOne(t, b, cookieReq("r1"))
	if got != "r3" || !p.RouteChanged {
		t.Errorf("redirect to an unusable member: %s changed=%v, want r3 (balanced) true", got, p.RouteChanged)
	}
}

// §4.6 r1 drain: cookie .r1 → r1; requests without a cookie never go to r1.
func TestStickyDrain(t *testing.T) {
	b := newTestBalancer(t, routedConfig(t, "r1:N", "r2", "r3"), nil)
	wantSeq(t, "no cookie", pickN(t, b, 4, noCookieReq), words("r2 r3 r2 r3"))
	p, got := pickOne(t, b, cookieReq("r1"))
	if got != "r1" || p.RouteChanged {
		t.Errorf("cookie .r1: %s changed=%v, want r1 false", got, p.RouteChanged)
	}
	if n := countOf(pickN(t, b, 10, noCookieReq), "r1"); n != 0 {
		t.Errorf("draining member got %d requests without a cookie", n)
	}
}

// §4.6: a route on a standby and on a regular member → the regular member
// (standbys are the second pass), even when the standby comes first; the
// standby gets it when the regular member is unusable.
func TestStickyStandbyRoute(t *testing.T) {
	cfg := routedConfig(t, "rx:H", "rx", "r3")
	cfg.Members[0].URL, cfg.Members[1].URL = "http://sb", "http://reg"
	b := newTestBalancer(t, cfg, nil)
	if _, got := pickOne(t, b, cookieReq("rx")); got != "reg" {
		t.Errorf("cookie .rx: %s, want reg", got)
	}
	cfg.Members[1].Status = Disabled
	b = newTestBalancer(t, cfg, nil)
	if p, got := pickOne(t, b, cookieReq("rx")); got != "sb" || p.RouteChanged {
		t.Errorf("cookie .rx, regular disabled: %s changed=%v, want sb false", got, p.RouteChanged)
	}
}

// §4.4: lbset and spare status are ignored by the route lookup.
func TestStickyRouteIgnoresSetsAndSpares(t *testing.T) {
	cfg := routedConfig(t, "r1", "r2:R", "r3")
	cfg.Members[2].LBSet = 1
	b := newTestBalancer(t, cfg, nil)
	if _, got := pickOne(t, b, cookieReq("r2")); got != "r2" {
		t.Errorf("route of a hot spare: %s, want r2", got)
	}
	if _, got := pickOne(t, b, cookieReq("r3")); got != "r3" {
		t.Errorf("route in lbset 1: %s, want r3", got)
	}
}

// §4.6: r1 S, r2 D, r4 status=E, r5 C. Cookies .r1 .r2 .r5 are balanced with
// ROUTE_CHANGED; .r4 goes to r4 because its E (error_time 0) is lifted.
func TestStickyUnusableRoutes(t *testing.T) {
	members := []string{"r1:S", "r2:D", "r3", "r4:E", "r5:C"}
	for _, r := range words("r1 r2 r5") {
		b := newTestBalancer(t, routedConfig(t, members...), nil)
		p, got := pickOne(t, b, cookieReq(r))
		// Balanced: r3 and r4 (E lifted when the chooser examines it) tie, r3 first.
		if got != "r3" || !p.RouteChanged || p.Route != r {
			t.Errorf("cookie .%s: %s changed=%v route %q, want r3 (balanced) true %s", r, got, p.RouteChanged, p.Route, r)
		}
	}
	b := newTestBalancer(t, routedConfig(t, members...), nil)
	wantStatusString(t, b, "r4", "Init Err ")
	p, got := pickOne(t, b, cookieReq("r4"))
	if got != "r4" || p.RouteChanged {
		t.Errorf("cookie .r4: %s changed=%v, want r4 false", got, p.RouteChanged)
	}
	wantStatusString(t, b, "r4", "Init Ok ")
	if r := stateOf(t, b, "r4").Retries; r != 1 {
		t.Errorf("r4 retries %d, want 1", r)
	}
}

// §4.6 nofailover=On, r2 dead: the first request connects to r2, fails, and the
// retry's sticky step answers 503; later requests get 503 immediately. An
// unknown route is balanced normally.
func TestStickyNoFailover(t *testing.T) {
	cfg := routedConfig(t, "r1", "r2", "r3")
	cfg.NoFailover = true
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, cfg, clk)
	dead := map[string]bool{"r2": true}
	tries, p, err := simRequest(t, b, cookieReq("r2"), dead)
	wantSeq(t, "first request", tries, words("r2"))
	if !errors.Is(err, ErrNoFailover) {
		t.Errorf("first request: err %v, want ErrNoFailover", err)
	}
	if !p.HasRoute || p.Route != "r2" || p.StickyName != "JSESSIONID" {
		t.Errorf("first request: route %v %q %q, want r2 JSESSIONID", p.HasRoute, p.Route, p.StickyName)
	}
	wantStatusString(t, b, "r2", "Init Err ")
	tries, _, err = simRequest(t, b, cookieReq("r2"), dead)
	if len(tries) != 0 || !errors.Is(err, ErrNoFailover) {
		t.Errorf("second request: attempts %v err %v, want none, ErrNoFailover", tries, err)
	}
	if e := stateOf(t, b, "r2").Elected; e != 1 {
		t.Errorf("r2 elected %d, want 1", e)
	}
	// Requests without a cookie, or with an unknown route, are balanced.
	if _, _, err := simRequest(t, b, noCookieReq, dead); err != nil {
		t.Errorf("no cookie: %v", err)
	}
	b = newTestBalancer(t, cfg, clk)
	p, got := pickOne(t, b, cookieReq("r9"))
	if got != "r1" || !p.RouteChanged || p.Route != "r9" {
		t.Errorf("cookie .r9: %s changed=%v route %q, want r1 (balanced) true r9", got, p.RouteChanged, p.Route)
	}
	// nofailover also answers 503 for a member that is merely disabled.
	cfg.Members[1].Status = Disabled
	b = newTestBalancer(t, cfg, clk)
	if _, err := b.Pick(context.Background(), cookieReq("r2")); !errors.Is(err, ErrNoFailover) {
		t.Errorf("cookie .r2 on a disabled member: %v, want ErrNoFailover", err)
	}
}

// §4.6 nofailover=Off, r2 dead: failover to another member with ROUTE_CHANGED.
func TestStickyFailover(t *testing.T) {
	clk := &testClock{t: testEpoch, step: time.Millisecond}
	b := newTestBalancer(t, routedConfig(t, "r1", "r2", "r3"), clk)
	tries, p, err := simRequest(t, b, cookieReq("r2"), map[string]bool{"r2": true})
	if err != nil || len(tries) != 2 || tries[0] != "r2" || tries[1] == "r2" {
		t.Fatalf("attempts %v err %v, want r2 then another member", tries, err)
	}
	if !p.RouteChanged || p.Route != "r2" {
		t.Errorf("failover pick: changed=%v route %q, want true r2", p.RouteChanged, p.Route)
	}
	// The next sticky request is balanced as well, while r2 is in error.
	p, got := pickOne(t, b, cookieReq("r2"))
	if got == "r2" || !p.RouteChanged {
		t.Errorf("next request: %s changed=%v, want another member, true", got, p.RouteChanged)
	}
}

// §3.1 step 4: a sticky hit adds every usable member's lbfactor to its lbstatus
// (all sets) and takes the total off the sticky member, which shifts the later
// round-robin order.
func TestStickyScoreUpdate(t *testing.T) {
	// Two members: after "a, sticky a" the order is b b a (it would be b a b
	// without the update).
	b := newTestBalancer(t, routedConfig(t, "a", "b"), nil)
	wantSeq(t, "first", pickN(t, b, 1, noCookieReq), words("a"))
	wantLBStatus(t, b, "after a", words("a b"), []int64{-100, 100})
	if _, got := pickOne(t, b, cookieReq("a")); got != "a" {
		t.Fatalf("sticky: %s, want a", got)
	}
	wantLBStatus(t, b, "after sticky a", words("a b"), []int64{-200, 200})
	if e := stateOf(t, b, "a").Elected; e != 2 {
		t.Errorf("a elected %d, want 2 (sticky hits count)", e)
	}
	wantSeq(t, "after sticky", pickN(t, b, 3, noCookieReq), words("b b a"))

	// Usable members of every lbset take part (c in set 1), unusable ones do
	// not (d): total 300, so a drops to -300 and b wins three times.
	cfg := routedConfig(t, "a", "b", "c", "d:D")
	cfg.Members[2].LBSet = 1
	b = newTestBalancer(t, cfg, nil)
	wantSeq(t, "first", pickN(t, b, 1, noCookieReq), words("a"))
	wantLBStatus(t, b, "after a", words("a b c d"), []int64{-100, 100, 0, 0})
	if _, got := pickOne(t, b, cookieReq("a")); got != "a" {
		t.Fatalf("sticky: %s, want a", got)
	}
	wantLBStatus(t, b, "after sticky a", words("a b c d"), []int64{-300, 200, 100, 0})
	wantSeq(t, "after sticky", pickN(t, b, 4, noCookieReq), words("b b b a"))
	wantLBStatus(t, b, "end", words("c d"), []int64{100, 0})
}

// Without stickysession nothing is looked up and ROUTE_CHANGED is never set.
func TestNoStickyConfigured(t *testing.T) {
	cfg := routedConfig(t, "r1", "r2")
	cfg.StickySession, cfg.StickyPath = "", ""
	b := newTestBalancer(t, cfg, nil)
	p, got := pickOne(t, b, &Request{URL: "balancer://st/a;jsessionid=x.r2", Cookie: "JSESSIONID=x.r2"})
	if got != "r1" || p.RouteChanged || p.HasRoute {
		t.Errorf("%s changed=%v hasRoute=%v, want r1 false false", got, p.RouteChanged, p.HasRoute)
	}
}

// §4.2 cookie rules beyond the observed table: the name must start the header
// or follow ';', ',' or white space; white space before '=' is skipped; the
// value needs at least one character and runs to the first ';' or ','.
func TestCookieParamRules(t *testing.T) {
	cases := []struct{ header, want string }{
		{"a=1,JSESSIONID=x.r2", "x.r2"},
		{"a=1;JSESSIONID=x.r2", "x.r2"},
		{"a=1\tJSESSIONID=x.r2", "x.r2"},
		{"JSESSIONID=x.r2, a=1", "x.r2"},
		{"JSESSIONID=x.r2;a=1", "x.r2"},
		{"JSESSIONID =  v.r1", "  v.r1"},
		{"xJSESSIONID=1.r3; JSESSIONID=y.r1", "y.r1"},
		{"JSESSIONIDx=1.r3; JSESSIONID=a.r1", "a.r1"},
		{"JSESSIONID=;a", ""},
		{"JSESSIONID=", "-"},
		{"JSESSIONID", "-"},
		{"a=JSESSIONID=x.r1", "-"},
		{"", "-"},
	}
	for _, c := range cases {
		v, ok := CookieParam(c.header, "JSESSIONID")
		got := "-"
		if ok {
			got = v
		}
		if got != c.want {
			t.Errorf("CookieParam(%q) = %q, want %q", c.header, got, c.want)
		}
	}
}

// §4.2 URL rules beyond the observed table: plain substring search, the first
// occurrence followed by '=' and a character wins, tokenizer semantics.
func TestPathParamRules(t *testing.T) {
	cases := []struct {
		url    string
		scolon bool
		want   string
	}{
		{"balancer://st/a?xjsessionid=1.r1", false, "1.r1"},
		{"balancer://st/a?jsessionidx=1&jsessionid=b.r2", false, "b.r2"},
		{"balancer://st/a?jsessionid=&&", false, "-"},
		{"balancer://st/a?jsessionid=;;a.r1;b", true, "a.r1"},
		{"balancer://st/a?jsessionid=;;a.r1;b", false, ";;a.r1;b"},
		{"balancer://st/a?jsessionid=a.r1?b", false, "a.r1"},
		{"balancer://st/a?JSESSIONID=a.r1", false, "-"},
		{"balancer://st/a", false, "-"},
	}
	for _, c := range cases {
		v, ok := PathParam(c.url, "jsessionid", c.scolon)
		got := "-"
		if ok {
			got = v
		}
		if got != c.want {
			t.Errorf("PathParam(%q, scolon=%v) = %q, want %q", c.url, c.scolon, got, c.want)
		}
	}
	// An empty route after the separator is a route string (BALANCER_SESSION_ROUTE
	// set) that matches no member.
	if r, ok := RouteFromValue("abc.", '.'); !ok || r != "" {
		t.Errorf("RouteFromValue(abc.) = %q, %v; want empty route", r, ok)
	}
}

// §4.3: a value ending with the separator gives an empty route: no sticky
// member, but BALANCER_SESSION_STICKY/ROUTE are set (route empty).
func TestEmptyRoute(t *testing.T) {
	b := newTestBalancer(t, stickyTableConfig(t), nil)
	p, got := pickOne(t, b, &Request{URL: "balancer://st/a", Cookie: "JSESSIONID=abc."})
	if got != "m1" || !p.RouteChanged || !p.HasRoute || p.Route != "" || p.StickyName != "JSESSIONID" {
		t.Errorf("%s changed=%v route %v %q sticky %q, want m1 true true \"\" JSESSIONID", got, p.RouteChanged, p.HasRoute, p.Route, p.StickyName)
	}
}

// §4.4: redirects are followed recursively (depth below the member count), so a
// chain works and a cycle ends in normal balancing.
func TestStickyRedirectChainAndCycle(t *testing.T) {
	b := newTestBalancer(t, routedConfig(t, "r1:D:r2", "r2:D:r3", "r3", "r4"), nil)
	if p, got := pickOne(t, b, cookieReq("r1")); got != "r3" || !p.RouteChanged {
		t.Errorf("chain r1→r2→r3: %s changed=%v, want r3 true", got, p.RouteChanged)
	}
	b = newTestBalancer(t, routedConfig(t, "r1:D:r2", "r2:D:r1", "r3", "r4"), nil)
	if p, got := pickOne(t, b, cookieReq("r1")); got != "r3" || !p.RouteChanged {
		t.Errorf("cycle r1↔r2: %s changed=%v, want r3 (balanced) true", got, p.RouteChanged)
	}
}
