package caddybalancer

import (
	"fmt"
	"strings"
	"testing"
)

// This file checks docs/behaviour.md §3.5 (the BALANCER_* environment variables, our
// {http.balancer.*} placeholders) beyond the sticky tables: balancers without
// sticky sessions, members with a path or without a route, failover (the later
// attempt's values win) and 503 answers (the values of an earlier attempt
// remain; a request refused before any member was chosen has none). Answers
// carry the placeholders in response headers: header_down for a member's
// answer, handle_errors for Caddy's 503 (httpd: `Header always set`).
// TestOraclePlaceholders sends the same requests to real httpd.

// placeholderSetup is the backends and dead ports of this file's balancers.
type placeholderSetup struct {
	b1, b2      *backend
	dead, dead2 string
}

func newPlaceholderSetup(t testing.TB) *placeholderSetup {
	bs := startBackends(t, 2)
	return &placeholderSetup{b1: bs[0], b2: bs[1], dead: deadURL(t), dead2: deadURL(t)}
}

// balancers returns the balancers, name → (httpd ProxySet parameters,
// BalancerMember lines).
func (s *placeholderSetup) balancers() []struct {
	name    string
	params  []string
	members []string
} {
	return []struct {
		name    string
		params  []string
		members []string
	}{
		// No sticky sessions; a member without a route, one with a path.
		{"p1", nil, []string{s.b1.URL, s.b2.URL + "/app route=r2"}},
		// Sticky, the member of route r1 is dead: failover.
		{"p2", []string{stickyJSess}, []string{s.dead + " route=r1", s.b2.URL + " route=r2"}},
		// Sticky with nofailover, the member of route r2 is dead.
		{"p3", []string{stickyJSess, "nofailover=On"}, []string{s.b1.URL + " route=r1", s.dead2 + " route=r2"}},
		// Sticky, every member disabled.
		{"p4", []string{stickyJSess}, []string{s.b1.URL + " route=r1 status=D", s.b2.URL + " route=r2 status=D"}},
	}
}

func (s *placeholderSetup) caddyfile(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tauto_https off\n}\nhttp://:%d {\n\tbind 127.0.0.1\n", port)
	for _, bl := range s.balancers() {
		fmt.Fprintf(&b, "\thandle_path /%s/* {\n\t\tbalancer %s {\n", bl.name, bl.name)
		for _, p := range bl.params {
			k, v, _ := strings.Cut(p, "=")
			fmt.Fprintf(&b, "\t\t\t%s %s\n", k, v)
		}
		for _, m := range bl.members {
			fmt.Fprintf(&b, "\t\t\tbalancer_member %s\n", m)
		}
		for _, ph := range placeholderHeaders {
			fmt.Fprintf(&b, "\t\t\theader_down %s \"[{%s}]\"\n", ph.header, ph.placeholder)
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	b.WriteString("\thandle_errors {\n")
	for _, ph := range placeholderHeaders {
		fmt.Fprintf(&b, "\t\theader %s \"[{%s}]\"\n", ph.header, ph.placeholder)
	}
	b.WriteString("\t\trespond {err.status_code}\n\t}\n}\n")
	return b.String()
}

func (s *placeholderSetup) httpdConf() string {
	var b strings.Builder
	for _, ph := range placeholderHeaders {
		fmt.Fprintf(&b, "Header always set %s \"[%%{%s}e]\"\n", ph.header, ph.env)
	}
	for _, bl := range s.balancers() {
		fmt.Fprintf(&b, "<Proxy \"balancer://%s\">\n", bl.name)
		for _, m := range bl.members {
			u, params, _ := strings.Cut(m, " ")
			fmt.Fprintf(&b, "    BalancerMember %q %s\n", u, params)
		}
		if len(bl.params) > 0 {
			fmt.Fprintf(&b, "    ProxySet %s\n", strings.Join(bl.params, " "))
		}
		fmt.Fprintf(&b, "</Proxy>\nProxyPass \"/%s\" \"balancer://%s\"\n", bl.name, bl.name)
	}
	return b.String()
}

// placeholderAnswer is the status, the backend and the six placeholders
// (placeholderHeaders order, unsetVar when not set) of an answer, 503s
// included.
type placeholderAnswer struct {
	Status  int
	Backend string
	Vars    [6]string
}

func (a placeholderAnswer) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %q", a.Status, a.Backend)
	for i, ph := range placeholderHeaders {
		fmt.Fprintf(&b, " %s=%q", ph.env[len("BALANCER_"):], a.Vars[i])
	}
	return b.String()
}

func placeholderAnswerOf(r result) placeholderAnswer {
	a := stickyAnswerOf(result{Status: 200, Backend: r.Backend, Header: r.Header})
	return placeholderAnswer{Status: r.Status, Backend: r.Backend, Vars: a.Vars}
}

// placeholderReq is one request and the answer docs/behaviour.md §3.5 gives.
type placeholderReq struct {
	spec    string
	target  string
	headers []string
	want    func(s *placeholderSetup) placeholderAnswer
}

func placeholderReqs() []placeholderReq {
	const u = unsetVar // not set
	return []placeholderReq{
		{"no sticky sessions: ROUTE_CHANGED and SESSION_* unset; WORKER_ROUTE empty for a member without route", "/p1/x", nil,
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{200, "b1", [6]string{"balancer://p1", s.b1.URL, "", u, u, u}}
			}},
		{"WORKER_NAME with the member's path", "/p1/x", nil,
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{200, "b2", [6]string{"balancer://p1", s.b2.URL + "/app", "r2", u, u, u}}
			}},
		{"no sticky sessions: a session cookie is not looked at", "/p1/x", []string{"Cookie: JSESSIONID=.r2"},
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{200, "b1", [6]string{"balancer://p1", s.b1.URL, "", u, u, u}}
			}},
		{"failover: the later attempt's values (the chooser's member, ROUTE_CHANGED=1)", "/p2/x", []string{"Cookie: JSESSIONID=.r1"},
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{200, "b2", [6]string{"balancer://p2", s.b2.URL, "r2", "1", jsessCookie, "r1"}}
			}},
		{"nofailover 503 after a failed attempt: the earlier attempt's values remain", "/p3/x", []string{"Cookie: JSESSIONID=.r2"},
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{503, "", [6]string{"balancer://p3", s.dead2, "r2", u, jsessCookie, "r2"}}
			}},
		{"nofailover 503 before any member was chosen: nothing set", "/p3/x", []string{"Cookie: JSESSIONID=.r2"},
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{503, "", [6]string{u, u, u, u, u, u}}
			}},
		{"no usable member (503): nothing set", "/p4/x", nil,
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{503, "", [6]string{u, u, u, u, u, u}}
			}},
		{"no usable member (503) with a route: nothing set", "/p4/x", []string{"Cookie: JSESSIONID=.r1"},
			func(s *placeholderSetup) placeholderAnswer {
				return placeholderAnswer{503, "", [6]string{u, u, u, u, u, u}}
			}},
	}
}

func runPlaceholderReqs(t *testing.T, s *placeholderSetup, addr string) []placeholderAnswer {
	var out []placeholderAnswer
	for _, q := range placeholderReqs() {
		out = append(out, placeholderAnswerOf(rawGet(t, addr, q.target, q.headers...)))
	}
	return out
}

// TestE2EPlaceholders is docs/behaviour.md §3.5 through Caddy.
func TestE2EPlaceholders(t *testing.T) {
	s := newPlaceholderSetup(t)
	port := freePort(t)
	loadCaddyfile(t, s.caddyfile(port))
	got := runPlaceholderReqs(t, s, fmt.Sprintf("127.0.0.1:%d", port))
	for i, q := range placeholderReqs() {
		if want := q.want(s); got[i] != want {
			t.Errorf("§3.5 %s: GET %s %q\n got  %v\n want %v", q.spec, q.target, q.headers, got[i], want)
		}
	}
}
