// Package balancertest holds checks shared by the tests of several packages:
// the engine's ranges after hostile input, and markup injection in the
// manager's pages.
package balancertest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/lbset/caddy-balancer/balancer"
)

// FuzzConfig is the balancer the fuzz targets of the manager and the JSON
// API work on: nonce "n", two members with routes r1 and r2, two free slots.
func FuzzConfig(name string) balancer.Config {
	return balancer.Config{
		Name: name, Nonce: "n", NonceSet: true, Growth: 2, ForceRecovery: true,
		StickySession: "JSESSIONID", StickyPath: "jsessionid", StickySeparator: '.',
		Members: []balancer.MemberConfig{
			{URL: "http://127.0.0.1:1", Route: "r1"},
			{URL: "http://127.0.0.1:2/app", Route: "r2", Redirect: "r1"},
		},
	}
}

// CheckRanges fails when a balancer's fields are outside httpd's ranges.
func CheckRanges(t testing.TB, b *balancer.Balancer) {
	t.Helper()
	v := b.View()
	if _, err := balancer.MethodByName(v.LBMethod); err != nil {
		t.Fatalf("lbmethod %q", v.LBMethod)
	}
	if v.Timeout < 0 || v.MaxAttempts < 0 || v.MaxAttempts > 99 || len(v.StickySession) > 63 || len(v.StickyPath) > 63 ||
		len(v.Members) > v.MaxMembers {
		t.Fatalf("balancer out of range: %+v", v)
	}
	for _, m := range v.Members {
		if m.LoadFactor < 100 || m.LoadFactor > 10000 || m.LBSet < 0 || m.LBSet > 99 || len(m.Route) > 63 ||
			len(m.Redirect) > 63 || m.Busy < 0 || m.HC.Validate() != nil {
			t.Fatalf("member out of range: %+v", m.MemberState)
		}
	}
}

// htmlTags are the tags the manager's HTML page is made of; any other tag
// in a page is injected markup.
var htmlTags = map[string]bool{
	"!DOCTYPE": true, "html": true, "head": true, "title": true, "style": true, "body": true, "h1": true,
	"dl": true, "dt": true, "hr": true, "h3": true, "a": true, "table": true, "tr": true, "th": true,
	"td": true, "br": true, "form": true, "input": true, "label": true, "select": true, "option": true,
}

var reTagName = regexp.MustCompile(`^<(/?)([!?A-Za-z][A-Za-z0-9:]*)`)

// HTMLTag reports whether a tag is one of the manager page's own.
func HTMLTag(name string) bool { return htmlTags[name] }

// XMLTag reports whether a tag is one of the manager XML's own.
func XMLTag(name string) bool { return name == "?xml" || strings.HasPrefix(name, "httpd:") }

// CheckMarkup fails when the page holds a tag that is not one of allowed, or
// the raw text of any payload.
func CheckMarkup(t testing.TB, what, page string, allowed func(string) bool, payloads ...string) {
	t.Helper()
	for i := strings.IndexByte(page, '<'); i >= 0; {
		m := reTagName.FindStringSubmatch(page[i:])
		if m == nil || !allowed(m[2]) {
			end := min(len(page), i+60)
			t.Fatalf("%s: injected or unknown markup at %d: %q", what, i, page[i:end])
		}
		j := strings.IndexByte(page[i+1:], '<')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	for _, p := range payloads {
		if strings.Contains(page, p) {
			t.Fatalf("%s: payload %q appears unescaped", what, p)
		}
	}
}
