package caddybalancer

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// This file reproduces docs/behaviour.md §9.2 (ProxyPassReverse URL mapping), §9.3
// (ProxyPassReverseCookiePath/Domain), the httpd-tests pr45434 case (§11.2)
// and §3.2 (which path reaches a member, https members) through a real Caddy
// loaded from a Caddyfile, in front of real backends that answer with the
// header values the test asks for. Expected values come from docs/behaviour.md.
// TestOracleReverse sends the same requests to real httpd.
//
// Layout, as docs/behaviour.md's observation (§9.2): members A and B are
// `http://127.0.0.1:A/app` and `…:B/app` in balancer rv, and the same hosts
// without a path in rv2:
//
//	ProxyPass /front balancer://rv/sub    ProxyPassReverse /front balancer://rv/sub
//	ProxyPass /f2/   balancer://rv2/      ProxyPassReverse /f2/   balancer://rv2/
//
// Here each rule sits in the <Location> of its ProxyPass on httpd, so it
// applies to that ProxyPass's requests only, and in that balancer block on
// Caddy; each row is sent through the balancer whose rule matches it.
// TestE2EReverseRuleScope and TestOracleReverseServerRules run docs/behaviour.md's
// observation itself: the rules at server level, which httpd tries for every
// response whichever ProxyPass served it, listed in every balancer block on
// Caddy.

// replyHeaders are the headers a reply backend sets to the value of the
// request's X-Reply header: the four httpd rewrites (§9.1) and two it does not.
var replyHeaders = []string{"Location", "Content-Location", "URI", "Destination", "Refresh", "Link"}

// mappedHeaders are the ones ProxyPassReverse rewrites (§9.1).
var mappedHeaders = replyHeaders[:4]

// replyBackend answers with X-Backend: name, X-Seen-Host: the Host header it
// got, the body "<name> <METHOD> <request URI>", the headers of replyHeaders
// set to X-Reply (with {self} and {other} replaced by the backends'
// host:port), and a Set-Cookie for each of X-Reply-Set-Cookie-1 and -2.
func replyBackend(t testing.TB, name string) *backend { return namedBackend(t, name, nil) }

// setReply installs the reply handler; self and other are host:port.
func setReply(b *backend, self, other string) {
	rep := strings.NewReplacer("{self}", self, "{other}", other)
	b.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Reply"); v != "" {
			v = rep.Replace(v)
			for _, h := range replyHeaders {
				w.Header()[h] = []string{v}
			}
		}
		for _, h := range []string{"X-Reply-Set-Cookie-1", "X-Reply-Set-Cookie-2"} {
			if v := r.Header.Get(h); v != "" {
				w.Header().Add("Set-Cookie", v)
			}
		}
		w.Header().Set("X-Seen-Host", r.Host)
		fmt.Fprintf(w, "%s %s %s", b.Name, r.Method, r.URL.RequestURI())
	})
}

// reverseSetup is the backends of this file's tests.
type reverseSetup struct {
	a, b, d *backend // rv/rv2 members A and B; D for the "/" rule
	c       string   // host:port of no member
}

func newReverseSetup(t testing.TB) *reverseSetup {
	s := &reverseSetup{a: replyBackend(t, "A"), b: replyBackend(t, "B"), d: replyBackend(t, "D")}
	s.c = strings.TrimPrefix(deadURL(t), "http://")
	setReply(s.a, s.hp(s.a), s.hp(s.b))
	setReply(s.b, s.hp(s.b), s.hp(s.a))
	setReply(s.d, s.hp(s.d), s.hp(s.d))
	return s
}

func (s *reverseSetup) hp(b *backend) string { return strings.TrimPrefix(b.URL, "http://") }

// caddyfile is the Caddy side. port is the front end's; the pr45434 member
// is the front end itself, as in httpd-tests.
func (s *reverseSetup) caddyfile(port int) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://:%[1]d {
	bind 127.0.0.1
	# ProxyPass /front balancer://rv/sub + ProxyPassReverse /front balancer://rv/sub
	handle_path /front/* {
		rewrite * /sub{uri}
		balancer rv {
			balancer_member %[2]s/app
			balancer_member %[3]s/app
			proxy_pass_reverse /front /sub
		}
	}
	# ProxyPass /f2/ balancer://rv2/ + ProxyPassReverse /f2/ balancer://rv2/
	handle_path /f2/* {
		balancer rv2 {
			balancer_member %[2]s
			balancer_member %[3]s
			proxy_pass_reverse /f2/ /
		}
	}
	# ProxyPass /r balancer://rt + ProxyPassReverse / balancer://rt/
	handle_path /r/* {
		balancer rt {
			balancer_member %[4]s
			proxy_pass_reverse
		}
	}
	# ProxyPass /p balancer://pp, member with a path, no rewriting rule
	handle_path /p/* {
		balancer pp {
			balancer_member %[2]s/app
		}
	}
	handle_path /ck/* {
		balancer ck {
			balancer_member %[2]s
			proxy_pass_reverse_cookie_path /app/sub /front
			proxy_pass_reverse_cookie_domain backend.internal public.example.com
		}
	}
	handle_path /lk/* {
		balancer ck2 {
			balancer_member %[3]s
			proxy_pass_reverse_cookie_domain local remote
			proxy_pass_reverse_cookie_path /local /remote
		}
	}
	# httpd-tests pr45434: ProxyPass /pr45434 balancer://pr45434/alias,
	# ProxyPassReverse /pr45434 balancer://pr45434/alias, the member is
	# http://HOST:PORT/modules (this server).
	handle_path /pr45434/* {
		rewrite * /alias{uri}
		balancer pr45434 {
			balancer_member http://127.0.0.1:%[1]d/modules
			proxy_pass_reverse /pr45434 /alias
		}
	}
	redir /modules/alias/redirect-me http://127.0.0.1:%[1]d/modules/alias/5.html permanent
}
`, port, s.a.URL, s.b.URL, s.d.URL)
}

// httpdConf is the same on httpd. The reverse rules sit in the <Location> of
// their ProxyPass, so that, as in Caddy, each applies to its own balancer's
// requests; the "/" rule of rt and pr45434's are server-wide, as in
// httpd-tests (their members are nobody else's).
func (s *reverseSetup) httpdConf() string {
	return fmt.Sprintf(`
<Proxy "balancer://rv">
    BalancerMember "%[1]s/app"
    BalancerMember "%[2]s/app"
</Proxy>
<Proxy "balancer://rv2">
    BalancerMember "%[1]s"
    BalancerMember "%[2]s"
</Proxy>
<Proxy "balancer://rt">
    BalancerMember "%[3]s"
</Proxy>
<Proxy "balancer://pp">
    BalancerMember "%[1]s/app"
</Proxy>
<Proxy "balancer://ck">
    BalancerMember "%[1]s"
</Proxy>
<Proxy "balancer://ck2">
    BalancerMember "%[2]s"
</Proxy>
<Proxy "balancer://pr45434">
    BalancerMember "http://127.0.0.1:{{PORT}}/modules"
</Proxy>
ProxyPass "/front" "balancer://rv/sub"
ProxyPass "/f2/" "balancer://rv2/"
ProxyPass "/r" "balancer://rt"
ProxyPass "/p" "balancer://pp"
ProxyPass "/lk" "balancer://ck2"
ProxyPass "/ck" "balancer://ck"
ProxyPass "/pr45434" "balancer://pr45434/alias"
ProxyPassReverse "/" "balancer://rt/"
ProxyPassReverse "/pr45434" "balancer://pr45434/alias"
<Location "/front">
    ProxyPassReverse "balancer://rv/sub"
</Location>
<Location "/f2/">
    ProxyPassReverse "balancer://rv2/"
</Location>
<Location "/ck">
    ProxyPassReverseCookiePath "/app/sub" "/front"
    ProxyPassReverseCookieDomain "backend.internal" "public.example.com"
</Location>
<Location "/lk">
    ProxyPassReverseCookieDomain "local" "remote"
    ProxyPassReverseCookiePath "/local" "/remote"
</Location>
Redirect permanent "/modules/alias/redirect-me" "http://127.0.0.1:{{PORT}}/modules/alias/5.html"
`, s.a.URL, s.b.URL, s.d.URL)
}

// reverseRow is one URL-mapping case: a request path and Host, the value the
// member answers with, and what the client must see in the four mapped
// headers.
type reverseRow struct {
	spec  string
	path  string // request target at the front end
	host  string // Host header; "" is the front end's address
	value string // {A}, {B}, {C}: host:port of A, B, no member; {other}: the member that did not answer
	want  string // {FRONT}: the front end's address; "=" the value unchanged
}

// reverseRows are docs/behaviour.md §9.2's table (each row sent through the balancer whose
// rule matches it in httpd) and cases of its rules.
var reverseRows = []reverseRow{
	{"§9.2 row 1: other member's URL with PART (request served by the other)", "/front/t1", "", "http://{other}/app/sub/target?q=1", "http://{FRONT}/front/target?q=1"},
	{"§9.2 row 2: member URL without PART, 2nd rule (note //)", "/f2/t2", "", "http://{A}/app/other", "http://{FRONT}/f2//app/other"},
	{"§9.2 row 3: PART is case-sensitive, 2nd rule maps it", "/f2/t3", "", "HTTP://{A}/app/SUB/target", "http://{FRONT}/f2//app/SUB/target"},
	{"§9.2 row 4: relative value never matches a balancer rule (rule rv)", "/front/t4", "", "/app/sub/target", "="},
	{"§9.2 row 4: relative value never matches a balancer rule (rule rv2)", "/f2/t4", "", "/app/sub/target", "="},
	{"§9.2 row 5: via the /f2/ rule", "/f2/t5", "", "http://{A}/x/y", "http://{FRONT}/f2//x/y"},
	{"§9.2 row 6: not a member", "/f2/t6", "", "http://{C}/x/y", "="},
	{"§9.2 row 7: member without path", "/f2/t7", "", "http://{A}", "http://{FRONT}/f2/"},
	{"§9.2 row 8: row 5 with Host: www.example.org", "/f2/t8", "www.example.org", "http://{A}/x/y", "http://www.example.org/f2//x/y"},
	// The rules of §9.2 on more values.
	{"§9.2 Host with a port is kept", "/f2/h1", "www.example.org:8080", "http://{A}/x/y", "http://www.example.org:8080/f2//x/y"},
	{"§9.2 Host with the default port: port omitted", "/f2/h2", "www.example.org:80", "http://{A}/x/y", "http://www.example.org/f2//x/y"},
	{"§9.2 member name matched case-insensitively, PART case-sensitively", "/front/c1", "", "HTTP://{A}/app/sub/target", "http://{FRONT}/front/target"},
	{"§9.2 only rv's rule: PART is case-sensitive, no match", "/front/c2", "", "HTTP://{A}/app/SUB/target", "="},
	{"§9.2 PART not directly after the member name", "/front/c3", "", "http://{A}/sub/target", "="},
	{"§9.2 value is exactly member+PART", "/front/c4", "", "http://{B}/app/sub", "http://{FRONT}/front"},
	{"§9.2 any member matches, PART follows", "/front/c5", "", "http://{A}/app/sub/x?y#z", "http://{FRONT}/front/x?y#z"},
	{"§9.2 fake '/' and rest starting with '/': no //", "/r/f1", "", "http://{D}/x/y", "http://{FRONT}/x/y"},
	{"§9.2 fake '/' and empty rest", "/r/f2", "", "http://{D}", "http://{FRONT}/"},
	{"§9.2 fake '/' and a rest not starting with '/'", "/r/f3", "", "http://{D}x", "http://{FRONT}/x"},
}

// expand replaces the row's symbolic addresses.
func (s *reverseSetup) expand(v, front, served string) string {
	other := s.hp(s.a)
	if served == "A" {
		other = s.hp(s.b)
	}
	return strings.NewReplacer("{A}", s.hp(s.a), "{B}", s.hp(s.b), "{C}", s.c, "{D}", s.hp(s.d),
		"{FRONT}", front, "{other}", other).Replace(v)
}

// reverseAnswer is what a row gives at one front end: the mapped headers
// (one value if all four agree), the unmapped ones, with the front end's
// address written {FRONT}.
type reverseAnswer struct {
	Status   int
	Backend  string
	Mapped   string
	Unmapped string
}

func reverseAnswerOf(r result, front string) reverseAnswer {
	norm := func(v string) string { return strings.ReplaceAll(v, front, "{FRONT}") }
	a := reverseAnswer{Status: r.Status, Backend: r.Backend}
	var mapped, unmapped []string
	for _, h := range mappedHeaders {
		mapped = append(mapped, norm(strings.Join(r.Header.Values(h), " | ")))
	}
	for _, h := range replyHeaders[4:] {
		unmapped = append(unmapped, norm(strings.Join(r.Header.Values(h), " | ")))
	}
	a.Mapped = strings.Join(mapped, " ; ")
	if allEqualStrings(mapped) {
		a.Mapped = mapped[0]
	}
	a.Unmapped = strings.Join(unmapped, " ; ")
	if allEqualStrings(unmapped) {
		a.Unmapped = unmapped[0]
	}
	return a
}

func allEqualStrings(vs []string) bool {
	for _, v := range vs {
		if v != vs[0] {
			return false
		}
	}
	return true
}

// runRow sends a row's request to the front end at addr.
func (s *reverseSetup) runRow(t *testing.T, addr string, row reverseRow) reverseAnswer {
	hdrs := []string{"X-Reply: " + strings.NewReplacer("{A}", s.hp(s.a), "{B}", s.hp(s.b), "{C}", s.c, "{D}", s.hp(s.d)).Replace(row.value)}
	if row.host != "" {
		hdrs = append(hdrs, "Host: "+row.host)
	}
	return reverseAnswerOf(rawGet(t, addr, row.path, hdrs...), addr)
}

// wantRow is docs/behaviour.md's answer for row, given the backend that served it.
func (s *reverseSetup) wantRow(row reverseRow, served string) reverseAnswer {
	value := s.expand(row.value, "{FRONT}", served)
	want := value
	if row.want != "=" {
		want = s.expand(row.want, "{FRONT}", served)
	}
	return reverseAnswer{Status: 200, Backend: served, Mapped: want, Unmapped: value}
}

// TestE2EReverseURLMapping is docs/behaviour.md §9.2 through Caddy: Location,
// Content-Location, URI and Destination are mapped, Refresh and Link are not.
func TestE2EReverseURLMapping(t *testing.T) {
	s := newReverseSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, row := range reverseRows {
		got := s.runRow(t, addr, row)
		if got.Backend == "" {
			t.Errorf("%s: GET %s: %d without a backend", row.spec, row.path, got.Status)
			continue
		}
		if want := s.wantRow(row, got.Backend); got != want {
			t.Errorf("%s: GET %s (Host %q), member answers %q\n got  %+v\n want %+v", row.spec, row.path, row.host, s.expand(row.value, addr, got.Backend), got, want)
		}
	}
	// Row 1 says "request served by 9001!": the value names the member that
	// did not serve; both orders happen over two requests (byrequests).
	served := map[string]bool{}
	for i := 0; i < 2; i++ {
		r := rawGet(t, addr, "/front/t1", "X-Reply: http://{other}/app/sub/target?q=1")
		served[r.Backend] = true
		if loc := r.Header.Get("Location"); loc != "http://"+addr+"/front/target?q=1" {
			t.Errorf("row 1 served by %s: Location %q", r.Backend, loc)
		}
	}
	if !served["A"] || !served["B"] {
		t.Errorf("row 1: served by %v, want both members", served)
	}
}

// serverRulesCaddyfile is the docs/behaviour.md §9.2 observation with the rules at server
// level, plus two plain rules: every balancer block lists all the rules, in
// httpd's order, so that each is tried on every response, as in httpd.
func (s *reverseSetup) serverRulesCaddyfile(port int) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://:%[1]d {
	bind 127.0.0.1
	handle_path /front/* {
		rewrite * /sub{uri}
		balancer rv {
			balancer_member %[2]s/app
			balancer_member %[3]s/app
			proxy_pass_reverse /front /sub
			proxy_pass_reverse /f2/ balancer://rv2/
			proxy_pass_reverse /p2 url /internal
			proxy_pass_reverse /plain/ http://backend.internal:8081/
		}
	}
	handle_path /f2/* {
		balancer rv2 {
			balancer_member %[2]s
			balancer_member %[3]s
			proxy_pass_reverse /front balancer://rv/sub
			proxy_pass_reverse /f2/ /
			proxy_pass_reverse /p2 url /internal
			proxy_pass_reverse /plain/ http://backend.internal:8081/
		}
	}
}
`, port, s.a.URL, s.b.URL)
}

// serverRulesHTTPDConf is the same on httpd: docs/behaviour.md's observation verbatim
// and the two plain rules.
func (s *reverseSetup) serverRulesHTTPDConf() string {
	return fmt.Sprintf(`
<Proxy "balancer://rv">
    BalancerMember "%[1]s/app"
    BalancerMember "%[2]s/app"
</Proxy>
<Proxy "balancer://rv2">
    BalancerMember "%[1]s"
    BalancerMember "%[2]s"
</Proxy>
ProxyPass "/front" "balancer://rv/sub"
ProxyPass "/f2/" "balancer://rv2/"
ProxyPassReverse "/front" "balancer://rv/sub"
ProxyPassReverse "/f2/" "balancer://rv2/"
ProxyPassReverse "/p2" "/internal"
ProxyPassReverse "/plain/" "http://backend.internal:8081/"
`, s.a.URL, s.b.URL)
}

// serverRuleRows are docs/behaviour.md §9.2's table and cases of the plain rules, each to
// be sent through /front/ (balancer rv) and through /f2/ (rv2): the answer is
// the same, whichever ProxyPass served the request.
func serverRuleRows() []reverseRow {
	var rows []reverseRow
	for _, row := range reverseRows {
		if strings.HasPrefix(row.spec, "§9.2 row ") {
			row.path = ""
			rows = append(rows, row)
		}
	}
	return append(rows, []reverseRow{
		{"§9.2 plain path rule, relative value", "", "", "/internal/y", "http://{FRONT}/p2/y"},
		{"§9.2 plain path rule, case-insensitive", "", "", "/INTERNAL", "http://{FRONT}/p2"},
		{"§9.2 plain path rule, a prefix without a boundary", "", "", "/internalx", "http://{FRONT}/p2x"},
		{"§9.2 plain path rule on the path of an absolute value, before the URL rule", "", "", "http://backend.internal:8081/internal/z", "http://{FRONT}/p2/z"},
		{"§9.2 plain path rule: '://' in a relative value's query counts", "", "", "/internal/a?u=http://x/y", "="},
		{"§9.2 plain URL rule", "", "", "http://backend.internal:8081/x?y=1", "http://{FRONT}/plain/x?y=1"},
		{"§9.2 plain URL rule, case-insensitive", "", "", "HTTP://BACKEND.internal:8081/x", "http://{FRONT}/plain/x"},
		{"§9.2 plain URL rule needs its trailing '/'", "", "", "http://backend.internal:8081", "="},
		{"§9.2 balancer rule before the plain path rule", "", "", "http://{A}/internal/x", "http://{FRONT}/f2//internal/x"},
		{"§9.2 a result with '://' in its query is made absolute", "", "", "http://{B}/x?next=http://y/", "http://{FRONT}/f2//x?next=http://y/"},
	}...)
}

// TestE2EReverseRuleScope is docs/behaviour.md §9.2's observation with httpd's rule set:
// both balancer rules (and two plain ones) listed in both balancer blocks, so
// every row is mapped by whichever rule matches it, through /front (rv) as
// through /f2/ (rv2); e.g. row 2's value answered through /front is mapped by
// rv2's rule.
func TestE2EReverseRuleScope(t *testing.T) {
	s := newReverseSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.serverRulesCaddyfile(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, front := range []string{"/front/", "/f2/"} {
		for i, row := range serverRuleRows() {
			row.path = fmt.Sprintf("%ss%d", front, i)
			got := s.runRow(t, addr, row)
			if want := s.wantRow(row, got.Backend); got != want {
				t.Errorf("%s: GET %s (Host %q)\n got  %+v\n want %+v", row.spec, row.path, row.host, got, want)
			}
		}
	}
}

// cookieRows are docs/behaviour.md §9.3's table (through /ck: ProxyPassReverseCookiePath
// /app/sub /front, ProxyPassReverseCookieDomain backend.internal
// public.example.com) and the httpd-tests cases (through /lk: domain local →
// remote, path /local → /remote).
var cookieRows = []struct{ path, in, want string }{
	{"/ck/1", "a=b; path=/app/sub/x; domain=backend.internal", "a=b; path=/front; domain=public.example.com"},
	{"/ck/2", "a=b; Path=/app/subx; Domain=BACKEND.internal.com; HttpOnly", "a=b; Path=/front; Domain=public.example.com; HttpOnly"},
	{"/ck/3", "a=b;path=/other;domain=x.backend.internal", "a=b;path=/other;domain=x.backend.internal"},
	{"/ck/4", "path=/app/sub; a=b", "path=/front; a=b"},
	{"/lk/1", "fakedomain=local;domain=local", "fakedomain=local;domain=remote"},
	{"/lk/2", "fakepath=/local;path=/local", "fakepath=/local;path=/remote"},
	{"/lk/3", "domain=local;path=/local;foo=bar", "domain=remote;path=/remote;foo=bar"},
}

// cookieAnswer sends one cookie row (and, as a second Set-Cookie, the next
// row's cookie: each header is mapped on its own).
func cookieAnswer(t *testing.T, addr string, i int) []string {
	row := cookieRows[i]
	hdrs := []string{"X-Reply-Set-Cookie-1: " + row.in}
	if j := i + 1; j < len(cookieRows) && strings.HasPrefix(cookieRows[j].path, row.path[:strings.LastIndexByte(row.path, '/')+1]) {
		hdrs = append(hdrs, "X-Reply-Set-Cookie-2: "+cookieRows[j].in)
	}
	r := rawGet(t, addr, row.path, hdrs...)
	return r.Header.Values("Set-Cookie")
}

// TestE2EReverseCookieMapping is docs/behaviour.md §9.3 through Caddy.
func TestE2EReverseCookieMapping(t *testing.T) {
	s := newReverseSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i, row := range cookieRows {
		got := cookieAnswer(t, addr, i)
		if len(got) == 0 || got[0] != row.want {
			t.Errorf("%s: member sets %q\n got  %q\n want %q", row.path, row.in, got, row.want)
		}
		if len(got) != 2 && i != 3 && i != len(cookieRows)-1 {
			t.Errorf("%s: got %d Set-Cookie headers, want 2", row.path, len(got))
		}
		if len(got) == 2 && got[1] != cookieRows[i+1].want {
			t.Errorf("%s: second Set-Cookie %q: got %q, want %q", row.path, cookieRows[i+1].in, got[1], cookieRows[i+1].want)
		}
	}
}

// TestE2EReversePR45434 is httpd-tests' t/modules/proxy.t PR 45434 case
// (docs/behaviour.md §11.2): a member with a path (http://HOST:PORT/modules), a balancer
// path (balancer://pr45434/alias); GET /pr45434/redirect-me reaches
// /modules/alias/redirect-me, which redirects permanently to
// http://HOST:PORT/modules/alias/5.html, and the client sees
// http://HOST:PORT/pr45434/5.html. In Caddy: handle_path /pr45434/* strips the
// ProxyPass path, `rewrite * /alias{uri}` adds the balancer path, and
// `proxy_pass_reverse /pr45434 /alias` maps it back.
func TestE2EReversePR45434(t *testing.T) {
	s := newReverseSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r := rawGet(t, addr, "/pr45434/redirect-me")
	if r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != "http://"+addr+"/pr45434/5.html" {
		t.Errorf("GET /pr45434/redirect-me: %d Location %q; want 301 Location http://%s/pr45434/5.html", r.Status, r.Header.Get("Location"), addr)
	}
}

// memberPathRows are §3.2: backend URL = member name (with its path) + the
// path after the balancer name; the query string follows.
var memberPathRows = []struct{ spec, target, want string }{
	{"§3.2 member …/app, ProxyPass /front balancer://rv/sub", "/front/a/x", "/app/sub/a/x"},
	{"§3.2 with a query string", "/front/a/x?q=1&r=a%20b", "/app/sub/a/x?q=1&r=a%20b"},
	{"§3.2 member …/app, ProxyPass /p balancer://pp", "/p/a/x", "/app/a/x"},
	{"§3.2 an escaped character stays escaped", "/p/a%20b/x", "/app/a%20b/x"},
	{"§3.2 member without path, ProxyPass /f2/ balancer://rv2/", "/f2/a/x", "/a/x"},
}

// TestE2EMemberPath is §3.2 through Caddy: the path a member receives, and the
// Host header (the member's host:port: httpd's ProxyPreserveHost Off).
func TestE2EMemberPath(t *testing.T) {
	s := newReverseSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, row := range memberPathRows {
		r := rawGet(t, addr, row.target)
		if r.Status != 200 || r.Body != r.Backend+" GET "+row.want {
			t.Errorf("%s: GET %s: %d %q; want the member to see %s", row.spec, row.target, r.Status, r.Body, row.want)
		}
		served := s.a
		if r.Backend == "B" {
			served = s.b
		}
		if h := r.Header.Get("X-Seen-Host"); h != s.hp(served) {
			t.Errorf("%s: member saw Host %q, want %q", row.spec, h, s.hp(served))
		}
	}
}

// TestE2EMemberPathFailover: a request that fails over keeps its own path: the
// second member's path replaces the first one's, it is not added to it.
func TestE2EMemberPathFailover(t *testing.T) {
	b := namedBackend(t, "live", nil)
	dead := deadURL(t)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	balancer fo {
		balancer_member %s/dead
		balancer_member %s/live
	}
}`, port, dead, b.URL))
	// The first request meets the dead member first (byrequests, fresh state)
	// and fails over; its escaped path keeps its escapes.
	for i, c := range []struct{ target, want string }{
		{"/a%2Fb/c?d=e", "/live/a%2Fb/c?d=e"},
		{"/a/b?c=d", "/live/a/b?c=d"},
		{"/a%20b", "/live/a%20b"},
	} {
		r := rawGet(t, fmt.Sprintf("127.0.0.1:%d", port), c.target)
		if r.Status != 200 || r.Body != "live GET "+c.want {
			t.Errorf("request %d, %s: %d %q; want the live member to see %s", i+1, c.target, r.Status, r.Body, c.want)
		}
	}
}

// TestE2EHTTPSMembers: an https member works with the balancer's transport
// (tls_insecure_skip_verify for httptest's certificate), and http and https
// members mix in one balancer, each reached with its own scheme (§3.2: the
// member's URL decides).
func TestE2EHTTPSMembers(t *testing.T) {
	answer := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			w.Header().Set("X-TLS", fmt.Sprint(r.TLS != nil))
			fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
		}
	}
	tlsSrv := httptest.NewTLSServer(answer("tls"))
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(answer("plain"))
	t.Cleanup(plain.Close)
	tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	route /only/* {
		balancer onlytls {
			balancer_member https://127.0.0.1:%d/base
			transport http {
				tls_insecure_skip_verify
			}
		}
	}
	balancer mixed {
		balancer_member https://127.0.0.1:%d route=t
		balancer_member %s route=p
		stickysession ROUTEID
		transport http {
			tls_insecure_skip_verify
		}
	}
}`, port, tlsPort, tlsPort, plain.URL))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	r := get(t, base+"/only/x")
	if r.Status != 200 || r.Body != "tls /base/only/x" || r.Header.Get("X-TLS") != "true" {
		t.Errorf("https member: %d %q TLS=%s; want the member to answer over TLS for /base/only/x", r.Status, r.Body, r.Header.Get("X-TLS"))
	}
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		r := get(t, base+"/m")
		seen[r.Backend]++
		wantTLS := fmt.Sprint(r.Backend == "tls")
		if r.Status != 200 || r.Header.Get("X-TLS") != wantTLS {
			t.Errorf("mixed, request %d: %d from %q TLS=%s", i+1, r.Status, r.Backend, r.Header.Get("X-TLS"))
		}
	}
	if seen["tls"] != 2 || seen["plain"] != 2 {
		t.Errorf("mixed: answers %v, want 2 each (byrequests)", seen)
	}
	for _, c := range []struct{ route, backend, tls string }{{"t", "tls", "true"}, {"p", "plain", "false"}} {
		r := get(t, base+"/m", "Cookie: ROUTEID=."+c.route)
		if r.Status != 200 || r.Backend != c.backend || r.Header.Get("X-TLS") != c.tls {
			t.Errorf("mixed, route %s: %d from %q TLS=%s; want %s", c.route, r.Status, r.Backend, r.Header.Get("X-TLS"), c.backend)
		}
	}
}
