package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lbset/caddy-balancer/api"
)

// Integration tests of `persist on` (httpd's BalancerPersist): run-time
// changes are written to Caddy's storage and restored after a restart.

func persistConfig(aport, port int, dir string, persist string, members ...string) string {
	var ms strings.Builder
	for _, m := range members {
		ms.WriteString("\t\tbalancer_member " + m + "\n")
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	balancer pers {
		persist %s
		growth 2
%s	}
}`, aport, dir, port, persist, ms.String())
}

func TestPersistAcrossRestart(t *testing.T) {
	bs := startBackends(t, 4)
	dir := t.TempDir()
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	apiURL := admin + "/balancers/pers"
	m1, m2, m3 := bs[0].URL+" route=r1", bs[1].URL+" route=r2", bs[2].URL+" route=r3"
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", m1, m2, m3))

	b := decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if !b.Persist {
		t.Fatal("persist not reported")
	}
	nonce := b.Nonce
	if !strings.Contains(get(t, admin+"/balancer-manager").Body, "Balancer changes will be persisted on restart.") {
		t.Error("page does not say changes are persisted")
	}
	// Changes through the JSON API and the manager form.
	adminDo(t, "PATCH", apiURL+"/members/r1", `{"status": "+D"}`)
	adminDo(t, "PATCH", apiURL, `{"lbmethod": "bybusyness", "timeout": 2}`)
	if r := adminDo(t, "POST", apiURL+"/members", fmt.Sprintf(`{"url": %q, "status": "-D", "route": "r4"}`, bs[3].URL)); r.Status != 201 {
		t.Fatalf("add: %d %s", r.Status, r.Body)
	}
	mgPost(t, admin+"/balancer-manager", "b=pers&nonce="+nonce+"&w="+url.QueryEscape(bs[1].URL)+"&w_lf=3&w_rr=r3")
	data, err := os.ReadFile(filepath.Join(dir, "balancer", "pers.json"))
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if !json.Valid(data) {
		t.Fatalf("state file is not JSON: %s", data)
	}

	// Restart: stop Caddy entirely, then start it with the same config.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	// A fresh admin port on every load: Caddy replaces its admin server at
	// each load, and a request racing the old one's shutdown gets reset.
	aport = freePort(t)
	apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/pers", aport)
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", m1, m2, m3))
	b = decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if b.Nonce != nonce || b.LBMethod != "bybusyness" || b.Timeout != "2s" || len(b.Members) != 4 {
		t.Fatalf("after restart: %+v", b)
	}
	byRoute := map[string]api.Member{}
	for _, m := range b.Members {
		byRoute[m.Route] = m
	}
	if byRoute["r1"].Status != "Init Dis" || byRoute["r2"].LoadFactor != 3 || byRoute["r2"].Redirect != "r3" ||
		byRoute["r4"].Status != "Init Ok" || !byRoute["r4"].Dynamic {
		t.Fatalf("members after restart: %+v", b.Members)
	}
	for _, got := range sequence(t, site+"/", 8) {
		if got == "b1" || got == "503" {
			t.Fatalf("after restart a request went to %s (b1 is disabled)", got)
		}
	}

	// Restart with member 2's configuration changed: the configuration wins
	// for that member only; the balancer parameters and the others stay.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	aport = freePort(t)
	apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/pers", aport)
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", m1, bs[1].URL+" route=r2 loadfactor=2", m3))
	b = decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	byRoute = map[string]api.Member{}
	for _, m := range b.Members {
		byRoute[m.Route] = m
	}
	if byRoute["r2"].LoadFactor != 2 || byRoute["r2"].Redirect != "" {
		t.Errorf("changed member: saved state won over the config: %+v", byRoute["r2"])
	}
	if byRoute["r1"].Status != "Init Dis" || byRoute["r4"].Name != bs[3].URL || b.LBMethod != "bybusyness" {
		t.Errorf("unchanged parts not restored: %+v", b)
	}

	// A reload (not a restart) keeps the live state and does not read the file.
	adminDo(t, "PATCH", apiURL+"/members/r1", `{"status": "-D"}`)
	aport = freePort(t)
	apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/pers", aport)
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", m1, bs[1].URL+" route=r2 loadfactor=2", m3+" lbset=0"))
	if m := decodeMember(t, adminDo(t, "GET", apiURL+"/members/r1", "")); m.Status != "Init Ok" {
		t.Errorf("after reload r1 is %q", m.Status)
	}
}

func TestPersistCorruptAndOff(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	port, aport := freePort(t), freePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	apiURL := admin + "/balancers/pers"
	if err := os.MkdirAll(filepath.Join(dir, "balancer"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "balancer", "pers.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A corrupt file is logged and ignored.
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", bs[0].URL, bs[1].URL))
	b := decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if len(b.Members) != 2 || b.Members[0].Status != "Init Ok" {
		t.Fatalf("with a corrupt file: %+v", b)
	}
	// The next change overwrites it.
	adminDo(t, "PATCH", apiURL+"/members/"+url.PathEscape(bs[0].URL), `{"lbset": 1}`)
	if data, _ := os.ReadFile(file); !json.Valid(data) {
		t.Fatalf("file not rewritten: %s", data)
	}

	// With persist off nothing is written or read.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	aport = freePort(t)
	admin = fmt.Sprintf("http://127.0.0.1:%d", aport)
	apiURL = admin + "/balancers/pers"
	loadCaddyfile(t, persistConfig(aport, port, dir, "off", bs[0].URL, bs[1].URL))
	adminDo(t, "PATCH", apiURL+"/members/"+url.PathEscape(bs[0].URL), `{"lbset": 1}`)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("persist off wrote the file: %v", err)
	}
	if strings.Contains(get(t, admin+"/balancer-manager").Body, "will be persisted") {
		t.Error("page says changes are persisted")
	}
}

// TestPersistFailureVisible: when the state cannot be written, the change
// stands but everyone who looks is told: the JSON API's answer and balancer
// JSON, the manager page, the metric and the event. The next successful
// write clears the error.
func TestPersistFailureVisible(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	// balancer/ is a file: every write of balancer/pf.json fails, even as root.
	blocker := filepath.Join(dir, "balancer")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	port, aport := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", aport)
	apiURL := "http://" + admin + "/balancers/pf"
	loadCaddy(t, []byte(fmt.Sprintf(`{
	"admin": {"listen": %q, "config": {"persist": false}},
	"storage": {"module": "file_system", "root": %q},
	"apps": {
		"events": {"subscriptions": [{"events": ["balancer_persist_failed"], "handlers": [{"handler": "balancer_test_recorder"}]}]},
		"http": {"servers": {"s": {"listen": ["127.0.0.1:%d"], "routes": [{"handle": [
			{"handler": "balancer", "name": "pf", "persist": true, "members": [{"url": %q, "route": "r1"}, {"url": %q}]}]}]}}}
	}
}`, admin, dir, port, bs[0].URL, bs[1].URL)))

	r := adminDo(t, "PATCH", apiURL+"/members/r1", `{"status": "+D"}`)
	m := decodeMember(t, r)
	if r.Status != 200 || m.Flags != "OD" || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "not persisted") {
		t.Fatalf("answer to the change: %d %+v, want 200, the change, and a warning that it was not persisted", r.Status, m)
	}
	b := decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if !b.Persist || b.PersistError == "" || len(b.Warnings) != 1 {
		t.Fatalf("balancer JSON: persist %v, persist_error %q, warnings %q", b.Persist, b.PersistError, b.Warnings)
	}
	if page := get(t, "http://"+admin+"/balancer-manager").Body; !strings.Contains(page, "balancer://pf: the change is in force but was not persisted") {
		t.Errorf("manager page shows no notice:\n%s", page)
	}
	if v := scrapeMetrics(t, admin)[`caddy_balancer_persist_failures_total{balancer="pf"}`]; v != 1 {
		t.Errorf("caddy_balancer_persist_failures_total = %v, want 1", v)
	}
	recordedMu.Lock()
	var failed []map[string]any
	for _, d := range recordedEvents {
		if d["_name"] == PersistFailedEvent && d["balancer"] == "pf" {
			failed = append(failed, d)
		}
	}
	recordedMu.Unlock()
	if len(failed) != 1 || failed[0]["key"] != "balancer/pf.json" || failed[0]["error"] == "" {
		t.Errorf("balancer_persist_failed events: %v", failed)
	}

	// The storage works again: the next change is written and the error clears.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	r = adminDo(t, "PATCH", apiURL+"/members/r1", `{"lbset": 2}`)
	if m := decodeMember(t, r); len(m.Warnings) != 0 {
		t.Fatalf("warnings after a good write: %q", m.Warnings)
	}
	if b := decodeBalancer(t, adminDo(t, "GET", apiURL, "")); b.PersistError != "" {
		t.Fatalf("persist_error after a good write: %q", b.PersistError)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "balancer", "pf.json")); err != nil || !strings.Contains(string(data), `"flags": "D"`) {
		t.Fatalf("state file after recovery: %v\n%s", err, data)
	}
}

// TestPersistRemovesOrphans: temporary files that writes killed halfway left
// under balancer/ are removed at start, once old enough that no other
// process can still be writing them; the state file is untouched.
func TestPersistRemovesOrphans(t *testing.T) {
	bs := startBackends(t, 1)
	dir := t.TempDir()
	bdir := filepath.Join(dir, "balancer")
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for _, name := range []string{"123456789", "987654321"} {
		p := filepath.Join(bdir, name)
		if err := os.WriteFile(p, []byte(`{"half`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	fresh := filepath.Join(bdir, "555555555") // a write of another node, in progress
	if err := os.WriteFile(fresh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(bdir, "notes.txt")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(other, old, old); err != nil {
		t.Fatal(err)
	}
	port, aport := freePort(t), freePort(t)
	loadCaddyfile(t, persistConfig(aport, port, dir, "on", bs[0].URL))
	for _, gone := range []string{"123456789", "987654321"} {
		if _, err := os.Stat(filepath.Join(bdir, gone)); !os.IsNotExist(err) {
			t.Errorf("orphan %s not removed: %v", gone, err)
		}
	}
	for _, kept := range []string{fresh, other} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s removed: %v", kept, err)
		}
	}
}
