package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/api"
)

// Drain to empty through the JSON API on a real admin endpoint, with real
// backends: POST /balancers/{name}/members/{member}/drain[?wait=].

func decodeDrain(t *testing.T, r result) api.Drain {
	t.Helper()
	var d api.Drain
	if err := json.Unmarshal([]byte(r.Body), &d); err != nil {
		t.Fatalf("drain answer %d is not JSON: %v\n%s", r.Status, err, r.Body)
	}
	return d
}

// wantDrain checks a drain answer: its status, and what it says of the
// member's requests in flight, on this node and in all.
func wantDrain(t *testing.T, r result, status int, member string, inFlight int64) api.Drain {
	t.Helper()
	if r.Status != status {
		t.Fatalf("drain: status %d, want %d: %s", r.Status, status, r.Body)
	}
	d := decodeDrain(t, r)
	host, _ := os.Hostname()
	drained := status == http.StatusOK
	if d.Member != member || d.InFlight != inFlight || d.Drained != drained || len(d.Nodes) != 1 ||
		d.Nodes[0].Node != host || d.Nodes[0].InFlight != inFlight || d.Nodes[0].Drained != drained {
		t.Fatalf("drain answer %+v, want member %s, %d in flight, drained %v, on node %q", d, member, inFlight, drained, host)
	}
	return d
}

// TestDrainAPI: a deploy script's drain of b1, which has three requests in
// flight: asked without waiting it is told 202 and the count; asked with a
// short wait, 409 and the count; asked to wait long enough, 200 once the
// requests have ended, which they do normally. Meanwhile non-sticky requests
// go to b2 only, and the balancer_member_drained event is emitted.
func TestDrainAPI(t *testing.T) {
	bs := startBackends(t, 2)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		fmt.Fprintf(w, "b1 %s", r.URL.Path)
	})
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiURL := fmt.Sprintf("http://localhost:%d/balancers", aport)
	cfg := adaptCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	balancer drainapi {
		stickysession ROUTEID
		balancer_member %s route=r1
		balancer_member %s route=r2
	}
}`, aport, site, bs[0].URL, bs[1].URL))
	// The events app, subscribing the test recorder (hcheck_test.go).
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	m["apps"].(map[string]any)["events"] = map[string]any{"subscriptions": []any{map[string]any{
		"events": []string{MemberDrainedEvent}, "handlers": []any{map[string]any{"handler": "balancer_test_recorder"}}}}}
	cfg, _ = json.Marshal(m)
	loadCaddy(t, cfg)
	b1 := bs[0].URL
	drainURL := apiURL + "/drainapi/members/r1/drain"

	// Three sticky requests held in flight on b1.
	held := make(chan result, 3)
	for i := 0; i < 3; i++ {
		go func() { held <- get(t, site+"/hold", "Cookie: ROUTEID=.r1") }()
	}
	hcWaitFor(t, 5*time.Second, "three requests in flight on b1", func() bool {
		return memberState(t, "drainapi", b1).Busy == 3
	})

	d := wantDrain(t, adminDo(t, "POST", drainURL, ""), http.StatusAccepted, b1, 3)
	if d.Error != "" {
		t.Fatalf("202 with an error: %q", d.Error)
	}
	if st := memberState(t, "drainapi", b1).Status.String(); st != "Init Drn Ok " {
		t.Fatalf("after the drain request b1 is %q", st)
	}
	for i, got := range sequence(t, site+"/", 6) {
		if got != "b2" {
			t.Fatalf("non-sticky request %d went to %s while b1 drains", i, got)
		}
	}
	d = wantDrain(t, adminDo(t, "POST", drainURL+"?wait=200ms", ""), http.StatusConflict, b1, 3)
	if !strings.Contains(d.Error, "3 requests in flight after 200ms") {
		t.Fatalf("409 error %q", d.Error)
	}

	// Waiting long enough: the answer comes when the held requests end.
	answer := make(chan result, 1)
	go func() { answer <- adminDo(t, "POST", drainURL+"?wait=30s", "") }()
	releasedAt := time.Now()
	once.Do(func() { close(release) })
	var r result
	select {
	case r = <-answer:
	case <-time.After(15 * time.Second):
		t.Fatal("no drain answer 15s after the requests in flight ended")
	}
	wantDrain(t, r, http.StatusOK, b1, 0)
	for i := 0; i < 3; i++ {
		if h := <-held; h.Status != 200 || h.Body != "b1 /hold" {
			t.Fatalf("a request in flight during the drain got %d %q", h.Status, h.Body)
		}
	}
	if s := memberState(t, "drainapi", b1); s.Busy != 0 {
		t.Fatalf("drained, but b1 busy %d", s.Busy)
	}
	t.Logf("drained %v after the requests were released", time.Since(releasedAt))
	hcWaitFor(t, 5*time.Second, "the balancer_member_drained event", func() bool {
		recordedMu.Lock()
		defer recordedMu.Unlock()
		for _, e := range recordedEvents {
			if e["_name"] == MemberDrainedEvent && e["balancer"] == "drainapi" && e["member"] == b1 &&
				e["route"] == "r1" && e["_origin"] == "http.handlers.balancer" {
				return true
			}
		}
		return false
	})
	// Drained already: 200 at once, and it stays drained.
	wantDrain(t, adminDo(t, "POST", apiURL+"/drainapi/members/"+url.PathEscape(b1)+"/drain?wait=5", ""), http.StatusOK, b1, 0)
	for i, got := range sequence(t, site+"/", 4) {
		if got != "b2" {
			t.Fatalf("non-sticky request %d went to %s after b1 was drained", i, got)
		}
	}
}

// TestDrainAPIUndrained: clearing N while a drain waits ends the wait with
// 409; the request in flight is not disturbed.
func TestDrainAPIUndrained(t *testing.T) {
	bs := startBackends(t, 2)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "b1")
	})
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiURL := fmt.Sprintf("http://localhost:%d/balancers", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	balancer undrain {
		balancer_member %s route=r1
		balancer_member %s route=r2 lbset=1
	}
}`, aport, site, bs[0].URL, bs[1].URL))
	b1 := bs[0].URL
	held := make(chan result, 1)
	go func() { held <- get(t, site+"/") }()
	hcWaitFor(t, 5*time.Second, "a request in flight on b1", func() bool {
		return memberState(t, "undrain", b1).Busy == 1
	})
	answer := make(chan result, 1)
	go func() { answer <- adminDo(t, "POST", apiURL+"/undrain/members/r1/drain?wait=30s", "") }()
	hcWaitFor(t, 5*time.Second, "N set by the drain request", func() bool {
		return memberState(t, "undrain", b1).Status.String() == "Init Drn Ok "
	})
	if m := decodeMember(t, adminDo(t, "PATCH", apiURL+"/undrain/members/r1", `{"status":"-N"}`)); m.Flags != "O" {
		t.Fatalf("after -N: flags %q", m.Flags)
	}
	var r result
	select {
	case r = <-answer:
	case <-time.After(15 * time.Second):
		t.Fatal("the drain still waits after N was cleared")
	}
	d := wantDrainStatus(t, r, http.StatusConflict)
	if d.Drained || d.InFlight != 1 || !strings.Contains(d.Error, "no longer draining") {
		t.Fatalf("drain answer %+v", d)
	}
	once.Do(func() { close(release) })
	if h := <-held; h.Status != 200 || h.Body != "b1" {
		t.Fatalf("the request in flight got %d %q", h.Status, h.Body)
	}
}

func wantDrainStatus(t *testing.T, r result, status int) api.Drain {
	t.Helper()
	if r.Status != status {
		t.Fatalf("drain: status %d, want %d: %s", r.Status, status, r.Body)
	}
	return decodeDrain(t, r)
}

// TestDrainAPIErrors: bad drain requests get a 4xx with the reason and
// change nothing.
func TestDrainAPIErrors(t *testing.T) {
	bs := startBackends(t, 1)
	port, aport := freePort(t), freePort(t)
	apiURL := fmt.Sprintf("http://localhost:%d/balancers", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer drainerr {
		balancer_member %s route=r1
	}
}`, aport, port, bs[0].URL))
	drainURL := apiURL + "/drainerr/members/r1/drain"
	wantError(t, adminDo(t, "POST", drainURL+"?wait=soon", ""), 400, `wait must be a duration from 0 to 1h (a number of seconds or a duration such as 30s), not "soon"`)
	wantError(t, adminDo(t, "POST", drainURL+"?wait=2h", ""), 400, "wait must be a duration from 0 to 1h")
	wantError(t, adminDo(t, "POST", drainURL+"?wait=-1s", ""), 400, "wait must be")
	wantError(t, adminDo(t, "POST", drainURL+"?wiat=30s", ""), 400, `unknown query parameter "wiat"`)
	wantError(t, adminDo(t, "POST", drainURL+"?wait=1s&wait=2s", ""), 400, `unknown query parameter "wait"`)
	r := adminDo(t, "GET", drainURL, "")
	wantError(t, r, 405, "method GET not allowed")
	if allow := r.Header.Get("Allow"); allow != "POST" {
		t.Fatalf("Allow %q", allow)
	}
	wantError(t, adminDo(t, "POST", apiURL+"/drainerr/members/r9/drain", ""), 404, `no member "r9"`)
	wantError(t, adminDo(t, "POST", apiURL+"/nope/members/r1/drain", ""), 404, `unknown balancer "nope"`)
	wantError(t, adminDo(t, "POST", apiURL+"/drainerr/members/r1/undrain", ""), 404, "no such resource")
	if st := memberState(t, "drainerr", bs[0].URL).Status.String(); st != "Init Ok " {
		t.Fatalf("after rejected drain requests the member is %q", st)
	}
}
