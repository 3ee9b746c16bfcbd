package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
