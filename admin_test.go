package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lbset/caddy-balancer/api"
)

// Integration tests of the JSON admin API (/balancers) on a real admin
// endpoint, with the traffic checked against real backends.

// adminDo sends a request with an optional JSON body to the admin endpoint.
func adminDo(t *testing.T, method, url, body string) result {
	t.Helper()
	var req *http.Request
	var err error
	if body == "" {
		req, err = http.NewRequest(method, url, nil)
	} else {
		req, err = http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// wantError checks a JSON error answer.
func wantError(t *testing.T, r result, status int, contains string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var e map[string]string
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e["error"] == "" {
		t.Fatalf("not a JSON error: %q", r.Body)
	}
	if !strings.Contains(e["error"], contains) {
		t.Fatalf("error %q does not mention %q", e["error"], contains)
	}
}

func decodeMember(t *testing.T, r result) api.Member {
	t.Helper()
	var m api.Member
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("member JSON: %v\n%s", err, r.Body)
	}
	return m
}

func decodeBalancer(t *testing.T, r result) api.Balancer {
	t.Helper()
	var b api.Balancer
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("balancer JSON: %v\n%s", err, r.Body)
	}
	return b
}

func TestAdminJSONAPI(t *testing.T) {
	bs := startBackends(t, 4)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiURL := fmt.Sprintf("http://localhost:%d/balancers", aport) // the admin Host check allows localhost:PORT
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	balancer api1 {
		growth 1
		balancer_member %s route=r1
		balancer_member %s route=r2 loadfactor=2
	}
}`, aport, site, bs[0].URL, bs[1].URL))

	// GET /balancers and /balancers/{name}
	r := adminDo(t, "GET", apiURL, "")
	var all []api.Balancer
	if err := json.Unmarshal([]byte(r.Body), &all); err != nil || r.Status != 200 {
		t.Fatalf("GET /balancers: %d %v %s", r.Status, err, r.Body)
	}
	if len(all) != 1 || all[0].Name != "api1" || len(all[0].Members) != 2 {
		t.Fatalf("balancers %+v", all)
	}
	b := decodeBalancer(t, adminDo(t, "GET", apiURL+"/api1", ""))
	m2 := b.Members[1]
	if b.LBMethod != "byrequests" || b.MaxMembers != 3 || b.FreeSlots != 1 || b.MaxAttempts != 1 ||
		m2.Name != bs[1].URL || m2.LoadFactor != 2 || m2.Route != "r2" || m2.Status != "Init Ok" || m2.Flags != "O" || !m2.Usable {
		t.Fatalf("balancer %+v", b)
	}
	// The JSON's status has no trailing space; httpd's XML keeps it.
	if x := adminDo(t, "GET", fmt.Sprintf("http://localhost:%d/balancer-manager?xml=1", aport), "").Body; !strings.Contains(x, "<httpd:status>Init Ok </httpd:status>") {
		t.Errorf("manager XML without httpd's status string:\n%s", x)
	}
	wantError(t, adminDo(t, "GET", apiURL+"/nope", ""), 404, "nope")
	wantError(t, adminDo(t, "GET", apiURL+"/api1/members/"+url.PathEscape("http://127.0.0.1:1"), ""), 404, "no member")
	wantError(t, adminDo(t, "GET", apiURL+"/api1/other", ""), 404, "no such")

	// PATCH a member by URL: disable it; traffic follows.
	m1URL := apiURL + "/api1/members/" + url.PathEscape(bs[0].URL)
	m := decodeMember(t, adminDo(t, "PATCH", m1URL, `{"status": "+D"}`))
	if m.Status != "Init Dis" || m.Usable {
		t.Fatalf("after +D: %+v", m)
	}
	for _, got := range sequence(t, site+"/", 6) {
		if got != "b2" {
			t.Fatalf("request went to %s with b1 disabled", got)
		}
	}
	// By route; several fields at once.
	m = decodeMember(t, adminDo(t, "PATCH", apiURL+"/api1/members/r1",
		`{"status": "-D+N-N", "loadfactor": 3, "lbset": 0, "redirect": "r2", "hcmethod": "get", "hcuri": "/health", "hcinterval": "2s"}`))
	if m.Status != "Init Ok" || m.LoadFactor != 3 || m.LBStatus != 300 || m.Redirect != "r2" ||
		m.HCMethod != "GET" || m.HCURI != "/health" || m.HCInterval != "2s" {
		t.Fatalf("after patch: %+v", m)
	}
	// Bad input: 400, nothing changed.
	for body, msg := range map[string]string{
		`{"lbset": 100}`:                               "lbset",
		`{"loadfactor": 0.5}`:                          "loadfactor",
		`{"loadfactor": 101}`:                          "loadfactor",
		`{"status": "+E"}`:                             "cannot be changed",
		`{"status": "X"}`:                              "cannot be changed",
		`{"route": "` + strings.Repeat("x", 64) + `"}`: "route",
		`{"bogus": 1}`:                                 "unknown field",
		`{"lbset": "1"}`:                               "decoding",
		`not json`:                                     "decoding",
		`{"hcmethod": "PUT"}`:                          "hcmethod",
		`{"hcinterval": "10ms"}`:                       "hcinterval",
		`{"hcexpr": "%{REQUEST_STATUS} ~~"}`:           "hcexpr",
		`{"url": "http://x"}`:                          "url",
		`{"lbset": 5, "loadfactor": 1000}`:             "loadfactor",
	} {
		wantError(t, adminDo(t, "PATCH", m1URL, body), 400, msg)
	}
	wantError(t, adminDo(t, "PATCH", m1URL, ""), 400, "empty")
	if m := decodeMember(t, adminDo(t, "GET", m1URL, "")); m.LBSet != 0 || m.LoadFactor != 3 {
		t.Fatalf("a rejected patch changed the member: %+v", m)
	}

	// PATCH the balancer.
	b = decodeBalancer(t, adminDo(t, "PATCH", apiURL+"/api1",
		`{"lbmethod": "bybusyness", "timeout": "5s", "maxattempts": 0, "stickysession": "JSESSIONID|jsessionid", "nofailover": true}`))
	if b.LBMethod != "bybusyness" || b.Timeout != "5s" || b.MaxAttempts != 0 || b.StickySession != "JSESSIONID|jsessionid" || !b.NoFailover {
		t.Fatalf("after balancer patch: %+v", b)
	}
	for _, mm := range b.Members {
		if mm.LBStatus != 0 {
			t.Errorf("lbmethod switch did not reset %s: %d", mm.Name, mm.LBStatus)
		}
	}
	b = decodeBalancer(t, adminDo(t, "PATCH", apiURL+"/api1", `{"timeout": 3, "stickysession": ""}`))
	if b.Timeout != "3s" || b.StickySession != "" {
		t.Fatalf("timeout as seconds / sticky cleared: %+v", b)
	}
	adminDo(t, "PATCH", apiURL+"/api1", `{"timeout": "0s"}`)
	for body, msg := range map[string]string{
		`{"lbmethod": "heartbeat"}`: "lbmethod",
		`{"timeout": "3h"}`:         "timeout",
		`{"timeout": "soon"}`:       "decoding",
		`{"maxattempts": 100}`:      "maxattempts",
		`{"name": "x"}`:             "unknown field",
	} {
		wantError(t, adminDo(t, "PATCH", apiURL+"/api1", body), 400, msg)
	}

	// POST a member: starts Disabled; within growth only.
	r = adminDo(t, "POST", apiURL+"/api1/members", fmt.Sprintf(`{"url": %q, "route": "r3"}`, bs[2].URL))
	if r.Status != 201 {
		t.Fatalf("POST member: %d %s", r.Status, r.Body)
	}
	if m := decodeMember(t, r); m.Status != "Init Dis" || !m.Dynamic || m.Route != "r3" {
		t.Fatalf("new member %+v", m)
	}
	wantError(t, adminDo(t, "POST", apiURL+"/api1/members", fmt.Sprintf(`{"url": %q}`, bs[3].URL)), 409, "slot")
	wantError(t, adminDo(t, "POST", apiURL+"/api1/members", fmt.Sprintf(`{"url": %q}`, bs[0].URL+"/sub")), 409, "exists")
	wantError(t, adminDo(t, "POST", apiURL+"/api1/members", `{"route": "x"}`), 400, "url")
	// Enable it by route: now it takes requests.
	adminDo(t, "PATCH", apiURL+"/api1/members/r3", `{"status": "-D"}`)
	adminDo(t, "PATCH", apiURL+"/api1/members/r1", `{"status": "+D"}`)
	adminDo(t, "PATCH", apiURL+"/api1/members/r2", `{"status": "+S"}`)
	if got := strings.Join(sequence(t, site+"/", 3), " "); got != "b3 b3 b3" {
		t.Fatalf("with only the added member enabled: %s", got)
	}
	// DELETE: configured members cannot be removed; added ones can.
	wantError(t, adminDo(t, "DELETE", m1URL, ""), 409, "configuration")
	if r := adminDo(t, "DELETE", apiURL+"/api1/members/"+url.PathEscape(bs[2].URL), ""); r.Status != 204 {
		t.Fatalf("DELETE added member: %d %s", r.Status, r.Body)
	}
	wantError(t, adminDo(t, "DELETE", apiURL+"/api1/members/r3", ""), 404, "no member")
	if r := get(t, site+"/"); r.Status != 503 {
		t.Fatalf("with every member disabled or stopped: %d", r.Status)
	}
	// The slot is free again: adding with "status": "-D" enables at once.
	r = adminDo(t, "POST", apiURL+"/api1/members", fmt.Sprintf(`{"url": %q, "status": "-D", "loadfactor": 1.5}`, bs[3].URL))
	if m := decodeMember(t, r); r.Status != 201 || m.Status != "Init Ok" || m.LoadFactor != 1.5 {
		t.Fatalf("POST enabled member: %d %s", r.Status, r.Body)
	}
	if got := get(t, site+"/"); got.Backend != "b4" {
		t.Fatalf("request went to %q, want b4", got.Backend)
	}

	// Methods.
	wantError(t, adminDo(t, "DELETE", apiURL, ""), 405, "not allowed")
	wantError(t, adminDo(t, "PUT", apiURL+"/api1", "{}"), 405, "not allowed")
	wantError(t, adminDo(t, "POST", m1URL, "{}"), 405, "not allowed")
}

// TestAdminReloadKeepsRuntimeChanges: a config reload keeps the changes made
// at run time (member flags and parameters, added members, balancer
// parameters) where the configuration did not change.
func TestAdminReloadKeepsRuntimeChanges(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	cfg := func(aport int, extra string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer rl {
		growth 1
		%s
		balancer_member %s route=r1
		balancer_member %s route=r2
	}
}`, aport, port, extra, bs[0].URL, bs[1].URL)
	}
	aport := freePort(t)
	loadCaddyfile(t, cfg(aport, ""))
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers/rl", aport)
	adminDo(t, "PATCH", apiURL, `{"lbmethod": "bytraffic", "timeout": "0s", "nofailover": true}`)
	adminDo(t, "PATCH", apiURL+"/members/r1", `{"status": "+D", "loadfactor": 4}`)
	adminDo(t, "POST", apiURL+"/members", fmt.Sprintf(`{"url": %q, "route": "r3"}`, bs[2].URL))

	// Reload, same config (a new admin port avoids racing the admin server swap).
	aport = freePort(t)
	loadCaddyfile(t, cfg(aport, ""))
	apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/rl", aport)
	b := decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if b.LBMethod != "bytraffic" || !b.NoFailover || len(b.Members) != 3 ||
		b.Members[0].Status != "Init Dis" || b.Members[0].LoadFactor != 4 || b.Members[2].Route != "r3" {
		t.Fatalf("after reload: %+v", b)
	}
	// Reload with the balancer parameters changed in the config: config wins
	// for them; the unchanged members keep their state.
	aport = freePort(t)
	loadCaddyfile(t, cfg(aport, "lbmethod bybusyness"))
	apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/rl", aport)
	b = decodeBalancer(t, adminDo(t, "GET", apiURL, ""))
	if b.LBMethod != "bybusyness" || b.NoFailover || b.Members[0].Status != "Init Dis" {
		t.Fatalf("after reload with new parameters: %+v", b)
	}
}
