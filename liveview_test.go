package caddybalancer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/live"
)

// The live view (package live) on the balancer_manager site route, through
// Caddy: TestLiveViewMounted without a browser, TestClientLiveView in
// headless Chromium (it runs with the manager's other real clients in
// .ci/clients.sh). LIVE_SCREENSHOT=1 go test -run TestClientLiveView . also
// drives two minutes of mixed traffic and writes docs/live-view.png.

// TestLiveViewMounted: ?view=live on the balancer_manager route is the live
// view, limited to the route's balancers; the same path without it is
// httpd's page, unchanged, and the admin endpoint keeps httpd's page for
// ?view=live too (scripts only; browsers cannot use it).
func TestLiveViewMounted(t *testing.T) {
	bs := startBackends(t, 2)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	handle /balancer-manager* {
		balancer_manager shown
	}
	handle /other {
		balancer other {
			balancer_member %s
		}
	}
	handle {
		balancer shown {
			balancer_member %s route=n1
		}
	}
}`, aport, site, bs[0].URL, bs[1].URL))
	for range 3 {
		if r := get(t, site+"/x"); r.Backend != "b2" {
			t.Fatalf("request answered by %q", r.Backend)
		}
	}
	r := get(t, site+"/balancer-manager?view=live&format=json")
	var d live.Data
	if err := json.Unmarshal([]byte(r.Body), &d); err != nil || r.Status != 200 {
		t.Fatalf("live data: %d %v\n%s", r.Status, err, r.Body)
	}
	if len(d.Balancers) != 1 || d.Balancers[0].Name != "shown" || len(d.Balancers[0].Members) != 1 {
		t.Fatalf("live data shows %+v, want balancer shown only", d.Balancers)
	}
	if m := d.Balancers[0].Members[0]; m.Name != bs[1].URL || m.Requests != 3 || m.Route != "n1" || m.Status != "Init Ok" {
		t.Fatalf("member %+v, want %s with 3 requests", m, bs[1].URL)
	}
	if r := get(t, site+"/balancer-manager?view=live"); r.Status != 200 || !strings.Contains(r.Body, "<title>Balancers, live</title>") ||
		r.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("live page: %d %v\n%s", r.Status, r.Header, r.Body)
	}
	if r := get(t, site+"/balancer-manager"); r.Status != 200 || !strings.Contains(r.Body, "<title>Balancer Manager</title>") || strings.Contains(r.Body, "view=live") {
		t.Fatalf("httpd's page: %d\n%s", r.Status, r.Body)
	}
	if r := get(t, fmt.Sprintf("http://127.0.0.1:%d/balancer-manager?view=live", aport)); r.Status != 200 || !strings.Contains(r.Body, "<title>Balancer Manager</title>") {
		t.Fatalf("admin endpoint with ?view=live: %d\n%s", r.Status, r.Body)
	}
	// A change through Caddy, as curl would send it: the nonce is needed.
	nonce := decodeBalancer(t, adminDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/balancers/shown", aport), "")).Nonce
	for _, c := range []struct {
		nonce string
		code  int
		flags string
	}{{"wrong", 403, "O"}, {nonce, 200, "ON"}} {
		req, _ := http.NewRequest(http.MethodPost, site+"/balancer-manager?view=live",
			strings.NewReader("b=shown&action=drain&w="+bs[1].URL+"&nonce="+c.nonce))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := do(t, req); r.Status != c.code {
			t.Fatalf("drain with nonce %q: %d %s", c.nonce, r.Status, r.Body)
		}
		m := apiMemberFlags(t, fmt.Sprintf("http://127.0.0.1:%d/balancers", aport), "shown")[bs[1].URL]
		if m.Flags != c.flags {
			t.Fatalf("after drain with nonce %q: flags %s, want %s", c.nonce, m.Flags, c.flags)
		}
	}
}

// liveCell is the text of a member's cell in the live view (cls: state,
// weight, busy, rate, latency, requests, health), its main value only
// unless whole; "" if the row is not there.
func (w *webDriver) liveCell(member, cls string, whole bool) string {
	w.t.Helper()
	var s string
	w.script(&s, `
const td = document.querySelector('tr[data-member="' + arguments[0] + '"] td.' + arguments[1]);
if (!td) return '';
if (arguments[2]) return td.textContent;
const v = td.querySelector('.v, .badge');
return v ? v.textContent : '';`, member, cls, whole)
	return s
}

// waitCell polls the member's cell until ok accepts its text.
func (w *webDriver) waitCell(member, cls string, within time.Duration, what string, ok func(string) bool) string {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := w.liveCell(member, cls, false)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			var src string
			w.script(&src, "return document.body.innerText")
			w.t.Fatalf("after %v, %s's %s cell shows %q; waited for %s. Page:\n%s", within, member, cls, s, what, src)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveButton clicks a member's button (drain, disable, enable, weight).
func (w *webDriver) liveButton(member, action string) {
	w.t.Helper()
	w.click(w.find("css selector", fmt.Sprintf(`tr[data-member="%s"] button[data-action="%s"]`, member, action)))
}

// TestClientLiveView opens the live view in headless Chromium and checks what
// a person reads there and what its buttons do: the requests in flight on
// a member holding two requests, the request rate of a member receiving 10
// requests per second, the request count, the health-check history; then
// Drain (the next requests avoid the member), Set weight (the split follows),
// Enable; and that a page on another origin cannot make a change, even with
// the nonce.
func TestClientLiveView(t *testing.T) {
	w := startChromium(t)
	bs := startBackends(t, 3)
	release := make(chan struct{})
	var held atomic.Int64
	bs[0].SetHandler(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			defer held.Add(-1)
			<-release
		}
		fmt.Fprint(rw, "b1")
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce()
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	handle /balancer-manager* {
		balancer_manager
	}
	handle /favicon.ico {
		respond 404
	}
	handle {
		balancer web {
			stickysession ROUTEID
			balancer_member %s route=node1
			balancer_member %s route=node2
			balancer_member %s route=node3 {
				hcmethod GET
				hcuri /health
				hcinterval 1s
			}
		}
	}
}`, aport, site, bs[0].URL, bs[1].URL, bs[2].URL))
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers", aport)
	b1, b2, b3 := bs[0].URL, bs[1].URL, bs[2].URL

	w.do("POST", "/url", map[string]string{"url": site + "/balancer-manager?view=live"})
	w.waitTitle("Balancers, live")
	for _, m := range []string{b1, b2, b3} {
		w.waitCell(m, "state", 10*time.Second, "the member's row, ok", func(s string) bool { return s == "ok" })
	}

	// Two requests held by b1: in flight 2.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, site+"/hold", nil)
			req.Header.Set("Cookie", "ROUTEID=.node1")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	hcWaitFor(t, 5*time.Second, "b1 to hold two requests", func() bool { return held.Load() == 2 })
	w.waitCell(b1, "busy", 10*time.Second, "in flight 2", func(s string) bool { return s == "2" })
	if s := w.liveCell(b2, "busy", false); s != "0" {
		t.Fatalf("b2 in flight %q, want 0", s)
	}

	// 10 requests a second to b2 (sticky): the page shows about 10 req/s.
	stop := make(chan struct{})
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest(http.MethodGet, site+"/paced", nil)
			req.Header.Set("Cookie", "ROUTEID=.node2")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				sent.Add(1)
			}
		}
	}()
	rate := w.waitCell(b2, "rate", 30*time.Second, "a rate of about 10 req/s", func(s string) bool {
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && f >= 7 && f <= 13
	})
	close(stop)
	<-done
	t.Logf("b2 shown at %s req/s while receiving 10 req/s", rate)
	if s := w.liveCell(b3, "rate", false); s != "0.0" {
		t.Fatalf("b3 rate %q, want 0.0 (no requests)", s)
	}
	// Every request of the window, counted.
	n := strconv.FormatInt(sent.Load(), 10)
	w.waitCell(b2, "requests", 10*time.Second, n+" requests", func(s string) bool { return strings.ReplaceAll(s, ",", "") == n })
	releaseOnce()
	wg.Wait()
	w.waitCell(b1, "busy", 10*time.Second, "in flight 0 once released", func(s string) bool { return s == "0" })
	w.waitCell(b1, "requests", 10*time.Second, "b1's 2 requests", func(s string) bool { return s == "2" })
	// Health checks of b3 pass (the backend answers 200 to GET /health).
	hcWaitFor(t, 15*time.Second, "b3's passed checks on the page", func() bool {
		text := w.liveCell(b3, "health", true)
		var marks int
		w.script(&marks, `return document.querySelectorAll('tr[data-member="' + arguments[0] + '"] td.health rect.pass').length`, b3)
		return strings.Contains(text, "GET every 1 s") && !strings.Contains(text, " 0 passed") && strings.Contains(text, "0 failed") && marks > 0
	})
	if s := w.liveCell(b1, "health", true); s != "not checked" {
		t.Fatalf("b1 health %q, want not checked", s)
	}

	// Drain b2 with its button: the next requests avoid it.
	w.liveButton(b2, "drain")
	w.waitCell(b2, "state", 10*time.Second, "draining", func(s string) bool { return s == "draining" })
	if s := w.liveCell(b2, "state", true); !strings.Contains(s, "Drn") {
		t.Fatalf("b2 state %q: httpd's status string should show Drn", s)
	}
	if m := apiMemberFlags(t, apiURL, "web")[b2]; m.Flags != "ON" {
		t.Fatalf("b2 flags after Drain: %s, want ON", m.Flags)
	}
	if got := traffic(t, site+"/", 12); got["b2"] != 0 || got["b1"]+got["b3"] != 12 || got["b1"] == 0 || got["b3"] == 0 {
		t.Fatalf("with b2 drained: %v", got)
	}

	// Weight 3 for b3: byrequests then sends it three requests in four.
	lf := w.find("css selector", fmt.Sprintf(`tr[data-member="%s"] input`, b3))
	w.clear(lf)
	w.sendKeys(lf, "3")
	w.liveButton(b3, "weight")
	w.waitCell(b3, "weight", 10*time.Second, "weight 3", func(s string) bool { return s == "3" })
	if got := traffic(t, site+"/", 12); got["b1"] != 3 || got["b3"] != 9 || got["b2"] != 0 {
		t.Fatalf("b1 at 1, b3 at 3, b2 drained: %v, want b1:3 b3:9", got)
	}

	// Enable b2 again.
	w.liveButton(b2, "enable")
	w.waitCell(b2, "state", 10*time.Second, "ok", func(s string) bool { return s == "ok" })
	if m := apiMemberFlags(t, apiURL, "web")[b2]; m.Flags != "O" {
		t.Fatalf("b2 flags after Enable: %s, want O", m.Flags)
	}

	// A page on another origin posts the right form, nonce included, to the
	// live view: refused, nothing changes.
	nonce := decodeBalancer(t, adminDo(t, "GET", apiURL+"/web", "")).Nonce
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(rw, `<!DOCTYPE html><title>evil</title>
<form id="f" method="POST" action="%s/balancer-manager?view=live">
<input type="hidden" name="b" value="web"><input type="hidden" name="w" value="%s">
<input type="hidden" name="nonce" value="%s"><input type="hidden" name="action" value="disable">
</form><script>document.getElementById('f').submit()</script>`, site, b1, nonce)
	}))
	defer evil.Close()
	w.do("POST", "/url", map[string]string{"url": evil.URL})
	hcWaitFor(t, 10*time.Second, "the cross-site form's answer", func() bool {
		var body string
		w.script(&body, "return document.body ? document.body.innerText : ''")
		return strings.Contains(body, "must come from the live view itself")
	})
	if m := apiMemberFlags(t, apiURL, "web")[b1]; m.Flags != "O" {
		t.Fatalf("b1 flags after the cross-site form: %s, want O", m.Flags)
	}

	if os.Getenv("LIVE_SCREENSHOT") != "" {
		liveScreenshot(t, w)
	}
}

// liveScreenshot runs a shop's two balancers under mixed traffic for two
// minutes (members of different speeds, one with a slow tail, one failing
// some health checks, one drained half-way) and saves the live view as
// docs/live-view.png.
func liveScreenshot(t *testing.T, w *webDriver) {
	bs := startBackends(t, 6)
	speed := []time.Duration{6 * time.Millisecond, 11 * time.Millisecond, 18 * time.Millisecond, 4 * time.Millisecond, 9 * time.Millisecond, 30 * time.Millisecond}
	var flaky atomic.Bool
	for i, b := range bs {
		base := speed[i]
		b.SetHandler(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				if i == 5 && flaky.Load() && rand.IntN(2) == 0 {
					rw.WriteHeader(http.StatusInternalServerError)
				}
				return
			}
			d := base/2 + time.Duration(rand.Int64N(int64(base)))
			if i == 1 && rand.IntN(20) == 0 {
				d += 120 * time.Millisecond // a slow tail
			}
			time.Sleep(d)
			if i == 2 && rand.IntN(50) == 0 {
				rw.WriteHeader(http.StatusBadGateway)
			}
			fmt.Fprint(rw, b.Name)
		})
	}
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
}
%s {
	handle /balancer-manager* {
		balancer_manager
	}
	handle /favicon.ico {
		respond 404
	}
	handle /api/* {
		balancer api {
			lbmethod bybusyness
			balancer_member %s route=api1 {
				hcmethod GET
				hcuri /health
				hcinterval 2s
			}
			balancer_member %s route=api2 {
				hcmethod GET
				hcuri /health
				hcinterval 2s
				hcfails 2
			}
		}
	}
	handle {
		balancer shop {
			stickysession JSESSIONID|jsessionid
			balancer_member %s route=web1
			balancer_member %s route=web2
			balancer_member %s route=web3 loadfactor=2
			balancer_member %s route=web4 status=+H
		}
	}
}`, site, bs[4].URL, bs[5].URL, bs[0].URL, bs[1].URL, bs[2].URL, bs[3].URL))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cl := &http.Client{Timeout: 10 * time.Second}
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(40+rand.IntN(160)) * time.Millisecond):
				}
				path := "/shop/item"
				if c%3 == 0 {
					path = "/api/v1/stock"
				}
				if resp, err := cl.Get(site + path); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	w.do("POST", "/window/rect", map[string]int{"width": 1280, "height": 1000})
	w.do("POST", "/url", map[string]string{"url": site + "/balancer-manager?view=live"})
	w.waitTitle("Balancers, live")
	time.Sleep(50 * time.Second)
	flaky.Store(true)
	time.Sleep(20 * time.Second)
	w.liveButton(bs[1].URL, "drain")
	time.Sleep(45 * time.Second)
	close(stop)
	wg.Wait()
	w.screenshot(filepath.Join("docs", "live-view.png"))
}
