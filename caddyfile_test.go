package caddybalancer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

// parseBalancerDirective runs the directive's parser on src, which starts
// with the directive name (no matcher), as httpcaddyfile would.
func parseBalancerDirective(src string) (*Handler, error) {
	d := caddyfile.NewTestDispenser(src)
	mh, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: d})
	if err != nil {
		return nil, err
	}
	return mh.(*Handler), nil
}

// balancerView is the balancer's own part of a Handler, for comparisons.
type balancerView struct {
	Name             string
	LBMethod         string
	StickySession    string
	StickySessionSep string
	SColonPathDelim  bool
	NoFailover       bool
	MaxAttempts      *int
	Timeout          caddy.Duration
	ForceRecovery    *bool
	FailOnStatus     []int
	FailOnTimeout    bool
	Growth           int
	Persist          bool
	Nonce            *string
	RouteCookie      *config.RouteCookie
	ProxyPassReverse []proxypassreverse.Rule
	CookieDomain     []proxypassreverse.CookieRule
	CookiePath       []proxypassreverse.CookieRule
	Members          []config.Member
}

func viewOf(h *Handler) balancerView {
	return balancerView{
		Name: h.Name, LBMethod: h.LBMethod, StickySession: h.StickySession, StickySessionSep: h.StickySessionSep,
		SColonPathDelim: h.SColonPathDelim, NoFailover: h.NoFailover, MaxAttempts: h.MaxAttempts,
		Timeout: h.Timeout, ForceRecovery: h.ForceRecovery, FailOnStatus: h.FailOnStatus,
		FailOnTimeout: h.FailOnTimeout, Growth: h.Growth, Persist: h.Persist, Nonce: h.Nonce,
		RouteCookie: h.RouteCookie, ProxyPassReverse: h.ProxyPassReverse,
		CookieDomain: h.ProxyPassReverseCookieDomain, CookiePath: h.ProxyPassReverseCookiePath,
		Members: h.Members,
	}
}

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *caddy.Duration { v := caddy.Duration(d); return &v }

func TestCaddyfileParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want balancerView
	}{
		{
			name: "name only",
			src:  `balancer MyCluster`,
			want: balancerView{Name: "mycluster"},
		},
		{
			name: "balancer URL as the name",
			src:  `balancer balancer://MyCluster/`,
			want: balancerView{Name: "mycluster"},
		},
		{
			name: "inline members as pasted from httpd.conf",
			src: `balancer {
				balancer_member http://10.0.0.1:8080 loadfactor=3 route=node1 timeout=1
				balancer_member http://10.0.0.2:8080 LoadFactor=1.5 LBSet=1 Route=node2 redirect=node1 status=+H retry=60
				balancer_member http://10.0.0.3:8080 retry=0 status=+R-I status=D timeout=1500ms
			}`,
			want: balancerView{Members: []config.Member{
				{URL: "http://10.0.0.1:8080", LoadFactor: 3, Route: "node1", Timeout: caddy.Duration(time.Second)},
				{URL: "http://10.0.0.2:8080", LoadFactor: 1.5, LBSet: 1, Route: "node2", Redirect: "node1", Status: "+H", Retry: dur(60 * time.Second)},
				{URL: "http://10.0.0.3:8080", Retry: dur(0), Status: "+R-I+D", Timeout: caddy.Duration(1500 * time.Millisecond)},
			}},
		},
		{
			name: "block member with every key",
			src: `balancer b {
				balancer_member http://10.0.0.2:8080 {
					loadfactor 1.5
					lbset      1
					route      node2
					redirect   node1
					status     +H
					retry      60s
					timeout    1s
					hcmethod   get11
					hcuri      /health
					hcinterval 10
					hcpasses   2
					hcfails    3
					hcexpr     %{REQUEST_STATUS} =~ /^[234]/
				}
			}`,
			want: balancerView{Name: "b", Members: []config.Member{{
				URL: "http://10.0.0.2:8080", LoadFactor: 1.5, LBSet: 1, Route: "node2", Redirect: "node1",
				Status: "+H", Retry: dur(time.Minute), Timeout: caddy.Duration(time.Second),
				HCMethod: "GET11", HCURI: "/health", HCInterval: caddy.Duration(10 * time.Second),
				HCPasses: 2, HCFails: 3, HCExpr: "%{REQUEST_STATUS} =~ /^[234]/",
			}}},
		},
		{
			name: "block member with key=value lines and inline keys combined",
			src: `balancer b {
				balancer_member http://h:1 route=r1 {
					lbset=2 hcmethod=NONE
					Status "S"
				}
			}`,
			want: balancerView{Name: "b", Members: []config.Member{{URL: "http://h:1", Route: "r1", LBSet: 2, Status: "S"}}},
		},
		{
			name: "balancer parameters",
			src: `balancer b {
				LBMethod         ByTraffic
				stickysession    JSESSIONID|jsessionid
				stickysessionsep Off
				scolonpathdelim  ON
				nofailover       On
				maxattempts      0
				timeout          5
				forcerecovery    off
				failonstatus     500,502 503 , 504
				failonstatus     502,503
				failontimeout    on
				growth           10
				persist          on
				nonce            none
				route_cookie     path=/; HttpOnly
			}`,
			want: balancerView{
				Name: "b", LBMethod: "bytraffic", StickySession: "JSESSIONID|jsessionid", StickySessionSep: "off",
				SColonPathDelim: true, NoFailover: true, MaxAttempts: ptr(0), Timeout: caddy.Duration(5 * time.Second),
				ForceRecovery: ptr(false), FailOnStatus: []int{502, 503}, FailOnTimeout: true, Growth: 10,
				Persist: true, Nonce: ptr("None"), RouteCookie: &config.RouteCookie{Attributes: "path=/; HttpOnly"},
			},
		},
		{
			name: "more balancer values",
			src: `balancer b {
				stickysessionsep _
				timeout 1500ms
				nonce 0123456789abcdef0123456789abcdef0123
				route_cookie
				forcerecovery On
				nofailover off
			}`,
			want: balancerView{
				Name: "b", StickySessionSep: "_", Timeout: caddy.Duration(1500 * time.Millisecond),
				Nonce: ptr("0123456789abcdef0123456789abcdef0123"), RouteCookie: &config.RouteCookie{}, ForceRecovery: ptr(true),
			},
		},
		{
			name: "reverse mapping",
			src: `balancer b {
				proxy_pass_reverse / balancer://B/app
				proxy_pass_reverse_cookie_domain internal.example example.com
				proxy_pass_reverse_cookie_path /app /
				proxy_pass_reverse_cookie_domain other.example example.org
				proxy_pass_reverse_cookie_path /x /y
			}`,
			want: balancerView{
				Name:             "b",
				ProxyPassReverse: []proxypassreverse.Rule{{Prefix: "/", Balancer: "b", Path: "/app"}},
				CookieDomain:     []proxypassreverse.CookieRule{{Internal: "internal.example", Public: "example.com"}, {Internal: "other.example", Public: "example.org"}},
				CookiePath:       []proxypassreverse.CookieRule{{Internal: "/app", Public: "/"}, {Internal: "/x", Public: "/y"}},
			},
		},
		{
			name: "proxy_pass_reverse defaults",
			src:  "balancer b {\nproxy_pass_reverse\n}",
			want: balancerView{Name: "b", ProxyPassReverse: []proxypassreverse.Rule{{}}},
		},
		{
			name: "proxy_pass_reverse with prefix and path",
			src:  "balancer b {\nproxy_pass_reverse /front/ /sub\n}",
			want: balancerView{Name: "b", ProxyPassReverse: []proxypassreverse.Rule{{Prefix: "/front/", Path: "/sub"}}},
		},
		{
			// httpd's rule list: every form, repeated, in order.
			name: "proxy_pass_reverse rule list",
			src: `balancer {
				balancer_member http://10.0.0.1:8080
				proxy_pass_reverse
				proxy_pass_reverse /a
				proxy_pass_reverse /b /
				proxy_pass_reverse /c /sub/
				proxy_pass_reverse /d balancer://Other
				proxy_pass_reverse /e BALANCER://other/
				proxy_pass_reverse /f balancer://other/x/y
				proxy_pass_reverse /g http://Backend.internal:8080/app/
				proxy_pass_reverse /h url /internal
				proxy_pass_reverse /i url https://x.example/
				proxy_pass_reverse http://public.example/ url /
			}`,
			want: balancerView{
				Members: []config.Member{{URL: "http://10.0.0.1:8080"}},
				ProxyPassReverse: []proxypassreverse.Rule{
					{},
					{Prefix: "/a"},
					{Prefix: "/b"},
					{Prefix: "/c", Path: "/sub/"},
					{Prefix: "/d", Balancer: "other"},
					{Prefix: "/e", Balancer: "other"},
					{Prefix: "/f", Balancer: "other", Path: "/x/y"},
					{Prefix: "/g", URL: "http://Backend.internal:8080/app/"},
					{Prefix: "/h", URL: "/internal"},
					{Prefix: "/i", URL: "https://x.example/"},
					{Prefix: "http://public.example/", URL: "/"},
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseBalancerDirective(tc.src)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got := viewOf(h)
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
			// Nothing of the balancer may leak into reverse_proxy's fields.
			if h.Upstreams != nil || h.DynamicUpstreamsRaw != nil || h.LoadBalancing != nil || h.HealthChecks != nil {
				t.Fatalf("reverse_proxy upstream fields set: %+v %s %+v %+v", h.Upstreams, h.DynamicUpstreamsRaw, h.LoadBalancing, h.HealthChecks)
			}
		})
	}
}

// TestCaddyfileReverseProxyPassThrough checks that reverse_proxy's own
// subdirectives, placed among the balancer's, still reach reverse_proxy.
func TestCaddyfileReverseProxyPassThrough(t *testing.T) {
	h, err := parseBalancerDirective(`balancer b {
		header_up X-Balanced yes
		balancer_member http://10.0.0.1:8080 {
			route r1
		}
		flush_interval -1
		lbmethod bybusyness
		transport http {
			dial_timeout 2s
			# a nested line that looks like a balancer key is reverse_proxy's
			keepalive 30s
		}
		header_down -Server
		header_up Timeout 5
		trusted_proxies private_ranges
		balancer_member http://10.0.0.2:8080 route=r2
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if h.LBMethod != "bybusyness" || len(h.Members) != 2 || h.Members[1].Route != "r2" {
		t.Fatalf("balancer part: %+v", viewOf(h))
	}
	if h.FlushInterval != caddy.Duration(-1) {
		t.Errorf("flush_interval = %v", h.FlushInterval)
	}
	want := &headers.Handler{
		Request:  &headers.HeaderOps{Set: map[string][]string{"X-Balanced": {"yes"}, "Timeout": {"5"}}},
		Response: &headers.RespHeaderOps{HeaderOps: &headers.HeaderOps{Delete: []string{"Server"}}},
	}
	if !reflect.DeepEqual(h.Headers, want) {
		g, _ := json.Marshal(h.Headers)
		t.Errorf("headers = %s", g)
	}
	var tr reverseproxy.HTTPTransport
	var mod struct {
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(h.TransportRaw, &tr); err != nil || json.Unmarshal(h.TransportRaw, &mod) != nil {
		t.Fatalf("transport %s: %v", h.TransportRaw, err)
	}
	if mod.Protocol != "http" || tr.DialTimeout != caddy.Duration(2*time.Second) || tr.KeepAlive == nil || tr.KeepAlive.IdleConnTimeout != caddy.Duration(30*time.Second) {
		t.Errorf("transport = %s", h.TransportRaw)
	}
	if !slices.Contains(h.TrustedProxies, "10.0.0.0/8") {
		t.Errorf("trusted_proxies = %v", h.TrustedProxies)
	}
}

// TestCaddyfileErrors checks that every bad configuration fails with a message
// that names the key and the line.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		line int
		want []string // substrings of the error
	}{
		{"unknown member key inline", "balancer {\nbalancer_member http://h:1 weight=2\n}", 2, []string{`"weight"`, "unknown member parameter"}},
		{"unknown member key block", "balancer {\nbalancer_member http://h:1 {\nroute r\nweight 2\n}\n}", 4, []string{`"weight"`}},
		{"member key without value", "balancer {\nbalancer_member http://h:1 route\n}", 2, []string{`"route"`, "key=value"}},
		{"block key with two values", "balancer {\nbalancer_member http://h:1 {\nroute a b\n}\n}", 3, []string{"route", "exactly one value"}},
		{"block key without value", "balancer {\nbalancer_member http://h:1 {\nlbset\n}\n}", 3, []string{"lbset", "exactly one value"}},
		{"bad status letter", "balancer {\nbalancer_member http://h:1 status=X\n}", 2, []string{"status=X", "unknown status parameter option"}},
		{"status ending in +", "balancer {\nbalancer_member http://h:1 {\nstatus D+\n}\n}", 3, []string{"status=D+"}},
		{"loadfactor too low", "balancer {\nbalancer_member http://h:1 loadfactor=0.5\n}", 2, []string{"loadfactor", "from 1 to 100"}},
		{"loadfactor too high", "balancer {\nbalancer_member http://h:1 {\nloadfactor 100.01\n}\n}", 3, []string{"loadfactor", "from 1 to 100"}},
		{"loadfactor not a number", "balancer {\nbalancer_member http://h:1 loadfactor=x\n}", 2, []string{"loadfactor"}},
		{"loadfactor NaN", "balancer {\nbalancer_member http://h:1 loadfactor=NaN\n}", 2, []string{"loadfactor"}},
		{"lbset too high", "balancer {\nbalancer_member http://h:1 lbset=100\n}", 2, []string{"lbset", "from 0 to 99"}},
		{"lbset negative", "balancer {\n\nbalancer_member http://h:1 {\nlbset -1\n}\n}", 4, []string{"lbset", "from 0 to 99"}},
		{"route too long", "balancer {\nbalancer_member http://h:1 route=" + strings.Repeat("r", 64) + "\n}", 2, []string{"route", "64"}},
		{"redirect too long", "balancer {\nbalancer_member http://h:1 redirect=" + strings.Repeat("r", 64) + "\n}", 2, []string{"redirect", "64"}},
		{"retry negative", "balancer {\nbalancer_member http://h:1 retry=-1\n}", 2, []string{"retry", "0 or more"}},
		{"retry garbage", "balancer {\nbalancer_member http://h:1 retry=soon\n}", 2, []string{"retry"}},
		{"retry decimal without unit", "balancer {\nbalancer_member http://h:1 retry=1.5\n}", 2, []string{"retry"}},
		{"member timeout zero", "balancer {\nbalancer_member http://h:1 timeout=0\n}", 2, []string{"timeout", "positive duration", "1500ms"}},
		{"hcmethod unknown", "balancer {\nbalancer_member http://h:1 hcmethod=POST\n}", 2, []string{"hcmethod", "POST"}},
		{"hcmethod CPING", "balancer {\nbalancer_member http://h:1 hcmethod=CPING\n}", 2, []string{"hcmethod"}},
		{"hcinterval too short", "balancer {\nbalancer_member http://h:1 hcinterval=50ms\n}", 2, []string{"hcinterval", "100ms"}},
		{"hcpasses negative", "balancer {\nbalancer_member http://h:1 hcpasses=-1\n}", 2, []string{"hcpasses"}},
		{"hcfails not a number", "balancer {\nbalancer_member http://h:1 hcfails=x\n}", 2, []string{"hcfails"}},
		{"hcuri too long", "balancer {\nbalancer_member http://h:1 hcuri=/" + strings.Repeat("u", 63) + "\n}", 2, []string{"hcuri", "64"}},
		{"unsupported pool key", "balancer {\nbalancer_member http://h:1 connectiontimeout=5\n}", 2, []string{`"connectiontimeout"`, "not supported", "dial_timeout"}},
		{"unsupported key in block", "balancer {\nbalancer_member http://h:1 {\nenablereuse on\n}\n}", 3, []string{`"enablereuse"`, "not supported"}},
		{"unsupported hctemplate", "balancer {\nbalancer_member http://h:1 hctemplate=t1\n}", 2, []string{`"hctemplate"`, "not supported"}},
		{"member without URL", "balancer {\nbalancer_member\n}", 2, []string{"balancer_member", "URL"}},
		{"member URL without scheme", "balancer {\nbalancer_member 10.0.0.1:8080\n}", 2, []string{"balancer_member", "it has no scheme; write http://10.0.0.1:8080 (or https://)"}},
		{"member URL with bad scheme", "balancer {\nbalancer_member ajp://h:8009\n}", 2, []string{"balancer_member", "ajp://h:8009"}},
		{"duplicate member", "balancer {\nbalancer_member http://h:80/\nbalancer_member http://H/ route=x\n}", 3, []string{"duplicate member", "http://H/", "line 2"}},
		{"duplicate member default port", "balancer {\nbalancer_member https://h\n\nbalancer_member https://h:443\n}", 4, []string{"duplicate member"}},
		{"member block inside member key", "balancer {\nbalancer_member http://h:1 {\nroute r {\nx\n}\n}\n}", 3, []string{"route", "unexpected block"}},

		{"lbmethod unknown", "balancer {\nbalancer_member http://h:1\nlbmethod heartbeat\n}", 3, []string{"lbmethod", "heartbeat"}},
		{"stickysessionsep two chars", "balancer b {\nstickysessionsep ab\n}", 2, []string{"stickysessionsep", "single character or Off"}},
		{"stickysession too long", "balancer b {\nstickysession " + strings.Repeat("c", 64) + "\n}", 2, []string{"stickysession", "64"}},
		{"stickysession empty cookie", "balancer b {\nstickysession |p\n}", 2, []string{"stickysession"}},
		{"bad on/off", "balancer b {\nnofailover yes\n}", 2, []string{"nofailover", "On or Off"}},
		{"bad on/off scolonpathdelim", "balancer b {\n\nscolonpathdelim 1\n}", 3, []string{"scolonpathdelim", "On or Off"}},
		{"on/off without value", "balancer b {\npersist\n}", 2, []string{"persist", "exactly one value"}},
		{"on/off with two values", "balancer b {\nfailontimeout on off\n}", 2, []string{"failontimeout", "exactly one value"}},
		{"forcerecovery bad", "balancer b {\nforcerecovery maybe\n}", 2, []string{"forcerecovery", "On or Off"}},
		{"maxattempts negative", "balancer b {\nmaxattempts -1\n}", 2, []string{"maxattempts"}},
		{"maxattempts not a number", "balancer b {\nmaxattempts many\n}", 2, []string{"maxattempts"}},
		{"timeout zero", "balancer b {\ntimeout 0\n}", 2, []string{"timeout", "positive duration", "1500ms"}},
		{"timeout garbage", "balancer b {\ntimeout soon\n}", 2, []string{"timeout"}},
		{"growth zero", "balancer b {\ngrowth 0\n}", 2, []string{"growth", "from 1 to 100"}},
		{"growth too high", "balancer b {\ngrowth 101\n}", 2, []string{"growth", "from 1 to 100"}},
		{"nonce too long", "balancer b {\nnonce " + strings.Repeat("n", 37) + "\n}", 2, []string{"nonce", "at most 36 characters"}},
		{"failonstatus out of range", "balancer b {\nfailonstatus 500,600\n}", 2, []string{"failonstatus", `"600"`}},
		{"failonstatus not a code", "balancer b {\nfailonstatus 5xx\n}", 2, []string{"failonstatus", `"5xx"`}},
		{"failonstatus empty", "balancer b {\nfailonstatus ,\n}", 2, []string{"failonstatus"}},
		{"balancer key with block", "balancer b {\nlbmethod bytraffic {\nx\n}\n}", 2, []string{"lbmethod", "unexpected block"}},
		{"cookie rewrite one value", "balancer b {\nproxy_pass_reverse_cookie_path /a\n}", 2, []string{"proxy_pass_reverse_cookie_path", "<internal> <public>"}},
		{"cookie rewrite three values", "balancer b {\nproxy_pass_reverse_cookie_domain a b c\n}", 2, []string{"proxy_pass_reverse_cookie_domain"}},
		{"proxy_pass_reverse relative prefix", "balancer b {\nproxy_pass_reverse app\n}", 2, []string{"proxy_pass_reverse", "app"}},
		{"proxy_pass_reverse relative real", "balancer b {\nproxy_pass_reverse /\nproxy_pass_reverse / app\n}", 3, []string{"proxy_pass_reverse", `"app"`, "url /path"}},
		{"proxy_pass_reverse empty balancer name", "balancer b {\nproxy_pass_reverse / balancer:///x\n}", 2, []string{"proxy_pass_reverse", "balancer name must be"}},
		{"proxy_pass_reverse url without value", "balancer b {\nproxy_pass_reverse / url\n}", 2, []string{"proxy_pass_reverse", "url"}},
		{"proxy_pass_reverse too many", "balancer b {\nproxy_pass_reverse / /a /b\n}", 2, []string{"proxy_pass_reverse"}},
		{"proxy_pass_reverse four values", "balancer b {\nproxy_pass_reverse / url /a /b\n}", 2, []string{"proxy_pass_reverse"}},

		{"upstream on directive line", "balancer b 10.0.0.1:8080 {\nbalancer_member http://h:1\n}", 1, []string{"10.0.0.1:8080", "balancer_member"}},
		{"address as name", "balancer http://10.0.0.1:8080 {\n}", 1, []string{"http://10.0.0.1:8080", "balancer_member"}},
		{"host:port as name", "balancer localhost:8080", 1, []string{"localhost:8080", "balancer_member"}},
		{"no name and no members", "balancer {\nheader_up X-A b\n}", 1, []string{"name", "balancer_member"}},
		{"to", "balancer b {\nto 10.0.0.1:8080\n}", 2, []string{`"to"`, "balancer_member"}},
		{"dynamic", "balancer b {\ndynamic srv x\n}", 2, []string{`"dynamic"`, "balancer_member"}},
		{"lb_policy", "balancer b {\nlb_policy round_robin\n}", 2, []string{`"lb_policy"`, "lbmethod"}},
		{"lb_retries", "balancer b {\nlb_retries 2\n}", 2, []string{`"lb_retries"`, "maxattempts"}},
		{"lb_try_duration", "balancer b {\nlb_try_duration 5s\n}", 2, []string{`"lb_try_duration"`, "timeout"}},
		{"health_uri", "balancer b {\n\nhealth_uri /h\n}", 3, []string{`"health_uri"`, "hcuri"}},
		{"health_interval", "balancer b {\nhealth_interval 5s\n}", 2, []string{`"health_interval"`, "hcinterval"}},
		{"health_status", "balancer b {\nhealth_status 2xx\n}", 2, []string{`"health_status"`, "hcexpr"}},
		{"unhealthy_status", "balancer b {\nunhealthy_status 500\n}", 2, []string{`"unhealthy_status"`, "failonstatus"}},
		{"max_fails", "balancer b {\nmax_fails 3\n}", 2, []string{`"max_fails"`, "retry"}},
		{"unknown subdirective goes to reverse_proxy", "balancer b {\nbogus 1\n}", 2, []string{"unrecognized subdirective bogus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBalancerDirective(tc.src)
			if err == nil {
				t.Fatalf("no error for\n%s", tc.src)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if at := fmt.Sprintf("Testfile:%d", tc.line); !strings.Contains(msg, at) {
				t.Errorf("error %q does not name line %s", msg, at)
			}
		})
	}
}

// TestCaddyfileAdaptErrorNamesFileAndLine goes through the whole Caddyfile
// adapter, as `caddy adapt` does.
func TestCaddyfileAdaptErrorNamesFileAndLine(t *testing.T) {
	_, err := adaptCaddyfileErr(":8080 {\n\tbalancer /api/* app {\n\t\tbalancer_member http://10.0.0.1:8080 lbset=1\n\t\tbalancer_member http://10.0.0.2:8080 status=+Q\n\t}\n}\n")
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:4") || !strings.Contains(err.Error(), "status=+Q") {
		t.Fatalf("error = %v", err)
	}
}

// TestAdaptCaddyfileGolden adapts every testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a line "----------", the expected JSON) and compares the JSON.
func TestAdaptCaddyfileGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatalf("%s: no ---------- separator line", f)
			}
			got, err := adaptCaddyfileErr(src + "\n")
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("adapter output is not JSON: %v", err)
			}
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatalf("expected part of %s is not JSON: %v", f, err)
			}
			if !reflect.DeepEqual(g, w) {
				var gi, wi bytes.Buffer
				_ = json.Indent(&gi, got, "", "\t")
				wb, _ := json.MarshalIndent(w, "", "\t")
				_ = json.Indent(&wi, wb, "", "\t")
				t.Fatalf("adapted JSON differs\n--- got\n%s\n--- want\n%s", gi.String(), wi.String())
			}
		})
	}
}

// TestCaddyfileRunsBalancer runs an adapted Caddyfile end to end: the
// directive is ordered without an `order` option, members pasted in httpd's
// inline form take their loadfactors, and reverse_proxy's header_down applies.
func TestCaddyfileRunsBalancer(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
}
http://127.0.0.1:%d {
	balancer /lb/* caddyfile_run {
		balancer_member %s loadfactor=1
		balancer_member %s {
			loadfactor 3
		}
		header_down X-Via balancer
	}
	@other not path /lb/*
	respond @other "not balanced"
}
`, port, bs[0].URL, bs[1].URL))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	got := sequence(t, base+"/lb/x", 8)
	// byrequests with lbfactors 100 and 300 (docs/behaviour.md §5.1): b2 b1 b2 b2, repeated.
	if want := "b2 b1 b2 b2 b2 b1 b2 b2"; strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if r := get(t, base+"/lb/y"); r.Header.Get("X-Via") != "balancer" {
		t.Errorf("header_down not applied: %v", r.Header)
	}
	if r := get(t, base+"/other"); r.Body != "not balanced" {
		t.Errorf("matcher: /other answered %q by %q", r.Body, r.Backend)
	}
}
