package caddybalancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/internal/httpdtest"
	"github.com/lbset/caddy-balancer/internal/testenv"
)

// This file runs real Apache httpd 2.4 (/usr/sbin/apache2 -X) next to the
// in-process Caddy, so that a test can send the same requests to both front
// ends in the same run and compare the answers (the approach of
// conformance/httpd_test.go, for root-package tests).

// oracleApache2 is the httpd binary (CONFORMANCE_APACHE2 overrides it).
func oracleApache2() string { return httpdtest.Binary() }

// oracleModules are the base modules plus mod_alias (for Redirect).
var oracleModules = append(append([]httpdtest.Module(nil), httpdtest.BaseModules[:3]...),
	append([]httpdtest.Module{{Name: "alias_module", File: "mod_alias.so"}}, httpdtest.BaseModules[3:]...)...)

// oracleHTTPD is one running `apache2 -f CONF -X`.
type oracleHTTPD struct {
	*httpdtest.Process
	Port int
	Addr string // 127.0.0.1:port
}

// requireHTTPD skips the test when the httpd binary is not installed (fails
// it in CI).
func requireHTTPD(t testing.TB) {
	t.Helper()
	testenv.NeedTool(t, "apache2", oracleApache2())
}

// startOracleHTTPD writes a standalone httpd config (ServerRoot, modules,
// user, Listen on a free loopback port, logs in a temporary directory) around
// body, the test's own directives, runs httpd in the foreground as a single
// process and waits until it answers. It is stopped at the end of the test.
// body may use {{PORT}} for the port httpd listens on.
func startOracleHTTPD(t testing.TB, body string) *oracleHTTPD {
	t.Helper()
	requireHTTPD(t)
	dir := t.TempDir()
	port := freePort(t)
	var b strings.Builder
	b.WriteString(httpdtest.Preamble(dir, oracleModules))
	fmt.Fprintf(&b, "Listen 127.0.0.1:%d\nTimeout 10\nKeepAlive Off\n\n", port)
	b.WriteString(strings.ReplaceAll(body, "{{PORT}}", fmt.Sprint(port)))
	proc, err := httpdtest.Start(dir, b.String())
	if err != nil {
		t.Fatalf("starting httpd: %v", err)
	}
	h := &oracleHTTPD{Process: proc, Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(h.Stop)

	// Wait until httpd answers anything (a 404 for a path nobody handles).
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-h.Exited:
			t.Fatalf("httpd exited at start: %s\n%s\n%s\nconfig:\n%s", h.State(), h.Output(), h.ErrorLog(), b.String())
		default:
		}
		c, err := net.DialTimeout("tcp", h.Addr, time.Second)
		if err == nil {
			fmt.Fprintf(c, "GET /__oracle_ready__ HTTP/1.0\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "HTTP/") {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("httpd did not answer on %s: %v\n%s", h.Addr, err, h.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawGet sends "GET <target> HTTP/1.1" to addr with exactly the given request
// target (no client-side normalisation or escaping, so that ';', '%2E' and
// '%3B' reach the front end as written) and the given "Name: value" header
// lines, in order (two Cookie lines stay two header lines). Host defaults to
// addr unless a Host line is given.
func rawGet(t testing.TB, addr, target string, headers ...string) result {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, target, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", target)
	hasHost := false
	for _, h := range headers {
		if k, _, _ := strings.Cut(h, ":"); strings.EqualFold(strings.TrimSpace(k), "Host") {
			hasHost = true
		}
	}
	if !hasHost {
		fmt.Fprintf(&b, "Host: %s\r\n", addr)
	}
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("GET %s%s: %v", addr, target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s%s: reading the answer: %v", addr, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{Status: resp.StatusCode, Backend: resp.Header.Get("X-Backend"), Body: string(body), Header: resp.Header}
}

// namedBackend starts a real loopback HTTP server that answers with
// X-Backend: name and calls h (if not nil) for the rest of the answer.
func namedBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{Name: name, handler: h}
	b.srv = httptest.NewServer(b)
	b.URL = b.srv.URL
	b.Port = b.srv.Listener.Addr().(*net.TCPAddr).Port
	t.Cleanup(b.srv.Close)
	return b
}

// TestOracleSticky runs every row of docs/behaviour.md §4.5 and §4.6 (e2e_sticky_test.go)
// through real httpd and through Caddy in the same run, against the same
// backends: httpd's answer (which backend, the six BALANCER_* variables, the
// §4.7 route cookie) must be docs/behaviour.md's, and ours must be httpd's.
func TestOracleSticky(t *testing.T) {
	requireHTTPD(t)
	s := newStickySetup(t)
	hd := startOracleHTTPD(t, s.httpdConf())
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	fromHTTPD := s.run(t, hd.Addr)
	ours := s.run(t, fmt.Sprintf("127.0.0.1:%d", port))
	compared := 0
	for i, c := range s.cases {
		for j, q := range c.reqs {
			h, o := fromHTTPD[i][j], ours[i][j]
			if want := s.expected(i, q, h); h != want {
				t.Errorf("httpd differs from docs/behaviour.md: %s\n httpd %v\n spec  %v", s.describe(i, j), h, want)
			}
			if o != h {
				t.Errorf("Caddy differs from httpd: %s\n ours  %v\n httpd %v", s.describe(i, j), o, h)
			}
			compared++
		}
	}
	t.Logf("%d requests of %d rows compared with %s", compared, len(s.cases), oracleApache2())
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
}

// TestOracleReverse sends the ProxyPassReverse rows of e2e_reverse_test.go
// (docs/behaviour.md §9.2, §9.3, the pr45434 case, §3.2's member paths) to real httpd and
// to Caddy in the same run. httpd's answers must be docs/behaviour.md's, and ours
// httpd's, after writing each front end's own address as {FRONT}.
func TestOracleReverse(t *testing.T) {
	requireHTTPD(t)
	s := newReverseSetup(t)
	hd := startOracleHTTPD(t, s.httpdConf())
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	ours := fmt.Sprintf("127.0.0.1:%d", port)
	compared := 0

	for _, row := range reverseRows {
		h, o := s.runRow(t, hd.Addr, row), s.runRow(t, ours, row)
		if want := s.wantRow(row, h.Backend); h != want {
			t.Errorf("httpd differs from docs/behaviour.md: %s: GET %s (Host %q)\n httpd %+v\n spec  %+v", row.spec, row.path, row.host, h, want)
		}
		if o != h {
			t.Errorf("Caddy differs from httpd: %s: GET %s (Host %q)\n ours  %+v\n httpd %+v", row.spec, row.path, row.host, o, h)
		}
		compared++
	}

	for i, row := range cookieRows {
		h, o := cookieAnswer(t, hd.Addr, i), cookieAnswer(t, ours, i)
		if len(h) == 0 || h[0] != row.want {
			t.Errorf("httpd differs from docs/behaviour.md: %s: member sets %q: httpd %q, spec %q", row.path, row.in, h, row.want)
		}
		if strings.Join(o, "\n") != strings.Join(h, "\n") {
			t.Errorf("Caddy differs from httpd: %s: member sets %q\n ours  %q\n httpd %q", row.path, row.in, o, h)
		}
		compared++
	}

	pr := func(addr string) string {
		r := rawGet(t, addr, "/pr45434/redirect-me")
		return fmt.Sprintf("%d %s", r.Status, strings.ReplaceAll(r.Header.Get("Location"), addr, "{FRONT}"))
	}
	if h, o := pr(hd.Addr), pr(ours); h != "301 http://{FRONT}/pr45434/5.html" || o != h {
		t.Errorf("pr45434: GET /pr45434/redirect-me: httpd %q, ours %q, spec %q", h, o, "301 http://{FRONT}/pr45434/5.html")
	}
	compared++

	for _, row := range memberPathRows {
		seen := func(addr string) string {
			r := rawGet(t, addr, row.target)
			return fmt.Sprintf("%d %s Host:%s", r.Status, r.Body, r.Header.Get("X-Seen-Host"))
		}
		h, o := seen(hd.Addr), seen(ours)
		if !strings.Contains(h, " GET "+row.want+" Host:") {
			t.Errorf("httpd differs from docs/behaviour.md: %s: GET %s: %s, spec: the member sees %s", row.spec, row.target, h, row.want)
		}
		if o != h {
			t.Errorf("Caddy differs from httpd: %s: GET %s\n ours  %s\n httpd %s", row.spec, row.target, o, h)
		}
		compared++
	}
	t.Logf("%d rows compared with %s", compared, oracleApache2())
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
}

// TestOracleReverseServerRules runs docs/behaviour.md §9.2's observation verbatim on httpd
// (both ProxyPassReverse rules at server level, and two plain rules) and on
// Caddy with every rule listed in both balancer blocks (TestE2EReverseRuleScope),
// every row sent through /front (balancer rv) and through /f2/ (rv2). httpd
// maps each row by whichever rule matches it, as docs/behaviour.md says ("the rule set
// is independent of which ProxyPass handled the request"): its answers must
// be docs/behaviour.md's, and ours httpd's.
func TestOracleReverseServerRules(t *testing.T) {
	requireHTTPD(t)
	s := newReverseSetup(t)
	hd := startOracleHTTPD(t, s.serverRulesHTTPDConf())
	port := freePort(t)
	loadCaddyfile(t, s.serverRulesCaddyfile(port))
	ours := fmt.Sprintf("127.0.0.1:%d", port)
	compared := 0
	for _, front := range []string{"/front/", "/f2/"} {
		for i, row := range serverRuleRows() {
			row.path = fmt.Sprintf("%ss%d", front, i)
			h, o := s.runRow(t, hd.Addr, row), s.runRow(t, ours, row)
			if want := s.wantRow(row, h.Backend); h != want {
				t.Errorf("httpd differs from docs/behaviour.md: %s: GET %s (Host %q)\n httpd %+v\n spec  %+v", row.spec, row.path, row.host, h, want)
			}
			if o != h {
				t.Errorf("Caddy differs from httpd: %s: GET %s (Host %q)\n ours  %+v\n httpd %+v", row.spec, row.path, row.host, o, h)
			}
			compared++
		}
	}
	t.Logf("%d rows compared with %s", compared, oracleApache2())
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
}

// TestOraclePlaceholders sends e2e_placeholders_test.go's requests
// (docs/behaviour.md §3.5) to real httpd and to Caddy: httpd's answers must be docs/behaviour.md's, and
// ours httpd's.
func TestOraclePlaceholders(t *testing.T) {
	requireHTTPD(t)
	s := newPlaceholderSetup(t)
	hd := startOracleHTTPD(t, s.httpdConf())
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	fromHTTPD := runPlaceholderReqs(t, s, hd.Addr)
	ours := runPlaceholderReqs(t, s, fmt.Sprintf("127.0.0.1:%d", port))
	for i, q := range placeholderReqs() {
		h, o := fromHTTPD[i], ours[i]
		if want := q.want(s); h != want {
			t.Errorf("httpd differs from docs/behaviour.md: §3.5 %s: GET %s %q\n httpd %v\n spec  %v", q.spec, q.target, q.headers, h, want)
		}
		if o != h {
			t.Errorf("Caddy differs from httpd: §3.5 %s: GET %s %q\n ours  %v\n httpd %v", q.spec, q.target, q.headers, o, h)
		}
	}
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
}
