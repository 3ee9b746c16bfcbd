package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/api"
	"github.com/lbset/caddy-balancer/internal/caddybin"
	"github.com/lbset/caddy-balancer/internal/redistest"
)

// End-to-end tests of the fleet sync: Caddy processes (this repository's
// binary) sharing one real redis-server, or one storage directory, driven
// as operators drive them (the JSON API, the manager form, Ansible's
// apache2_mod_proxy) and checked as they would check them (each node's JSON
// API, which member serves).

// fleetSetup is a fleet's shared parts: the store and the backends.
type fleetSetup struct {
	t       *testing.T
	store   string // the balancer_fleet store lines
	global  string // more global options (storage)
	members []*backend
}

// fleetCaddyfile is node name's Caddyfile: admin and site addresses, the
// fleet option, and balancer web over the setup's members (lbsets as given
// by lbset, "" for none).
func (f *fleetSetup) caddyfile(name, admin, site string, memberExtra ...string) string {
	var ms strings.Builder
	for i, b := range f.members {
		extra := ""
		if i < len(memberExtra) {
			extra = " " + memberExtra[i]
		}
		fmt.Fprintf(&ms, "\t\tbalancer_member %s route=r%d%s\n", b.URL, i+1, extra)
	}
	return fmt.Sprintf(`{
	admin %s
	persist_config off
%s	balancer_fleet {
%s
		key_prefix e2e
		node %s
	}
}
http://%s {
	balancer web {
		growth 2
		nonce n-web
%s	}
}
`, admin, f.global, f.store, name, site, ms.String())
}

// fleetNode is one Caddy process of a fleet.
type fleetNode struct {
	*caddybin.Process
	site string
}

func (f *fleetSetup) start(name string, memberExtra ...string) *fleetNode {
	admin, site := caddybin.FreeAddr(f.t), caddybin.FreeAddr(f.t)
	p := caddybin.Start(f.t, name, f.caddyfile(name, admin, site, memberExtra...), admin)
	return &fleetNode{Process: p, site: site}
}

func (n *fleetNode) api() string { return "http://" + n.Admin + "/balancers/" + n.balancerName() }

// balancerName is the balancer the fleet tests use: web, or fleet for the
// demo's nodes.
func (n *fleetNode) balancerName() string {
	if n.site == "" {
		return "fleet"
	}
	return "web"
}

func (n *fleetNode) balancer(t *testing.T) api.Balancer {
	t.Helper()
	return decodeBalancer(t, adminDo(t, "GET", n.api(), ""))
}

// member is the node's view of the member with that route.
func (n *fleetNode) member(t *testing.T, route string) api.Member {
	t.Helper()
	for _, m := range n.balancer(t).Members {
		if m.Route == route {
			return m
		}
	}
	return api.Member{}
}

// awaitFleet polls until cond holds on every node.
func awaitFleet(t *testing.T, what string, nodes []*fleetNode, cond func(api.Balancer) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for {
			b := n.balancer(t)
			if cond(b) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not on node %s:\n%+v\nlog:\n%s", what, n.Name, b, tail(n.Output(), 3000))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func memberByRoute(b api.Balancer, route string) api.Member {
	for _, m := range b.Members {
		if m.Route == route {
			return m
		}
	}
	return api.Member{}
}

func hasFlag(m api.Member, f string) bool { return strings.Contains(m.Flags, f) }

// TestFleetRedis: three Caddy processes share one Redis. A change on A
// through the JSON API, the manager form and Ansible appears on B and C;
// concurrent conflicting writes on A and B end identical on A, B and C; a
// node started later has the state; the whole fleet restarted keeps it; a
// member whose configuration changed on one node drops the override there.
func TestFleetRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Caddy processes")
	}
	rs := redistest.Start(t)
	f := &fleetSetup{t: t, store: "\t\tredis " + rs.Addr, members: []*backend{
		startBackendAt(t, "b1", "127.0.0.2"), startBackendAt(t, "b2", "127.0.0.3"), startBackendAt(t, "b3", "127.0.0.4")}}
	a, b, c := f.start("a"), f.start("b"), f.start("c")
	all := []*fleetNode{a, b, c}

	// The JSON API on A.
	if r := adminDo(t, "PATCH", a.api()+"/members/r1", `{"status": "+N", "loadfactor": 3}`); r.Status != 200 {
		t.Fatalf("PATCH on A: %d %s", r.Status, r.Body)
	}
	awaitFleet(t, "r1 drained with loadfactor 3", all, func(bl api.Balancer) bool {
		m := memberByRoute(bl, "r1")
		return hasFlag(m, "N") && m.LoadFactor == 3
	})
	// The manager form on A's admin endpoint, as curl scripts post it.
	form := "b=web&nonce=n-web&w=" + url.QueryEscape(f.members[1].URL) + "&w_status_D=1&w_ls=2"
	req, _ := http.NewRequest("POST", "http://"+a.Admin+"/balancer-manager", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := do(t, req); r.Status != 200 {
		t.Fatalf("manager form on A: %d", r.Status)
	}
	awaitFleet(t, "r2 disabled in lbset 2", all, func(bl api.Balancer) bool {
		m := memberByRoute(bl, "r2")
		return hasFlag(m, "D") && m.LBSet == 2
	})
	// Ansible's apache2_mod_proxy against A.
	ans := newAnsibleRunner(t)
	ans.run(t, "balancer_vhost="+a.Admin+" balancer_url_suffix=/balancer-manager/ member_host=127.0.0.4 state=hot_standby", false)
	awaitFleet(t, "r3 hot standby (Ansible)", all, func(bl api.Balancer) bool { return hasFlag(memberByRoute(bl, "r3"), "H") })
	// A member added on B.
	extra := startBackends(t, 1)[0]
	if r := adminDo(t, "POST", b.api()+"/members", fmt.Sprintf(`{"url": %q, "route": "r9", "status": "-D"}`, extra.URL)); r.Status != 201 {
		t.Fatalf("POST on B: %d %s", r.Status, r.Body)
	}
	awaitFleet(t, "r9 added, enabled", all, func(bl api.Balancer) bool {
		m := memberByRoute(bl, "r9")
		return m.Dynamic && !hasFlag(m, "D")
	})
	// C serves r9 (the only usable member of lbset 0 besides drained r1).
	if got := traffic(t, "http://"+c.site+"/", 4); got[extra.Name] != 4 {
		t.Errorf("C's answers: %v, want all from the member added on B", got)
	}

	// Concurrent conflicting writes on A and B.
	var wg sync.WaitGroup
	for i, n := range []*fleetNode{a, b} {
		wg.Add(1)
		go func(i int, n *fleetNode) {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				body := fmt.Sprintf(`{"lbset": %d, "status": "%sI"}`, (k*7+i*3)%10, map[bool]string{true: "+", false: "-"}[(k+i)%2 == 0])
				adminDo(t, "PATCH", n.api()+"/members/r9", body)
			}
		}(i, n)
	}
	wg.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ma, mb, mc := a.member(t, "r9"), b.member(t, "r9"), c.member(t, "r9")
		if ma.LBSet == mb.LBSet && mb.LBSet == mc.LBSet && ma.Flags == mb.Flags && mb.Flags == mc.Flags {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after concurrent writes the nodes differ: A %d %s, B %d %s, C %d %s",
				ma.LBSet, ma.Flags, mb.LBSet, mb.Flags, mc.LBSet, mc.Flags)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := a.member(t, "r9")

	// A node started later has the state.
	d := f.start("d")
	awaitFleet(t, "the fleet's state on the late node D", []*fleetNode{d}, func(bl api.Balancer) bool {
		r9 := memberByRoute(bl, "r9")
		return hasFlag(memberByRoute(bl, "r1"), "N") && hasFlag(memberByRoute(bl, "r2"), "D") &&
			hasFlag(memberByRoute(bl, "r3"), "H") && r9.LBSet == want.LBSet && r9.Flags == want.Flags
	})

	// The whole fleet restarted keeps it.
	for _, n := range []*fleetNode{a, b, c, d} {
		n.Stop()
	}
	for _, n := range []*fleetNode{a, b, c} {
		n.Restart("")
	}
	awaitFleet(t, "the state after the whole fleet restarted", all, func(bl api.Balancer) bool {
		r9 := memberByRoute(bl, "r9")
		return hasFlag(memberByRoute(bl, "r1"), "N") && memberByRoute(bl, "r1").LoadFactor == 3 &&
			hasFlag(memberByRoute(bl, "r2"), "D") && r9.Dynamic && r9.LBSet == want.LBSet
	})

	// A deploy changes r1's configuration on C: the override drops there.
	c.Restart(f.caddyfile("c", c.Admin, c.site, "loadfactor=2"))
	awaitFleet(t, "C with r1's new configuration", []*fleetNode{c}, func(bl api.Balancer) bool {
		m := memberByRoute(bl, "r1")
		return m.LoadFactor == 2 && !hasFlag(m, "N") && hasFlag(memberByRoute(bl, "r2"), "D")
	})
	awaitFleet(t, "A and B keep the override", []*fleetNode{a, b}, func(bl api.Balancer) bool {
		m := memberByRoute(bl, "r1")
		return m.LoadFactor == 3 && hasFlag(m, "N")
	})
}

// TestFleetRedisLostUnderLoad: Redis killed under 32 connections of load
// gives no client error; changes made on the nodes meanwhile apply locally,
// their answers say they are not shared yet, and when Redis is back (empty)
// they reconcile on every node.
func TestFleetRedisLostUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Caddy processes")
	}
	rs := redistest.Start(t)
	f := &fleetSetup{t: t, store: "\t\tredis " + rs.Addr + " {\n\t\t\ttimeout 300ms\n\t\t}", members: startBackends(t, 3)}
	a, b := f.start("a"), f.start("b")
	all := []*fleetNode{a, b}

	var stop atomic.Bool
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var firstFailure string
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			target := "http://" + all[i%2].site + "/"
			cl := &http.Client{Timeout: 10 * time.Second}
			for !stop.Load() {
				resp, err := cl.Get(target)
				requests.Add(1)
				if err == nil && resp.StatusCode == 200 {
					resp.Body.Close()
					continue
				}
				failures.Add(1)
				failMu.Lock()
				if firstFailure == "" {
					firstFailure = fmt.Sprint(err)
					if resp != nil {
						firstFailure = resp.Status
					}
				}
				failMu.Unlock()
				if resp != nil {
					resp.Body.Close()
				}
			}
		}(i)
	}

	rs.Kill()
	awaitFleet(t, "the store seen lost", all, func(bl api.Balancer) bool { return bl.Sync != nil && !bl.Sync.Connected })
	r := adminDo(t, "PATCH", a.api()+"/members/r1", `{"status": "+N"}`)
	if m := decodeMember(t, r); r.Status != 200 || !hasFlag(m, "N") || len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "not yet shared") {
		t.Fatalf("change on A with Redis down: %d %+v", r.Status, m)
	}
	adminDo(t, "PATCH", b.api()+"/members/r2", `{"lbset": 4}`)
	if page := get(t, "http://"+a.Admin+"/balancer-manager").Body; !strings.Contains(page, "not yet shared with the fleet") {
		t.Error("A's manager page does not say the change is not shared")
	}
	if !hasFlag(a.member(t, "r1"), "N") || b.member(t, "r2").LBSet != 4 {
		t.Fatal("changes made with Redis down did not apply locally")
	}

	rs.Restart()
	awaitFleet(t, "reconciled", all, func(bl api.Balancer) bool {
		return hasFlag(memberByRoute(bl, "r1"), "N") && memberByRoute(bl, "r2").LBSet == 4 &&
			bl.Sync != nil && bl.Sync.Connected && bl.Sync.Pending == 0
	})
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed while Redis was down (first: %s)", failures.Load(), requests.Load(), firstFailure)
	}
	t.Logf("%d requests through the outage, none failed", requests.Load())
}

// TestFleetStorage: the same fleet through Caddy's storage on a shared
// directory (polled): a change on A appears on B and C, a late node has the
// state, a restarted fleet keeps it.
func TestFleetStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Caddy processes")
	}
	shared := t.TempDir()
	f := &fleetSetup{t: t, store: "\t\tstorage {\n\t\t\tpoll_interval 100ms\n\t\t}", global: "\tstorage file_system " + shared + "\n",
		members: startBackends(t, 3)}
	a, b, c := f.start("a"), f.start("b"), f.start("c")
	all := []*fleetNode{a, b, c}
	adminDo(t, "PATCH", a.api()+"/members/r1", `{"status": "+D"}`)
	adminDo(t, "PATCH", b.api(), `{"lbmethod": "bybusyness"}`)
	awaitFleet(t, "the changes of A and B", all, func(bl api.Balancer) bool {
		return hasFlag(memberByRoute(bl, "r1"), "D") && bl.LBMethod == "bybusyness"
	})
	d := f.start("d")
	awaitFleet(t, "the state on a late node", []*fleetNode{d}, func(bl api.Balancer) bool {
		return hasFlag(memberByRoute(bl, "r1"), "D") && bl.LBMethod == "bybusyness"
	})
	for _, n := range []*fleetNode{a, b, c, d} {
		n.Stop()
	}
	a.Restart("")
	awaitFleet(t, "the state after a restart", []*fleetNode{a}, func(bl api.Balancer) bool {
		return hasFlag(memberByRoute(bl, "r1"), "D") && bl.LBMethod == "bybusyness"
	})
}

// TestFleetDemo runs testdata/fleet (the README's "Several Caddy instances")
// on free ports with REDIS_ADDR pointing at a test Redis: a drain on A's
// admin endpoint appears on B's, and B's front end stops sending requests to
// the drained member.
func TestFleetDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Caddy processes")
	}
	rs := redistest.Start(t)
	ports := map[string]string{}
	for _, p := range []string{"9101", "9102", "9103", "8081", "8082", "2019", "2020"} {
		_, port, _ := strings.Cut(caddybin.FreeAddr(t), ":")
		ports[p] = port
	}
	load := func(name string) string {
		src, err := os.ReadFile(filepath.Join("testdata", "fleet", name+".caddyfile"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(src)
		for from, to := range ports {
			s = strings.ReplaceAll(s, ":"+from, ":"+to)
		}
		return s
	}
	backends := caddybin.Start(t, "backends", load("backends"), "")
	for _, p := range []string{"9101", "9102", "9103"} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+ports[p], time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("backend %s does not listen:\n%s", p, backends.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := caddybin.Start(t, "a", load("a"), "localhost:"+ports["2019"], "REDIS_ADDR="+rs.Addr)
	b := caddybin.Start(t, "b", load("b"), "localhost:"+ports["2020"], "REDIS_ADDR="+rs.Addr)
	if r := adminDo(t, "PATCH", "http://"+a.Admin+"/balancers/fleet/members/f1", `{"status":"+N"}`); r.Status != 200 {
		t.Fatalf("drain on A: %d %s", r.Status, r.Body)
	}
	awaitFleet(t, "f1 drained on B", []*fleetNode{{Process: b}}, func(bl api.Balancer) bool {
		return bl.Name == "fleet" && hasFlag(memberByRoute(bl, "f1"), "N")
	})
	for i := 0; i < 6; i++ {
		r := get(t, "http://127.0.0.1:"+ports["8082"]+"/")
		if r.Status != 200 || strings.TrimSpace(r.Body) == "f1" {
			t.Fatalf("B's front end answered %d %q after f1 was drained on A", r.Status, r.Body)
		}
	}
}

// TestFleetDrainWaitsForEveryNode: a drain started on A waits for the
// member's requests in flight on B too, and says so per node.
func TestFleetDrainWaitsForEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Caddy processes")
	}
	rs := redistest.Start(t)
	bs := startBackends(t, 2)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	f := &fleetSetup{t: t, store: "\t\tredis " + rs.Addr, members: bs}
	a, b := f.start("a"), f.start("b")
	// One request held in flight to r1 on B.
	held := make(chan error, 1)
	for {
		go func() {
			resp, err := http.Get("http://" + b.site + "/")
			if err == nil {
				resp.Body.Close()
			}
			held <- err
		}()
		select {
		case <-entered:
		case <-held:
			continue // served by r2
		}
		break
	}
	drainURL := a.api() + "/members/r1/drain"
	var d api.Drain
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := adminDo(t, "POST", drainURL, "")
		if err := json.Unmarshal([]byte(r.Body), &d); err != nil || r.Status != 202 {
			t.Fatalf("drain without wait: %d %s", r.Status, r.Body)
		}
		if len(d.Nodes) == 2 && d.Nodes[1].Node == "b" && d.Nodes[1].Draining && d.Nodes[1].InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never reported r1 draining with its request in flight: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Drained || d.InFlight != 1 || d.Nodes[0].Node != "a" || !d.Nodes[0].Drained {
		t.Fatalf("drain answer while B holds a request: %+v", d)
	}
	close(release)
	<-held
	r := adminDo(t, "POST", drainURL+"?wait=10s", "")
	if err := json.Unmarshal([]byte(r.Body), &d); err != nil || r.Status != 200 || !d.Drained || d.InFlight != 0 {
		t.Fatalf("drain with wait after B's request ended: %d %s", r.Status, r.Body)
	}
}
