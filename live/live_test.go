package live

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// site serves the live view of the given balancers (each with a sampler that
// took one sample) at /balancer-manager, as the balancer_manager handler
// mounts it.
func site(t *testing.T, only []string, bals ...*balancer.Balancer) *httptest.Server {
	t.Helper()
	var samplers []*Sampler
	for _, b := range bals {
		s := NewSampler(b, 5*time.Second, 60)
		s.Take(time.Now().Add(-5 * time.Second))
		samplers = append(samplers, s)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Wants(r) {
			http.Error(w, "httpd's manager page", http.StatusTeapot)
			return
		}
		Serve(w, r, Options{Samplers: func() []*Sampler { return samplers }, Only: only, ManagerURI: "/balancer-manager"})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// post sends a change with the given form and headers ("Name: value").
func post(t *testing.T, srv *httptest.Server, form url.Values, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/balancer-manager?view=live", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error  string `json:"error"`
		Status string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error + body.Status
}

func flags(b *balancer.Balancer, name string) (string, int) {
	st := b.FindMemberByName(name).State()
	return st.Status.Letters(), st.LoadFactor
}

func form(b *balancer.Balancer, action string, kv ...string) url.Values {
	f := url.Values{"b": {b.Name()}, "w": {"http://b:1"}, "nonce": {b.Nonce()}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func TestWants(t *testing.T) {
	for q, want := range map[string]bool{
		"view=live": true, "b=web&view=live&format=json": true, "view=live&asset=live.js": true,
		"": false, "view=livex": false, "xview=live": false, "b=web&w=http://b:1&nonce=x": false, "xml=1": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/balancer-manager?"+q, nil)
		if Wants(r) != want {
			t.Errorf("Wants(?%s) = %v, want %v", q, !want, want)
		}
	}
}

// Each button's change, made as the page makes it (a same-origin fetch),
// and what the member's flags and loadfactor are afterwards.
func TestChanges(t *testing.T) {
	b := newBalancer(t)
	srv := site(t, nil, b)
	same := []string{"Origin: " + srv.URL, "Sec-Fetch-Site: same-origin"}
	for _, c := range []struct {
		action, lf string
		flags      string
		lbfactor   int
	}{
		{"drain", "", "ON", 300},
		{"disable", "", "OND", 300},
		{"enable", "", "O", 300},
		{"weight", "2.5", "O", 250},
		{"weight", " 100 ", "O", 10000},
	} {
		code, msg := post(t, srv, form(b, c.action, "lf", c.lf), same...)
		if code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.action, c.lf, code, msg)
		}
		if f, lf := flags(b, "http://b:1"); f != c.flags || lf != c.lbfactor {
			t.Fatalf("after %s %s: flags %s lbfactor %d, want %s %d", c.action, c.lf, f, lf, c.flags, c.lbfactor)
		}
	}
	// A client that is not a browser (no Origin, no Sec-Fetch-Site) with the
	// nonce, as curl: allowed.
	if code, msg := post(t, srv, form(b, "drain")); code != http.StatusOK {
		t.Fatalf("curl-like drain: %d %s", code, msg)
	}
	if f, _ := flags(b, "http://b:1"); f != "ON" {
		t.Fatalf("after curl-like drain: %s", f)
	}
}

// Nothing a cross-site page can send changes anything, not even with the
// right nonce; nor does a request without the nonce, a bad value or a
// method other than POST. Each answer says why.
func TestRefusedChanges(t *testing.T) {
	b := newBalancer(t)
	ro, err := balancer.New(balancer.Config{Name: "ro", Nonce: "", NonceSet: true, Members: []balancer.MemberConfig{{URL: "http://b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := balancer.New(balancer.Config{Name: "hidden", Members: []balancer.MemberConfig{{URL: "http://b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := site(t, []string{"web", "ro"}, b, ro, hidden)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		name    string
		form    url.Values
		headers []string
		code    int
		msg     string
	}{
		{"cross-site fetch", form(b, "disable"), []string{"Sec-Fetch-Site: cross-site", "Origin: http://evil.example"}, 403, "Sec-Fetch-Site: cross-site"},
		{"same-site other port", form(b, "disable"), []string{"Sec-Fetch-Site: same-site", "Origin: http://127.0.0.1:1"}, 403, "Sec-Fetch-Site: same-site"},
		{"other origin, no Sec-Fetch-Site", form(b, "disable"), []string{"Origin: http://evil.example"}, 403, "Origin: http://evil.example"},
		{"other port", form(b, "disable"), []string{"Origin: http://" + strings.Split(host, ":")[0] + ":1"}, 403, "Origin:"},
		{"opaque origin", form(b, "disable"), []string{"Origin: null"}, 403, "Origin: null"},
		{"no nonce", form(b, "disable", "nonce", ""), nil, 403, "nonce is missing or wrong"},
		{"wrong nonce", form(b, "disable", "nonce", b.Nonce()+"x"), nil, 403, "nonce is missing or wrong"},
		{"read-only balancer", url.Values{"b": {"ro"}, "w": {"http://b:1"}, "nonce": {""}, "action": {"disable"}}, nil, 403, "read-only"},
		{"balancer not shown here", url.Values{"b": {"hidden"}, "w": {"http://b:1"}, "nonce": {hidden.Nonce()}, "action": {"disable"}}, nil, 404, `no balancer "hidden"`},
		{"unknown member", form(b, "disable", "w", "http://c:1"), nil, 404, `no member "http://c:1"`},
		{"unknown action", form(b, "stop"), nil, 400, `not "stop"`},
		{"weight out of range", form(b, "weight", "lf", "150"), nil, 400, "loadfactor must be a number from 1 to 100, not 150"},
		{"weight not a number", form(b, "weight", "lf", "x"), nil, 400, `loadfactor must be a number from 1 to 100, not "x"`},
		{"weight missing", form(b, "weight"), nil, 400, `loadfactor must be a number from 1 to 100, not ""`},
		{"body too large", form(b, "disable", "pad", strings.Repeat("x", BodyLimit)), nil, 400, "at most 4096 bytes"},
	} {
		code, msg := post(t, srv, c.form, c.headers...)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.code, c.msg)
		}
	}
	// Not a form (a JSON body a cross-site page could not send without a
	// preflight is refused too: one format), and not POST.
	for _, c := range []struct {
		method, ctype string
		code          int
	}{
		{http.MethodPost, "application/json", 415},
		{http.MethodPost, "text/plain", 415},
		{http.MethodPut, "application/x-www-form-urlencoded", 405},
		{http.MethodDelete, "", 405},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+"/balancer-manager?view=live", strings.NewReader(form(b, "disable").Encode()))
		req.Header.Set("Content-Type", c.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.ctype, resp.StatusCode, c.code)
		}
	}
	// A GET with every parameter of a change changes nothing.
	resp, err := http.Get(srv.URL + "/balancer-manager?view=live&" + form(b, "disable").Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if f, lf := flags(b, "http://b:1"); f != "O" || lf != 300 {
		t.Fatalf("after the refused changes: flags %s lbfactor %d, want O 300", f, lf)
	}
	if f, _ := flags(hidden, "http://b:1"); f != "O" {
		t.Fatalf("hidden balancer changed: %s", f)
	}
}

// The page, its assets and its data: types, the headers that keep other
// sites out (no framing, no sniffing, a CSP without inline script), the link
// to httpd's page for browsers without JavaScript, and the data of the
// balancers shown only.
func TestPageAndData(t *testing.T) {
	b := newBalancer(t)
	hidden, _ := balancer.New(balancer.Config{Name: "hidden", Members: []balancer.MemberConfig{{URL: "http://b:1"}}})
	srv := site(t, []string{"web"}, b, hidden)
	get := func(q string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/balancer-manager?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	resp, body := get("view=live")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if resp.Header.Get(k) != v {
			t.Errorf("page header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.Contains(body, `<noscript>`) || !strings.Contains(body, `<a href="/balancer-manager">The balancer-manager</a>`) {
		t.Errorf("page has no link to httpd's page for browsers without JavaScript:\n%s", body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
		t.Errorf("page has inline script or style, which its CSP forbids:\n%s", body)
	}
	for asset, ctype := range map[string]string{"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"} {
		resp, body := get("view=live&asset=" + asset)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || len(body) < 1000 {
			t.Errorf("%s: %d %s, %d bytes", asset, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if resp, _ := get("view=live&asset=../live.go"); resp.StatusCode != 404 {
		t.Errorf("unknown asset: %d", resp.StatusCode)
	}
	resp, body = get("view=live&format=json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("data: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d Data
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Balancers) != 1 || d.Balancers[0].Name != "web" || len(d.Balancers[0].Members) != 2 || d.IntervalSeconds != 5 {
		t.Fatalf("data: %s", body)
	}
	if resp, _ := get("b=web"); resp.StatusCode != http.StatusTeapot {
		t.Fatalf("a request without view=live reached the live view: %d", resp.StatusCode)
	}
}
