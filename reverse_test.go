package caddybalancer

import "testing"

// TestLocationReverseMap reproduces the observed table of spec §9.2
// (members http://127.0.0.1:9001/app and :9002/app for the first rule
// "/front balancer://rv/sub", members :9001 and :9002 for "/f2/ balancer://rv2/").
func TestLocationReverseMap(t *testing.T) {
	rv := []string{"http://127.0.0.1:9001/app", "http://127.0.0.1:9002/app"}
	rv2 := []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"}
	// Both rules apply in order, first match wins, as in httpd's rule list.
	both := func(v, host string) string {
		if out := locationReverseMap(v, "/front", "/sub", rv, "http", host); out != v {
			return out
		}
		return locationReverseMap(v, "/f2/", "/", rv2, "http", host)
	}
	for _, c := range []struct{ in, host, want string }{
		{"http://127.0.0.1:9002/app/sub/target?q=1", "127.0.0.1:8080", "http://127.0.0.1:8080/front/target?q=1"},
		{"http://127.0.0.1:9001/app/other", "127.0.0.1:8080", "http://127.0.0.1:8080/f2//app/other"},
		{"HTTP://127.0.0.1:9001/app/SUB/target", "127.0.0.1:8080", "http://127.0.0.1:8080/f2//app/SUB/target"},
		{"/app/sub/target", "127.0.0.1:8080", "/app/sub/target"},
		{"http://127.0.0.1:9001/x/y", "127.0.0.1:8080", "http://127.0.0.1:8080/f2//x/y"},
		{"http://127.0.0.1:9003/x/y", "127.0.0.1:8080", "http://127.0.0.1:9003/x/y"},
		{"http://127.0.0.1:9001", "127.0.0.1:8080", "http://127.0.0.1:8080/f2/"},
		{"http://127.0.0.1:9001/x/y", "www.example.org", "http://www.example.org/f2//x/y"},
	} {
		if got := both(c.in, c.host); got != c.want {
			t.Errorf("%s (Host %s): got %s, want %s", c.in, c.host, got, c.want)
		}
	}
}

// TestCookieReverseMap reproduces spec §9.3's observed table and the
// httpd-tests expectations.
func TestCookieReverseMap(t *testing.T) {
	path := []CookieRewrite{{Internal: "/app/sub", Public: "/front"}}
	dom := []CookieRewrite{{Internal: "backend.internal", Public: "public.example.com"}}
	for _, c := range []struct{ in, want string }{
		{"a=b; path=/app/sub/x; domain=backend.internal", "a=b; path=/front; domain=public.example.com"},
		{"a=b; Path=/app/subx; Domain=BACKEND.internal.com; HttpOnly", "a=b; Path=/front; Domain=public.example.com; HttpOnly"},
		{"a=b;path=/other;domain=x.backend.internal", "a=b;path=/other;domain=x.backend.internal"},
		{"path=/app/sub; a=b", "path=/front; a=b"},
	} {
		if got := cookieReverseMap(c.in, path, dom); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	tp := []CookieRewrite{{Internal: "/local", Public: "/remote"}}
	td := []CookieRewrite{{Internal: "local", Public: "remote"}}
	for _, c := range []struct{ in, want string }{
		{"fakedomain=local;domain=local", "fakedomain=local;domain=remote"},
		{"fakepath=/local;path=/local", "fakepath=/local;path=/remote"},
		{"domain=local;path=/local;foo=bar", "domain=remote;path=/remote;foo=bar"},
	} {
		if got := cookieReverseMap(c.in, tp, td); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}
