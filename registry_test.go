package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Tests of the registry across config loads: a load Caddy rejects changes
// nothing, a load it runs applies in full, and balancers that leave the
// configuration leave nothing behind.

// reloadConfig is a config with balancer "rj" (lbmethod, persist and members
// as given) on port, admin on aport, storage in dir, and extra JSON routes
// and servers.
func reloadConfig(aport, port int, dir, lbmethod string, persist bool, members []string, extraRoute, extraServer string) []byte {
	var ms []string
	for i, m := range members {
		ms = append(ms, fmt.Sprintf(`{"url": %q, "route": "r%d"}`, m, i+1))
	}
	return []byte(fmt.Sprintf(`{
	"admin": {"listen": "127.0.0.1:%d", "config": {"persist": false}},
	"storage": {"module": "file_system", "root": %q},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {"http": {"servers": {
		"front": {"listen": ["127.0.0.1:%d"], "routes": [%s{"handle": [{"handler": "balancer", "name": "rj",
			"lbmethod": %q, "persist": %v, "growth": 2, "members": [%s]}]}]}%s
	}}}
}`, aport, dir, port, extraRoute, lbmethod, persist, strings.Join(ms, ","), extraServer))
}

// TestRejectedLoadChangesNothing loads a config, makes run-time changes,
// then tries two new configs that Caddy rejects after the balancer handler
// was provisioned (a listener on a port that is taken; a later handler that
// fails to load). Each time the balancer must be exactly as before: members,
// lbmethod, run-time flags, persistence. Then a good load applies in full.
func TestRejectedLoadChangesNothing(t *testing.T) {
	bs := startBackends(t, 3)
	dir := t.TempDir()
	port, aport := freePort(t), freePort(t)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers/rj", aport)
	good := reloadConfig(aport, port, dir, "byrequests", true, []string{bs[0].URL, bs[1].URL}, "", "")
	loadCaddy(t, good)
	if r := adminDo(t, "PATCH", apiURL+"/members/r2", `{"status": "+D"}`); r.Status != 200 {
		t.Fatalf("disable r2: %d %s", r.Status, r.Body)
	}
	before := adminDo(t, "GET", apiURL, "").Body

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := map[string][]byte{
		"port taken": reloadConfig(aport, port, dir, "bybusyness", false, []string{bs[0].URL, bs[2].URL}, "",
			fmt.Sprintf(`, "other": {"listen": [%q], "routes": []}`, taken.Addr().String())),
		"later handler fails": reloadConfig(aport, port, dir, "bybusyness", false, []string{bs[0].URL, bs[2].URL},
			`{"match": [{"path": ["/x"]}], "handle": [{"handler": "encode", "encodings": {"no-such-encoding": {}}}]},`, ""),
	}
	for name, cfg := range bad {
		if err := caddy.Load(cfg, true); err == nil {
			t.Fatalf("%s: the config was accepted", name)
		}
		after := adminDo(t, "GET", apiURL, "")
		if after.Status != 200 || !sameBalancerJSON(t, after.Body, before) {
			t.Fatalf("%s: the rejected load changed the balancer:\nbefore %s\nafter  %s", name, before, after.Body)
		}
		// Persistence is still on: a change is written to the state file.
		if r := adminDo(t, "PATCH", apiURL+"/members/r1", `{"lbset": 3}`); r.Status != 200 {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
		data, err := os.ReadFile(filepath.Join(dir, "balancer", "rj.json"))
		if err != nil || !strings.Contains(string(data), `"lbset": 3`) {
			t.Fatalf("%s: persistence is off after the rejected load: %v\n%s", name, err, data)
		}
		adminDo(t, "PATCH", apiURL+"/members/r1", `{"lbset": 0}`)
		// Requests are served by the old members.
		if got := sequence(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 2); got[0] != bs[0].Name || got[1] != bs[0].Name {
			t.Fatalf("%s: after the rejected load requests went to %v, want only %s (r2 is disabled)", name, got, bs[0].Name)
		}
	}

	// A load Caddy runs applies in full.
	next := reloadConfig(aport, port, dir, "bybusyness", false, []string{bs[0].URL, bs[2].URL}, "", "")
	if err := caddy.Load(next, true); err != nil {
		t.Fatal(err)
	}
	b := decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if b.LBMethod != "bybusyness" || b.Persist || len(b.Members) != 2 || b.Members[1].URL != bs[2].URL {
		t.Fatalf("the good load was not applied: %+v", b)
	}
}

// sameBalancerJSON compares two GET /balancers/{name} answers but for the
// counters that requests move.
func sameBalancerJSON(t *testing.T, a, b string) bool {
	t.Helper()
	strip := func(s string) string {
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("balancer JSON: %v\n%s", err, s)
		}
		for _, m := range v["members"].([]any) {
			for _, k := range []string{"elected", "busy", "transferred", "read", "lbstatus"} {
				delete(m.(map[string]any), k)
			}
		}
		out, _ := json.Marshal(v)
		return string(out)
	}
	return strip(a) == strip(b)
}

// TestRenamedLoadsLeaveNothing: 1,000 config loads, each naming its
// balancers anew (with health checks and persistence), leave the heap and
// the goroutine count flat: every balancer that leaves the configuration is
// destructed with everything it owns.
func TestRenamedLoadsLeaveNothing(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	port := freePort(t)
	cfg := func(i int) []byte {
		return []byte(fmt.Sprintf(`{
	"admin": {"disabled": true, "config": {"persist": false}},
	"storage": {"module": "file_system", "root": %q},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {"http": {"servers": {"front": {"listen": ["127.0.0.1:%d"], "routes": [
		{"match": [{"path": ["/a/*"]}], "handle": [{"handler": "balancer", "name": "a%d", "persist": true, "members": [
			{"url": %q, "hcmethod": "TCP", "hcinterval": "1h"}, {"url": %q}]}]},
		{"handle": [{"handler": "balancer", "name": "b%d", "members": [{"url": %q}]}]}
	]}}}}
}`, dir, port, i, bs[0].URL, bs[1].URL, i, bs[0].URL))
	}
	const loads = 1000
	var heap100 uint64
	var gor100 int
	for i := 0; i < loads; i++ {
		if err := caddy.Load(cfg(i), true); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if i == 99 {
			heap100, gor100 = settle()
		}
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	heapEnd, gorEnd := settle()
	if n := countBalancers(); n != 2 {
		t.Errorf("%d balancers in the registry, want the last load's 2", n)
	}
	t.Logf("after 100 loads: heap %d KiB, %d goroutines; after %d: heap %d KiB, %d goroutines",
		heap100>>10, gor100, loads, heapEnd>>10, gorEnd)
	if gorEnd > gor100+2 {
		t.Errorf("goroutines grew from %d to %d over %d loads", gor100, gorEnd, loads-100)
	}
	// A leak of even 2 KiB per load would add 1.8 MiB.
	if heapEnd > heap100+1<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB over %d loads", heap100>>10, heapEnd>>10, loads-100)
	}
}

// settle waits for the goroutines of stopped servers to end, then returns
// the heap in use after a GC and the goroutine count.
func settle() (uint64, int) {
	prev := -1
	for i := 0; i < 100; i++ {
		n := runtime.NumGoroutine()
		if n == prev {
			break
		}
		prev = n
		time.Sleep(20 * time.Millisecond)
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

// countBalancers counts the registry's entries.
func countBalancers() int {
	n := 0
	balancers.Range(func(any, any) bool { n++; return true })
	return n
}

// TestReferenceBeforeDefinition: a Caddyfile `handle` block that refers to
// a balancer by name is provisioned before the site's `balancer` block that
// defines it (Caddy orders handle first). The balancer still gets its
// members: both routes are served by them.
func TestReferenceBeforeDefinition(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
}

http://127.0.0.1:%d {
	handle /api/* {
		balancer app
	}
	balancer app {
		balancer_member %s
		balancer_member %s
	}
}
`, port, bs[0].URL, bs[1].URL))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	got := append(sequence(t, base+"/api/x", 2), sequence(t, base+"/x", 2)...)
	if strings.Join(got, " ") != "b1 b2 b1 b2" {
		t.Errorf("answers: %v, want b1 b2 b1 b2", got)
	}
}
