package config

import (
	"testing"

	"github.com/lbset/caddy-balancer/balancer"
)

// The stickysession value means the same in the configuration as in the
// balancer-manager and the admin API: httpd's set_balancer_param splits it at
// the first '|', and "COOKIE|" names no URL parameter.
func TestStickySessionValue(t *testing.T) {
	for _, tc := range []struct{ in, cookie, path string }{
		{"JSESSIONID", "JSESSIONID", "JSESSIONID"},
		{"JSESSIONID|jsessionid", "JSESSIONID", "jsessionid"},
		{"JSESSIONID|", "JSESSIONID", ""},
		{"A|b|c", "A", "b|c"},
	} {
		b := Balancer{Members: []Member{{URL: "http://127.0.0.1:1"}}}
		if err := b.SetParam("stickysession", tc.in); err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		cfg, err := b.Engine()
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if cfg.StickySession != tc.cookie || cfg.StickyPath != tc.path {
			t.Errorf("stickysession %q: cookie %q, URL parameter %q; want %q, %q", tc.in, cfg.StickySession, cfg.StickyPath, tc.cookie, tc.path)
		}
		if ss := balancer.ParseStickySession(tc.in); ss.Cookie != tc.cookie || ss.Path != tc.path {
			t.Errorf("ParseStickySession(%q) = %+v; want %q, %q", tc.in, ss, tc.cookie, tc.path)
		}
	}
	b := Balancer{}
	if err := b.SetParam("stickysession", "|x"); err == nil {
		t.Error(`stickysession "|x" accepted`)
	}
}
