package caddybalancer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/lbset/caddy-balancer/config"
)

// Slow start: the Caddyfile and JSON keys, and the share of a recovering
// member measured through Caddy on real sockets, with the balancer's clock
// stepped by the test.

// TestSlowStartCaddyfile: slowstart on the balancer and on a member, in
// both member forms; bad values fail with the rule and the value.
func TestSlowStartCaddyfile(t *testing.T) {
	h, err := parseBalancerDirective(`balancer ss {
		slowstart 30s
		balancer_member http://10.0.0.1 slowstart=5
		balancer_member http://10.0.0.2 {
			slowstart 0
		}
		balancer_member http://10.0.0.3
	}`)
	if err != nil {
		t.Fatal(err)
	}
	five, zero := caddy.Duration(5*time.Second), caddy.Duration(0)
	if h.SlowStart != caddy.Duration(30*time.Second) || len(h.Members) != 3 ||
		h.Members[0].SlowStart == nil || *h.Members[0].SlowStart != five ||
		h.Members[1].SlowStart == nil || *h.Members[1].SlowStart != zero || h.Members[2].SlowStart != nil {
		t.Fatalf("parsed %+v", h.Balancer)
	}
	cfg, err := h.Engine()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SlowStart != 30*time.Second || *cfg.Members[0].SlowStart != 5*time.Second ||
		*cfg.Members[1].SlowStart != 0 || cfg.Members[2].SlowStart != nil {
		t.Fatalf("engine config %+v", cfg)
	}
	for _, c := range []struct{ src, want string }{
		{"slowstart 25h", "slowstart must be a duration from 0 to 24h (a number of seconds or a duration such as 30s; 0 is off), not 25h0m0s"},
		{"slowstart soon", `slowstart must be a duration from 0 to 24h (a number of seconds or a duration such as 30s; 0 is off), not "soon"`},
		{"slowstart -1s", "slowstart must be a duration from 0 to 24h"},
		{"slowstart", "slowstart: want exactly one value, got 0"},
		{"balancer_member http://10.0.0.1 slowstart=2d", "balancer_member http://10.0.0.1: slowstart must be a duration from 0 to 24h"},
		{"balancer_member http://10.0.0.1 {\n slowstart 1 2\n}", "slowstart: want exactly one value, got 2"},
	} {
		_, err := parseBalancerDirective("balancer ss {\n" + c.src + "\nbalancer_member http://10.0.0.9\n}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
	// httpd has no slowstart: the httpd adapter refuses it as httpd does.
	_, _, err = caddyconfig.GetAdapter("httpd").Adapt([]byte("Listen 8080\n<Proxy balancer://x>\nBalancerMember http://10.0.0.1 slowstart=5\n</Proxy>\nProxyPass / balancer://x/\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown Worker parameter "slowstart"`) {
		t.Errorf("httpd adapter with slowstart=: %v", err)
	}
	// JSON: the member's 0 is kept (it turns slow start off for the member).
	var jb config.Balancer
	if err := json.Unmarshal([]byte(`{"slowstart":"1m","members":[{"url":"http://10.0.0.1","slowstart":0}]}`), &jb); err != nil {
		t.Fatal(err)
	}
	if jb.SlowStart != caddy.Duration(time.Minute) || jb.Members[0].SlowStart == nil || *jb.Members[0].SlowStart != 0 {
		t.Fatalf("JSON %+v", jb)
	}
}

// steppedClock is a balancer clock the test moves.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestSlowStartRealSockets: b2 is disabled and enabled again through the
// JSON API on a balancer with slowstart 10s. In each second of the window
// (the balancer's clock is stepped by the test) b2 serves weight/(100+weight)
// of 100 requests through Caddy, weight being its loadfactor ×100 times the
// time since it came back over the window; the API and the metrics show
// the weight as its effective loadfactor; after the window b2 serves its
// configured share, one half. For byrequests, bybusyness (the requests come
// one at a time) and bytraffic (every answer the same size).
func TestSlowStartRealSockets(t *testing.T) {
	const window, perSlice = 10 * time.Second, 100
	for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
		t.Run(method, func(t *testing.T) {
			bs := startBackends(t, 2)
			port, aport := freePort(t), freePort(t)
			site := fmt.Sprintf("http://127.0.0.1:%d", port)
			apiURL := fmt.Sprintf("http://localhost:%d/balancers/ssreal/members/r2", aport)
			loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	balancer ssreal {
		lbmethod %s
		slowstart 10s
		balancer_member %s route=r1
		balancer_member %s route=r2
	}
}`, aport, site, method, bs[0].URL, bs[1].URL))
			clk := &steppedClock{t: time.Now()}
			lookupBalancer("ssreal").SetClock(clk.Now)
			sequence(t, site+"/x", 20)
			if m := decodeMember(t, adminDo(t, "PATCH", apiURL, `{"status":"+D"}`)); m.Flags != "OD" {
				t.Fatalf("after +D: %+v", m)
			}
			sequence(t, site+"/x", 40) // b1 alone; under bytraffic b2 falls behind in bytes
			start := clk.Now()
			if m := decodeMember(t, adminDo(t, "PATCH", apiURL, `{"status":"-D"}`)); m.Flags != "O" || m.EffectiveLoadFactor != 0.01 ||
				m.SlowStart != "10s" || m.SlowStartEnds == nil || !m.SlowStartEnds.Equal(start.Add(window)) {
				t.Fatalf("after -D: %+v", m)
			}
			var shares []string
			for k := 0; k <= 11; k++ {
				elapsed := time.Duration(k) * time.Second
				clk.set(start.Add(elapsed))
				w := max(1, min(100, int(100*elapsed/window)))
				if m := decodeMember(t, adminDo(t, "GET", apiURL, "")); m.EffectiveLoadFactor != float64(w)/100 {
					t.Fatalf("second %d: effective_loadfactor %v, want %v", k, m.EffectiveLoadFactor, float64(w)/100)
				}
				if k == 5 {
					if v := scrapeMetrics(t, fmt.Sprintf("127.0.0.1:%d", aport))[series("caddy_balancer_member_effective_loadfactor", "ssreal", bs[1].URL)]; v != 0.5 {
						t.Fatalf("second 5: metric effective loadfactor %v, want 0.5", v)
					}
				}
				got := 0
				for _, b := range sequence(t, fmt.Sprintf("%s/s%d", site, k%10), perSlice) {
					if b == "b2" {
						got++
					}
				}
				want := float64(perSlice) * float64(w) / float64(100+w)
				shares = append(shares, fmt.Sprintf("%d:%d/%.1f", k, got, want))
				if math.Abs(float64(got)-want) > 3 {
					t.Errorf("second %d (weight %d): b2 served %d of %d, want %.1f", k, w, got, perSlice, want)
				}
			}
			t.Logf("b2's share per second (got/want): %s", strings.Join(shares, " "))
			if m := decodeMember(t, adminDo(t, "GET", apiURL, "")); m.EffectiveLoadFactor != 1 || m.SlowStartEnds != nil {
				t.Fatalf("after the window: %+v", m)
			}
		})
	}
}

// TestOperationsExampleAdapts: the README's example configuration for
// drain, slow start and the command, testdata/operations.caddyfile, adapts,
// with the slow-start windows it shows.
func TestOperationsExampleAdapts(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "operations.caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	js := string(adaptCaddyfile(t, string(src)))
	for _, want := range []string{`"handler":"balancer"`, `"name":"app"`, `"slowstart":30000000000`, `"growth":1`,
		`{"route":"web3","slowstart":5000000000,"url":"http://127.0.0.1:9103"}`} {
		if !strings.Contains(js, want) {
			t.Errorf("adapted operations.caddyfile lacks %s:\n%s", want, js)
		}
	}
}
