package caddybalancer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Fuzz targets of the glue's parsers of untrusted input: the Caddyfile
// directive, the balancer-manager request pipeline (push2table, the Referer
// and nonce gates, the form, the HTML/XML rendering) and the JSON API
// handlers. Plain `go test` runs the seeds (f.Add and testdata/fuzz/<Target>/);
// CI (.ci/fuzz.sh) fuzzes one target per invocation for a fixed number of
// executions, e.g.
//
//	go test -run '^$' -fuzz '^FuzzManagerRequest$' -fuzztime 12000x .
//
// Properties: no panic; no 5xx from the manager or the API, whatever the
// input; pages carry no markup but their own (no injection); the engine's
// fields stay within httpd's ranges.

// fuzzEntry registers a balancer named name in the live registry for one
// fuzz iteration, as a config load would, and removes it afterwards.
func fuzzEntry(t *testing.T, name string) *registryEntry {
	t.Helper()
	cfg := balancer.Config{
		Name: name, Nonce: "n", NonceSet: true, Growth: 2, ForceRecovery: true,
		StickySession: "JSESSIONID", StickyPath: "jsessionid", StickySeparator: '.',
		Members: []balancer.MemberConfig{
			{URL: "http://127.0.0.1:1", Route: "r1"},
			{URL: "http://127.0.0.1:2/app", Route: "r2", Redirect: "r1"},
		},
	}
	v, _, err := balancers.LoadOrNew(name, func() (caddy.Destructor, error) {
		b, err := balancer.New(cfg)
		if err != nil {
			return nil, err
		}
		return &registryEntry{name: name, bal: b}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := v.(*registryEntry)
	t.Cleanup(func() {
		liveParams.Delete(e.bal)
		persistOrder.Delete(e.bal)
		_, _ = balancers.Delete(name)
	})
	return e
}

// checkRanges checks the engine's fields against httpd's ranges.
func checkRanges(t *testing.T, b *balancer.Balancer) {
	t.Helper()
	v := b.View()
	if _, err := balancer.MethodByName(v.LBMethod); err != nil {
		t.Fatalf("lbmethod %q", v.LBMethod)
	}
	if v.Timeout < 0 || v.MaxAttempts < 0 || v.MaxAttempts > 99 || len(v.StickySession) > 63 || len(v.StickyPath) > 63 ||
		len(v.Members) > v.MaxMembers {
		t.Fatalf("balancer out of range: %+v", v)
	}
	for _, m := range v.Members {
		if m.LoadFactor < 100 || m.LoadFactor > 10000 || m.LBSet < 0 || m.LBSet > 99 || len(m.Route) > 63 ||
			len(m.Redirect) > 63 || m.Busy < 0 || m.HC.Validate() != nil {
			t.Fatalf("member out of range: %+v", m.MemberState)
		}
	}
}

var fuzzMethods = []string{"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "TRACE"}

// FuzzManagerRequest sends one hostile request through the whole
// balancer-manager pipeline of either home (strict: the site handler's
// Referer gate; lax: the admin endpoint's) with a same-host Referer, so that
// changes made with the nonce "n" are applied.
func FuzzManagerRequest(f *testing.F) {
	seeds := []struct {
		method uint8
		query  string
		body   string
	}{
		{0, "", ""},
		{0, "b=fz&w=http://127.0.0.1:2/app/x&nonce=n", ""},
		{0, "b=FZ/x&xml=1", ""},
		{2, "", "b=fz&nonce=n&w=http%3A%2F%2F127.0.0.1%3A1&w_lf=2.5&w_ls=3&w_wr=%3Cscript%3E&w_rr=r2&w_status_D=1"},
		{2, "", "b=fz&nonce=n&b_lbm=bybusyness&b_tmo=5&b_max=2&b_sforce=1&b_ss=A%7Cb&b_nwrkr=http%3A%2F%2F127.0.0.1%3A9&b_wyes=1"},
		{2, "", "b=fz&nonce=n&b_nwrkr=ajp%3A%2F%2F%5B%3A%3A1%5D%3A8080&b_wyes=1"},
		{2, "", "b=fz&nonce=n&w=http://127.0.0.1:1&w_hm=GET&w_hi=100&w_hp=2&w_hf=3&w_hu=%2F%22%3E%3Ci%3E&w_he=%25%7BREQUEST_STATUS%7D+%3D%3D+200&xml"},
		{2, "", "b=fz&nonce=n&w=http%253A%252F%252F127.0.0.1%253A1&w_wr=a%2500b&w_lf=1e400"},
		{2, "", "b=fz&nonce=n&b_ss=%22%3E%3Cu%3E%7C%3Cq%3E&w=http://127.0.0.1:2/app&w_wr=" + strings.Repeat("%3C", 30)},
		{3, "b=fz&nonce=n", "b=fz&nonce=n&w_status_D=1"},
		{6, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.query, s.body, true)
		f.Add(s.method, s.query, s.body, false)
	}
	f.Fuzz(func(t *testing.T, method uint8, query, body string, strict bool) {
		e := fuzzEntry(t, "fz")
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req, err := http.NewRequest(m, "http://127.0.0.1/balancer-manager", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.RawQuery = query
		req.Header.Set("Referer", "http://127.0.0.1/balancer-manager")
		rec := httptest.NewRecorder()
		serveManager(rec, req, managerOptions{strictReferer: strict, only: []string{"fz"}, uri: "/balancer-manager"})
		switch rec.Code {
		case 200, 400, 405:
		default:
			t.Fatalf("%s ?%q body %q: status %d", m, query, body, rec.Code)
		}
		page := rec.Body.String()
		switch {
		case rec.Code != 200 || m == "HEAD" || m == "OPTIONS":
		case strings.HasPrefix(page, "<?xml"):
			checkMarkup(t, "XML", page, xmlTag)
		default:
			checkMarkup(t, "HTML", page, htmlTag)
		}
		checkRanges(t, e.bal)
		// And the page after the change.
		req = httptest.NewRequest("GET", "http://127.0.0.1/balancer-manager?b=fz&w=http://127.0.0.1:1", nil)
		req.Header.Set("Referer", "http://127.0.0.1/")
		rec = httptest.NewRecorder()
		serveManager(rec, req, managerOptions{strictReferer: true, only: []string{"fz"}, uri: "/balancer-manager"})
		checkMarkup(t, "HTML after the change", rec.Body.String(), htmlTag)
	})
}

// FuzzPush2Table: httpd's form parsing never panics, decodes values twice
// and keys once, and stops a decoded string at NUL; the GET key filter only
// drops keys.
func FuzzPush2Table(f *testing.F) {
	for _, s := range []string{"", "a=b", "b=x&b=y", "w=a%252Fb", "k", "&&=&", "x=%00y", "%41=%2541", "a=%zz&%=%%", "w_wr=x+y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		all := map[string]string{}
		push2table(input, all, nil)
		some := map[string]string{}
		push2table(input, some, managerGetKeys)
		for k, v := range some {
			if all[k] != v {
				t.Fatalf("filtered %q=%q differs from unfiltered %q", k, v, all[k])
			}
		}
		for k, v := range all {
			if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("NUL survived decoding: %q=%q", k, v)
			}
		}
		if u := unescapeURL(input); len(u) > len(input) || (!strings.Contains(input, "%") && u != input) {
			t.Fatalf("unescapeURL(%q) = %q", input, u)
		}
		if i := strings.IndexByte(input, 0); i >= 0 {
			// A C string: nothing after the NUL counts.
			cut := map[string]string{}
			push2table(input[:i], cut, nil)
			if len(cut) != len(all) {
				t.Fatalf("%q: %d parameters, %d before the NUL", input, len(all), len(cut))
			}
		} else if !strings.Contains(input, "%") {
			for _, piece := range strings.Split(input, "&") {
				if piece == "" {
					continue
				}
				k, _, _ := strings.Cut(piece, "=")
				if _, ok := all[k]; !ok {
					t.Fatalf("key %q of %q lost", k, input)
				}
			}
		}
	})
}

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
		e := fuzzEntry(t, "fz")
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
		a := &AdminManager{logger: zap.NewNop()}
		if err := a.serveAPI(rec, req); err != nil {
			t.Fatalf("serveAPI returned %v", err)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", m, p, body, rec.Code, rec.Body.String())
		}
		if rec.Code != http.StatusNoContent && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: not JSON: %q", m, p, rec.Body.String())
		}
		checkRanges(t, e.bal)
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

// FuzzCaddyfileBalancer adapts a hostile balancer block through the
// Caddyfile adapter; when it adapts, the handler's configuration must turn
// into an engine configuration or an error, never a panic.
func FuzzCaddyfileBalancer(f *testing.F) {
	for _, s := range []string{
		"foo {\n\tbalancer_member http://127.0.0.1:1 route=r1 loadfactor=2.5 lbset=1 status=+H-I\n\tbalancer_member http://127.0.0.1:2\n}",
		"balancer://Foo/x {\n\tlbmethod bybusyness\n\tstickysession JSESSIONID|jsessionid\n\tstickysessionsep off\n\tnofailover on\n\tmaxattempts 3\n\ttimeout 5\n\tfailonstatus 500,503 502\n\tgrowth 5\n\tnonce None\n\tbalancer_member http://h:1\n}",
		"{\n\tbalancer_member http://127.0.0.1:1 {\n\t\troute r1\n\t\thcmethod GET\n\t\thcuri /h\n\t\thcexpr %{REQUEST_STATUS} =~ /^2/\n\t\thcinterval 1s\n\t}\n}",
		"x {\n\tbalancer_member http://a:1\n\tbalancer_member HTTP://A:1/\n}",
		"x {\n\tbalancer_member http://a:1 loadfactor=1e400 retry=-1 timeout=0\n}",
		"x {\n\troute_cookie path=/; HttpOnly\n\tproxy_pass_reverse / balancer://x/app\n\tproxy_pass_reverse_cookie_domain a b\n\theader_up Host {upstream_hostport}\n\tbalancer_member http://a:1\n}",
		"x {\n\tto http://a:1\n}",
		"x y z",
		"{\n}",
		"x {\n\tbalancer_member http://a:1 status=\n\tbalancer_member http://b:1 status=+\n}",
		"@m path /x\n",
		"x {\n\t@err status 500\n\thandle_response @err {\n\t\trespond 502\n\t}\n\tbalancer_member http://a:1\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		if strings.Contains(strings.ToLower(block), "import") {
			return // would read files
		}
		src := "{\n\tadmin off\n}\nhttp://127.0.0.1:1 {\n\tbalancer " + block + "\n}\n"
		js, err := adaptCaddyfileErr(src)
		if err != nil {
			return
		}
		var cfg any
		if err := json.Unmarshal(js, &cfg); err != nil {
			t.Fatalf("adapter produced invalid JSON: %v", err)
		}
		for _, raw := range findHandlers(cfg, "balancer") {
			var h Handler
			if err := json.Unmarshal(raw, &h); err != nil {
				continue // reverse_proxy fields the fuzzer filled with junk
			}
			ec, err := h.engineConfig()
			if err != nil {
				continue
			}
			if _, err := balancer.New(ec); err != nil {
				continue
			}
		}
	})
}

// findHandlers returns the JSON of every handler object with that name.
func findHandlers(v any, name string) []json.RawMessage {
	var out []json.RawMessage
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == name {
			js, _ := json.Marshal(x)
			out = append(out, js)
		}
		for _, c := range x {
			out = append(out, findHandlers(c, name)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, findHandlers(c, name)...)
		}
	}
	return out
}
