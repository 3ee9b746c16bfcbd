package caddybalancer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/lbset/caddy-balancer/balancer"
)

// hcWaitFor polls cond until it holds or the deadline passes.
func hcWaitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hcFlags(t *testing.T, bal, url string) string {
	t.Helper()
	return memberState(t, bal, url).Status.Letters()
}

func hcEntry(name string) *registryEntry {
	var e *registryEntry
	balancers.Range(func(k, v any) bool {
		if k.(string) == name {
			e = v.(*registryEntry)
			return false
		}
		return true
	})
	return e
}

// hcConfig is a one-route config with a balancer handler; extraApps are added
// to "apps" and admin (if not empty) becomes the admin listen address.
func hcConfig(port int, handler string, admin string, extraApps string) []byte {
	adm := `"admin":{"disabled":true},`
	if admin != "" {
		adm = fmt.Sprintf(`"admin":{"listen":%q},`, admin)
	}
	if extraApps != "" {
		extraApps += ","
	}
	return []byte(fmt.Sprintf(`{%s"apps":{%s"http":{"servers":{"front":{"listen":["127.0.0.1:%d"],
		"routes":[{"handle":[%s]}]}}}}}`, adm, extraApps, port, handler))
}

// TestHCBackendStops: a TCP-checked member whose backend goes away gets C
// (HcFl) from the checker alone, and requests go to the other member without
// any failed attempt; when it comes back on the same port, C is cleared.
func TestHCBackendStops(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"hcstop","members":[
		{"url":%q,"hcmethod":"TCP","hcinterval":"100ms"},{"url":%q,"hcmethod":"tcp","hcinterval":"100ms"}]}`,
		bs[0].URL, bs[1].URL), "", ""))
	m1 := bs[0].URL
	hcWaitFor(t, 5*time.Second, "first passing checks", func() bool {
		p, _ := hcCounts(t, "hcstop", m1)
		return p >= 2
	})
	if f := hcFlags(t, "hcstop", m1); f != "O" {
		t.Fatalf("flags %s before the backend stops", f)
	}
	addr := bs[0].srv.Listener.Addr().String()
	bs[0].Close()
	hcWaitFor(t, 5*time.Second, "C on the stopped member", func() bool { return hcFlags(t, "hcstop", m1) == "OC" })
	got := sequence(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4)
	if strings.Join(got, " ") != "b2 b2 b2 b2" {
		t.Fatalf("requests went to %v", got)
	}
	if f := hcFlags(t, "hcstop", m1); f != "OC" {
		t.Fatalf("flags %s after requests, want OC (no E: the member was never tried)", f)
	}
	// The backend comes back on the same address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: bs[0]}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	hcWaitFor(t, 5*time.Second, "C cleared", func() bool { return hcFlags(t, "hcstop", m1) == "O" })
}

func hcCounts(t *testing.T, bal, url string) (int64, int64) {
	t.Helper()
	for _, m := range lookupBalancer(bal).Members() {
		if m.Name() == url {
			return m.HCCounts()
		}
	}
	t.Fatalf("no member %s", url)
	return 0, 0
}

// TestHCHealthURIFailsAndRecovers: GET checks of hcuri with hcfails=2 and
// hcpasses=2: C is set after the health URI starts failing and cleared after
// it recovers. The checks are `GET /health HTTP/1.0` with Host only.
func TestHCHealthURIFailsAndRecovers(t *testing.T) {
	bs := startBackends(t, 2)
	var failing atomic.Bool
	var mu sync.Mutex
	var seen []string
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%s %s %s host=%s headers=%d", r.Method, r.RequestURI, r.Proto, r.Host, len(r.Header)))
			mu.Unlock()
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprint(w, "health")
			return
		}
		fmt.Fprint(w, "b1")
	})
	port := freePort(t)
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"hcuri","members":[
		{"url":%q,"hcmethod":"GET","hcuri":"/health","hcinterval":"100ms","hcfails":2,"hcpasses":2},{"url":%q}]}`,
		bs[0].URL, bs[1].URL), "", ""))
	m1 := bs[0].URL
	hcWaitFor(t, 5*time.Second, "passing checks", func() bool { p, _ := hcCounts(t, "hcuri", m1); return p >= 2 })
	mu.Lock()
	first := seen[0]
	mu.Unlock()
	if want := fmt.Sprintf("GET /health HTTP/1.0 host=127.0.0.1:%d headers=0", bs[0].Port); first != want {
		t.Fatalf("check request %q, want %q", first, want)
	}
	failing.Store(true)
	_, f0 := hcCounts(t, "hcuri", m1)
	hcWaitFor(t, 5*time.Second, "C after failing checks", func() bool { return hcFlags(t, "hcuri", m1) == "OC" })
	if _, f := hcCounts(t, "hcuri", m1); f-f0 < 2 {
		t.Fatalf("C after %d failures, want ≥ 2", f-f0)
	}
	if got := sequence(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 3); strings.Join(got, " ") != "b2 b2 b2" {
		t.Fatalf("requests went to %v", got)
	}
	failing.Store(false)
	p0, _ := hcCounts(t, "hcuri", m1)
	hcWaitFor(t, 5*time.Second, "C cleared", func() bool { return hcFlags(t, "hcuri", m1) == "O" })
	if p, _ := hcCounts(t, "hcuri", m1); p-p0 < 2 {
		t.Fatalf("C cleared after %d passes, want ≥ 2", p-p0)
	}
	st := memberState(t, "hcuri", m1)
	if st.PCount != 0 {
		t.Fatalf("pcount %d after recovery", st.PCount)
	}
}

// TestHCExprOnBody: hcexpr on the GET check's body replaces the status rule.
func TestHCExprOnBody(t *testing.T) {
	bs := startBackends(t, 2)
	var maint atomic.Bool
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if maint.Load() {
			fmt.Fprint(w, "<h1>Under maintenance</h1>")
			return
		}
		fmt.Fprint(w, "all good")
	})
	// A 404 passes with the ^[234] condition (docs/behaviour.md §8.4 observed).
	bs[1].SetHandler(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	port := freePort(t)
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"hcexpr","members":[
		{"url":%q,"hcmethod":"GET11","hcuri":"/status","hcinterval":"100ms","hcexpr":"hc('body') !~ /Under maintenance/ && %%{REQUEST_STATUS} -lt 400"},
		{"url":%q,"hcmethod":"HEAD","hcinterval":"100ms","hcuri":"/x","hcexpr":"%%{REQUEST_STATUS} =~ /^[234]/"}]}`,
		bs[0].URL, bs[1].URL), "", ""))
	m1, m2 := bs[0].URL, bs[1].URL
	hcWaitFor(t, 5*time.Second, "passing checks", func() bool {
		p1, _ := hcCounts(t, "hcexpr", m1)
		p2, _ := hcCounts(t, "hcexpr", m2)
		return p1 >= 1 && p2 >= 1
	})
	maint.Store(true)
	hcWaitFor(t, 5*time.Second, "C on the member in maintenance", func() bool { return hcFlags(t, "hcexpr", m1) == "OC" })
	maint.Store(false)
	hcWaitFor(t, 5*time.Second, "C cleared", func() bool { return hcFlags(t, "hcexpr", m1) == "O" })
	if f := hcFlags(t, "hcexpr", m2); f != "O" {
		t.Fatalf("404 member flags %s, want O", f)
	}
	if _, f := hcCounts(t, "hcexpr", m2); f != 0 {
		t.Fatalf("404 member failed %d checks", f)
	}
}

// TestHCInvalidExprRejected: an hcexpr that does not parse is a provision error.
func TestHCInvalidExprRejected(t *testing.T) {
	port := freePort(t)
	cfg := hcConfig(port, `{"handler":"balancer","name":"hcbad","members":[
		{"url":"http://127.0.0.1:1","hcmethod":"GET","hcexpr":"%{REQUEST_URI} == '/'"}]}`, "", "")
	err := caddy.Load(cfg, true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("config with an unknown hcexpr variable loaded")
	}
	if !strings.Contains(err.Error(), "REQUEST_URI") {
		t.Fatalf("error %v does not name the variable", err)
	}
}

// TestHCOneCheckerAcrossReload: a reload keeps the balancer and its one
// checker; a member added at run time is checked; stopping Caddy stops it.
func TestHCOneCheckerAcrossReload(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	handler := fmt.Sprintf(`{"handler":"balancer","name":"hcreload","growth":2,"members":[
		{"url":%q,"hcmethod":"TCP","hcinterval":"100ms"}]}`, bs[0].URL)
	loadCaddy(t, hcConfig(port, handler, "", ""))
	e := hcEntry("hcreload")
	if e == nil {
		t.Fatal("no pool entry")
	}
	e.mu.Lock()
	c1 := e.checker
	e.mu.Unlock()
	if c1 == nil {
		t.Fatal("no checker")
	}
	// Reload with a changed route (same balancer).
	if err := caddy.Load(hcConfig(port, `{"handler":"vars","x":"1"},`+handler, "", ""), true); err != nil {
		t.Fatal(err)
	}
	if e2 := hcEntry("hcreload"); e2 != e {
		t.Fatal("reload replaced the pool entry")
	}
	e.mu.Lock()
	c2 := e.checker
	e.mu.Unlock()
	if c2 != c1 {
		t.Fatal("reload started another checker")
	}
	// A member added at run time is checked.
	res, err := e.bal.Apply(balancer.Edit{Add: []balancer.MemberConfig{{URL: bs[1].URL,
		HealthCheck: balancer.HealthCheck{Method: "TCP", Interval: 100 * time.Millisecond}}}}, balancer.ReasonAPI)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Added[0]
	hcWaitFor(t, 5*time.Second, "a check of the run-time member", func() bool { p, _ := m.HCCounts(); return p >= 1 })
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("checker still running after stop")
	}
	if hcEntry("hcreload") != nil {
		t.Fatal("balancer still in the pool after stop")
	}
}

// eventRecorder is a test-only events handler module that records the data
// of every event it gets.
type eventRecorder struct{}

var (
	recordedMu     sync.Mutex
	recordedEvents []map[string]any
)

func (eventRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.balancer_test_recorder", New: func() caddy.Module { return new(eventRecorder) }}
}

func (eventRecorder) Handle(_ context.Context, e caddy.Event) error {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	d := map[string]any{"_name": e.Name(), "_origin": ""}
	if o := e.Origin(); o != nil {
		d["_origin"] = string(o.CaddyModule().ID)
	}
	for k, v := range e.Data {
		d[k] = v
	}
	recordedEvents = append(recordedEvents, d)
	return nil
}

var _ caddyevents.Handler = eventRecorder{}

func init() { caddy.RegisterModule(eventRecorder{}) }

// eventsFor returns the recorded events of a balancer as
// "member flags_old>flags_new reason" lines.
func eventsFor(bal string) []string {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	var out []string
	for _, d := range recordedEvents {
		if d["balancer"] == bal {
			out = append(out, fmt.Sprintf("%s %s>%s %s", d["member"], d["flags_old"], d["flags_new"], d["reason"]))
		}
	}
	return out
}

func hasEvent(bal, line string) bool {
	for _, l := range eventsFor(bal) {
		if l == line {
			return true
		}
	}
	return false
}

// TestEventMemberStatus: a subscriber of balancer_member_status sees the
// health-check transitions and a connection failure, with the status strings.
func TestEventMemberStatus(t *testing.T) {
	bs := startBackends(t, 1)
	var failing atomic.Bool
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	dead := deadURL(t)
	port := freePort(t)
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"hcevents","members":[
		{"url":%q,"hcmethod":"HEAD","hcuri":"/h","hcinterval":"100ms"},{"url":%q}]}`, bs[0].URL, dead), "",
		`"events":{"subscriptions":[{"events":["balancer_member_status"],"handlers":[{"handler":"balancer_test_recorder"}]}]}`))
	m1 := bs[0].URL
	failing.Store(true)
	hcWaitFor(t, 5*time.Second, "C event", func() bool { return hasEvent("hcevents", m1+" O>OC healthcheck") })
	failing.Store(false)
	hcWaitFor(t, 5*time.Second, "recovery event", func() bool { return hasEvent("hcevents", m1+" OC>O healthcheck") })
	// Send requests until the dead member was tried once.
	hcWaitFor(t, 5*time.Second, "connect_failure event", func() bool {
		get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
		return hasEvent("hcevents", dead+" O>OE connect_failure")
	})
	recordedMu.Lock()
	defer recordedMu.Unlock()
	for _, d := range recordedEvents {
		if d["balancer"] != "hcevents" || d["reason"] != "healthcheck" || d["flags_new"] != "OC" {
			continue
		}
		if d["old"] != "Init Ok" || d["new"] != "Init HcFl" || d["_name"] != MemberStatusEvent || d["_origin"] != "http.handlers.balancer" {
			t.Fatalf("event data %v", d)
		}
		return
	}
	t.Fatal("C event not found")
}
