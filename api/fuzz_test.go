package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/internal/balancertest"
)

var fuzzMethods = []string{"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "TRACE"}

var fuzzAPIPaths = []string{"", "/", "/fz", "/FZ", "/balancer:%2F%2Ffz", "/fz/members", "/fz/members/r1", "/fz/members/r2",
	"/fz/members/http%3A%2F%2F127.0.0.1%3A1", "/fz/members/http%3A%2F%2F127.0.0.1%3A2%2Fapp%2Fdeeper", "/fz/other", "/nope/members"}

// FuzzAdminAPI sends one hostile JSON API request (method, path under
// /balancers, body) to the API handler: never a 5xx, always a JSON answer
// (or none for 204 and HEAD), and the balancer stays within httpd's ranges.
func FuzzAdminAPI(f *testing.F) {
	bodies := []string{
		"", "{}", "null", "[]", `{"lbmethod": "bybusyness", "timeout": "5s", "maxattempts": 0, "stickysession": "A|b", "nofailover": true}`,
		`{"timeout": 1e300}`, `{"timeout": -1}`, `{"timeout": "9999999h"}`, `{"maxattempts": 1e10}`,
		`{"status": "+D-N", "loadfactor": 2.5, "lbset": 3, "route": "<x>", "redirect": "r1"}`,
		`{"loadfactor": 1e308}`, `{"loadfactor": -0}`, `{"status": "+"}`, `{"hcmethod": "GET", "hcuri": "/h", "hcinterval": "1s", "hcexpr": "%{REQUEST_STATUS} == 200"}`,
		`{"url": "http://127.0.0.1:9", "status": "-D", "route": "r9"}`, `{"url": "javascript:alert(1)"}`, `{"url": "http://127.0.0.1:1/sub"}`,
		`{"hcinterval": 1e19}`, `{"hcpasses": -1, "hcfails": 2147483648}`, `{"lbset": 5}{"lbset": 6}`, `{"url": null}`,
	}
	for i, b := range bodies {
		for _, m := range []uint8{0, 2, 3, 4} {
			f.Add(m, fuzzAPIPaths[(i+int(m))%len(fuzzAPIPaths)], b)
		}
	}
	f.Fuzz(func(t *testing.T, method uint8, path, body string) {
		b, err := balancer.New(balancertest.FuzzConfig("fz"))
		if err != nil {
			t.Fatal(err)
		}
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req, err := http.NewRequest(m, "http://127.0.0.1/balancers", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// The raw path as a client sends it; the admin mux has routed it here
		// because it starts with /balancers.
		p := "/balancers" + path
		req.URL.Path, req.URL.RawPath = p, ""
		if strings.Contains(path, "%") {
			if dec, err := pathUnescapeLax(p); err == nil {
				req.URL.Path, req.URL.RawPath = dec, p
			}
		}
		rec := httptest.NewRecorder()
		Handler{Balancers: func() []*balancer.Balancer { return []*balancer.Balancer{b} }}.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", m, p, body, rec.Code, rec.Body.String())
		}
		if rec.Code != http.StatusNoContent && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: not JSON: %q", m, p, rec.Body.String())
		}
		balancertest.CheckRanges(t, b)
	})
}

// pathUnescapeLax decodes %XX escapes as a server does for URL.Path.
func pathUnescapeLax(s string) (string, error) {
	u, err := http.NewRequest("GET", "http://h"+s, nil)
	if err != nil {
		return "", err
	}
	return u.URL.Path, nil
}
