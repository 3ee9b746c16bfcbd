package proxypassreverse

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lbset/caddy-balancer/balancer"
)

// TestLocationReverseMap reproduces the observed table of docs/behaviour.md §9.2
// (members http://127.0.0.1:9001/app and :9002/app for the first rule
// "/front balancer://rv/sub", members :9001 and :9002 for "/f2/ balancer://rv2/").
func TestLocationReverseMap(t *testing.T) {
	rv := []string{"http://127.0.0.1:9001/app", "http://127.0.0.1:9002/app"}
	rv2 := []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"}
	// Both rules apply in order, first match wins, as in httpd's rule list.
	rules := []resolvedRule{{prefix: "/front", part: "/sub", members: rv}, {prefix: "/f2/", members: rv2}}
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
		if got := locationReverseMap(c.in, rules, "http", c.host); got != c.want {
			t.Errorf("%s (Host %s): got %s, want %s", c.in, c.host, got, c.want)
		}
	}
}

// TestLocationReverseMapPlain is the plain-URL branch of
// ap_proxy_location_reverse_map and the order of a mixed rule list.
func TestLocationReverseMapPlain(t *testing.T) {
	rules := []resolvedRule{
		{prefix: "/f2/", members: []string{"http://10.0.0.1:8080"}},
		{prefix: "/p2", plain: true, real: "/internal"},
		{prefix: "/plain/", plain: true, real: "http://backend.internal:8081/"},
		{prefix: "/", members: []string{"http://10.0.0.2/app/"}},
		{prefix: "http://public.example", plain: true, real: "http://abs.internal"},
		{prefix: "/never", plain: true, real: ""},
	}
	const host = "front.example:8080"
	for _, c := range []struct{ in, want string }{
		// A path rule compares the path of an absolute value, or a relative one whole.
		{"/internal/y", "http://front.example:8080/p2/y"},
		{"/INTERNAL", "http://front.example:8080/p2"},
		{"/internalx", "http://front.example:8080/p2x"},
		{"http://backend.internal:8081/internal/z", "http://front.example:8080/p2/z"},
		{"https://anything.example/internal/z?q", "http://front.example:8080/p2/z?q"},
		{"internal/y", "internal/y"},
		// "://" anywhere in the value counts (strstr): the path is then
		// taken after it.
		{"/internal/a?u=http://x/y", "/internal/a?u=http://x/y"},
		{"/other?u=http://x/internal/q", "http://front.example:8080/p2/q"},
		// An absolute value without a path is compared whole.
		{"http://backend.internal:8081", "http://backend.internal:8081"},
		// A URL rule: case-insensitive prefix.
		{"http://backend.internal:8081/x?y", "http://front.example:8080/plain/x?y"},
		{"HTTP://BACKEND.internal:8081/x", "http://front.example:8080/plain/x"},
		// Order: the balancer rule comes first.
		{"http://10.0.0.1:8080/internal/x", "http://front.example:8080/f2//internal/x"},
		// The result is an absolute URL when it starts with a scheme, not when
		// it merely contains "://".
		{"http://10.0.0.1:8080/x?next=http://y/", "http://front.example:8080/f2//x?next=http://y/"},
		{"http://abs.internal/q", "http://public.example/q"},
		// A member name with a trailing '/' and no PART: fake "/" + rest.
		{"http://10.0.0.2/app/x", "http://front.example:8080/x"},
		{"", ""},
	} {
		if got := locationReverseMap(c.in, rules, "http", host); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	if got := locationReverseMap("/internal", rules, "https", "front.example:443"); got != "https://front.example/p2" {
		t.Errorf("https default port: got %q", got)
	}
}

// TestReverseMapperResolve: rules name this handler's balancer (empty or its
// own name) or another one looked up at response time; a name that is no
// balancer makes the rule a plain one, as in httpd.
func TestReverseMapperResolve(t *testing.T) {
	rules := []Rule{
		{},
		{Prefix: "/o", Balancer: "OWN", Path: "/"},
		{Prefix: "/x", Balancer: "nosuchbalancer-reverse-test", Path: "/p"},
		{Prefix: "/u", URL: "http://u/"},
		{Prefix: "/b", Balancer: "Other-Reverse-Test", Path: "/q"},
	}
	own, err := balancer.New(balancer.Config{Name: "own", Members: []balancer.MemberConfig{{URL: "http://10.0.0.1:8080/a"}}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := balancer.New(balancer.Config{Name: "other-reverse-test", Members: []balancer.MemberConfig{{URL: "http://10.0.0.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) *balancer.Balancer {
		if name == "other-reverse-test" {
			return other
		}
		return nil
	}
	rm := New("Own", rules, nil, nil, lookup)
	got := rm.resolve(own)
	want := []resolvedRule{
		{prefix: "/", members: []string{"http://10.0.0.1:8080/a"}},
		{prefix: "/o", members: []string{"http://10.0.0.1:8080/a"}},
		{prefix: "/x", plain: true, real: "balancer://nosuchbalancer-reverse-test/p", part: "/p"},
		{prefix: "/u", plain: true, real: "http://u/"},
		{prefix: "/b", members: []string{"http://10.0.0.2"}, part: "/q"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolve:\n got  %+v\n want %+v", got, want)
	}
	for _, c := range []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{URL: "/a", Path: "/b"}}, "cannot go with"},
		{[]Rule{{URL: "/a", Balancer: "b"}}, "cannot go with"},
		{[]Rule{{}, {Path: "sub"}}, "proxy_pass_reverse[1]: path \"sub\""},
		{[]Rule{{Balancer: "balancer://x"}}, "balancer name"},
	} {
		err := Validate(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.rules, err, c.want)
		}
	}
	if err := Validate([]Rule{{}, {Prefix: "/a", Balancer: "b", Path: "/c"}, {URL: "x"}}); err != nil {
		t.Errorf("valid rules: %v", err)
	}
}

// TestCookieReverseMap reproduces docs/behaviour.md §9.3's observed table and the
// httpd-tests expectations.
func TestCookieReverseMap(t *testing.T) {
	path := []CookieRule{{Internal: "/app/sub", Public: "/front"}}
	dom := []CookieRule{{Internal: "backend.internal", Public: "public.example.com"}}
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
	tp := []CookieRule{{Internal: "/local", Public: "/remote"}}
	td := []CookieRule{{Internal: "local", Public: "remote"}}
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
