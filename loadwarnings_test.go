package caddybalancer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What Caddy's log tells a user at load about balancers that cannot serve:
// a block that defines a balancer without members, and a name that only
// refers to a balancer no block defines. Both answer 503 to everything.

// logWarnings returns Caddy's warnings in a JSON log file, each as
// "logger: msg balancer=<name>".
func logWarnings(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Level, Logger, Msg, Balancer string
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Level != "warn" {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s balancer=%s", e.Logger, e.Msg, e.Balancer))
	}
	return out
}

func TestLoadWarnsAboutBalancersWithoutMembers(t *testing.T) {
	bs := startBackends(t, 1)
	port := freePort(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	log {
		output file %s
		format json
	}
}

http://127.0.0.1:%d {
	handle /empty/* {
		balancer empty {
			lbmethod bytraffic
		}
	}
	handle /typo/* {
		balancer mycluser
	}
	handle /shared/* {
		balancer mycluster
	}
	balancer mycluster {
		balancer_member %s
	}
}
`, logFile, port, bs[0].URL))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// What the warnings are about: these answer 503, the others do not.
	for path, want := range map[string]int{"/empty/x": 503, "/typo/x": 503, "/shared/x": 200, "/x": 200} {
		if r := get(t, base+path); r.Status != want {
			t.Errorf("GET %s: %d, want %d: %s", path, r.Status, want, r.Body)
		}
	}
	got := logWarnings(t, logFile)
	want := []string{
		"http.handlers.balancer: balancer has no members: every request it gets is answered 503; add balancer_member lines (httpd's BalancerMember) balancer=empty",
		"balancer: balancer is only referred to by name and no balancer block defines it: it has no members, every request it gets is answered 503; check the name, or add balancer_member lines balancer=mycluser",
	}
	var relevant []string
	for _, w := range got {
		if strings.Contains(w, "balancer=") && !strings.HasSuffix(w, "balancer=") {
			relevant = append(relevant, w)
		}
	}
	if strings.Join(relevant, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings about balancers:\n%s\nwant:\n%s\n(all warnings:\n%s)", strings.Join(relevant, "\n"), strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}
