package caddybalancer

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lbset/caddy-balancer/balancer"
)

// Fuzz target of the Caddyfile directive (the manager's and the JSON API's
// are in packages manager and api). Plain `go test` runs the seeds (f.Add
// and testdata/fuzz/<Target>/); CI (.ci/fuzz.sh) fuzzes it for a fixed
// number of executions:
//
//	go test -run '^$' -fuzz '^FuzzCaddyfileBalancer$' -fuzztime 6000x .

// FuzzCaddyfileBalancer adapts a hostile balancer block through the
// Caddyfile adapter; when it adapts, the handler's configuration must turn
// into an engine configuration or an error, never a panic.
func FuzzCaddyfileBalancer(f *testing.F) {
	for _, s := range []string{
		"foo {\n\tbalancer_member http://127.0.0.1:1 route=r1 loadfactor=2.5 lbset=1 status=+H-I\n\tbalancer_member http://127.0.0.1:2\n}",
		"balancer://Foo/x {\n\tlbmethod bybusyness\n\tstickysession JSESSIONID|jsessionid\n\tstickysessionsep off\n\tnofailover on\n\tmaxattempts 3\n\ttimeout 5\n\tfailonstatus 500,503 502\n\tgrowth 5\n\tnonce None\n\tbalancer_member http://h:1\n}",
		"{\n\tbalancer_member http://127.0.0.1:1 {\n\t\troute r1\n\t\thcmethod GET\n\t\thcuri /h\n\t\thcexpr %{REQUEST_STATUS} =~ /^2/\n\t\thcinterval 1s\n\t}\n}",
		"x {\n\tbalancer_member http://a:1\n\tbalancer_member HTTP://A:1/\n}",
		"x {\n\tbalancer_member http://a:1 loadfactor=1e400 retry=-1 timeout=0\n}",
		"x {\n\troute_cookie path=/; HttpOnly\n\tproxy_pass_reverse / balancer://x/app\n\tproxy_pass_reverse_cookie_domain a b\n\theader_up Host {upstream_hostport}\n\tbalancer_member http://a:1\n}",
		"x {\n\tto http://a:1\n}",
		"x y z",
		"{\n}",
		"x {\n\tbalancer_member http://a:1 status=\n\tbalancer_member http://b:1 status=+\n}",
		"@m path /x\n",
		"x {\n\t@err status 500\n\thandle_response @err {\n\t\trespond 502\n\t}\n\tbalancer_member http://a:1\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		if strings.Contains(strings.ToLower(block), "import") {
			return // would read files
		}
		src := "{\n\tadmin off\n}\nhttp://127.0.0.1:1 {\n\tbalancer " + block + "\n}\n"
		js, err := adaptCaddyfileErr(src)
		if err != nil {
			return
		}
		var cfg any
		if err := json.Unmarshal(js, &cfg); err != nil {
			t.Fatalf("adapter produced invalid JSON: %v", err)
		}
		for _, raw := range findHandlers(cfg, "balancer") {
			var h Handler
			if err := json.Unmarshal(raw, &h); err != nil {
				continue // reverse_proxy fields the fuzzer filled with junk
			}
			ec, err := h.Engine()
			if err != nil {
				continue
			}
			if _, err := balancer.New(ec); err != nil {
				continue
			}
		}
	})
}

// findHandlers returns the JSON of every handler object with that name.
func findHandlers(v any, name string) []json.RawMessage {
	var out []json.RawMessage
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == name {
			js, _ := json.Marshal(x)
			out = append(out, js)
		}
		for _, c := range x {
			out = append(out, findHandlers(c, name)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, findHandlers(c, name)...)
		}
	}
	return out
}
