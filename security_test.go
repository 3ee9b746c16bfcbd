package caddybalancer

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/internal/balancertest"
	"github.com/lbset/caddy-balancer/manager"
)

// Security tests of the balancer-manager (site handler and admin endpoint)
// and the JSON API, after httpd's security history (docs/behaviour.md §10): CSRF (the
// Referer gate and the nonce, CVE-2007-6420 and the 2.4.41 hardening), XSS
// (CVE-2007-6421, CVE-2012-4558, PR 56532), hostile balancer names
// (CVE-2007-6422), the method set, the 1024-byte body read, and Caddy's own
// Host and Origin checks on the admin endpoint.

// secState is everything a manager change could touch: the balancer's
// snapshot (parameters, and every member's parameters and manager flags) plus
// the member count.
func secState(t *testing.T, name string) string {
	t.Helper()
	b := lookupBalancer(name)
	if b == nil {
		t.Fatalf("no balancer %q", name)
	}
	js, err := json.Marshal(b.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// secPost sends a POST with a form body; headers are "Name: value" lines,
// "Host: x" sets the request's Host.
func secPost(t *testing.T, u, body string, headers ...string) result {
	t.Helper()
	return secDo(t, http.MethodPost, u, body, headers...)
}

func secDo(t *testing.T, method, u, body string, headers ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return do(t, req)
}

// changeEverything is a manager form that changes every worker and balancer
// field and adds a member, for balancer sec and its first member m.
func changeEverything(m, nonce string, extraPort int) string {
	return "b=sec&w=" + url.QueryEscape(m) + "&nonce=" + nonce +
		"&w_lf=7&w_ls=3&w_wr=zz&w_rr=yy&w_status_D=1&w_status_H=1&w_status_I=1&w_hm=GET&w_hu=/hc" +
		"&b_lbm=bybusyness&b_tmo=9&b_max=0&b_sforce=1&b_ss=S1" +
		fmt.Sprintf("&b_nwrkr=http%%3A%%2F%%2F127.0.0.1%%3A%d&b_wyes=1", extraPort)
}

func secConfig(aport, port int, nonce string, bs []*backend) string {
	admin := "admin off"
	if aport != 0 {
		admin = fmt.Sprintf("admin 127.0.0.1:%d", aport)
	}
	return fmt.Sprintf(`{
	%s
	persist_config off
}
http://127.0.0.1:%d {
	handle /balancer-manager* {
		balancer_manager
	}
	handle {
		balancer sec {
			nonce %s
			growth 1
			balancer_member %s route=r1
			balancer_member %s route=r2
		}
	}
}`, admin, port, nonce, bs[0].URL, bs[1].URL)
}

// TestSecuritySiteManagerCSRF: on the site handler (httpd's exact Referer
// gate), a change needs a Referer naming this host and the balancer's nonce;
// every other combination changes nothing at all.
func TestSecuritySiteManagerCSRF(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	mgr := site + "/balancer-manager"
	const nonce = "6b1c0a52-1111-2222-3333-444455556666"
	loadCaddyfile(t, secConfig(0, port, nonce, bs))
	good := "Referer: " + mgr
	body := changeEverything(bs[0].URL, nonce, bs[2].Port)
	before := secState(t, "sec")

	attacks := []struct {
		name, body string
		headers    []string
	}{
		{"no Referer", body, nil},
		{"cross-site Referer", body, []string{"Referer: http://evil.example/balancer-manager"}},
		{"look-alike host Referer", body, []string{"Referer: http://127.0.0.1.evil.example/balancer-manager"}},
		{"Referer host as path", body, []string{"Referer: http://evil.example/127.0.0.1/balancer-manager"}},
		{"relative Referer", body, []string{"Referer: /balancer-manager"}},
		{"Referer without host", body, []string{"Referer: http:///balancer-manager"}},
		{"javascript Referer", body, []string{"Referer: javascript:alert(1)"}},
		{"wrong nonce", strings.Replace(body, nonce, "00000000-0000-0000-0000-000000000000", 1), []string{good}},
		{"nonce in other case", strings.Replace(body, nonce, strings.ToUpper(nonce), 1), []string{good}},
		{"nonce prefix", strings.Replace(body, nonce, nonce[:8], 1), []string{good}},
		{"empty nonce", strings.Replace(body, "nonce="+nonce, "nonce=", 1), []string{good}},
		{"missing nonce", strings.Replace(body, "&nonce="+nonce, "", 1), []string{good}},
		{"nonce of a cross-site form", body, []string{"Referer: http://evil.example/", "Origin: http://evil.example"}},
	}
	for _, a := range attacks {
		r := secPost(t, mgr, a.body, a.headers...)
		if r.Status != 200 {
			t.Errorf("%s: status %d, want 200 (httpd ignores the parameters)", a.name, r.Status)
		}
		if got := secState(t, "sec"); got != before {
			t.Fatalf("%s changed the balancer:\nbefore %s\nafter  %s", a.name, before, got)
		}
	}
	// A GET carrying the change in its query string: only b, w, nonce and
	// xml are kept, so nothing changes even with a good Referer and nonce.
	if r := get(t, mgr+"?"+body, good); r.Status != 200 {
		t.Errorf("GET with changes: %d", r.Status)
	}
	if got := secState(t, "sec"); got != before {
		t.Fatalf("a GET changed the balancer:\nbefore %s\nafter  %s", before, got)
	}
	// A POST's query string is ignored as well.
	secPost(t, mgr+"?"+body, "b=sec&nonce="+nonce, good)
	if got := secState(t, "sec"); got != before {
		t.Fatalf("a POST's query string changed the balancer")
	}
	// Traffic still reaches the member the attacks tried to disable.
	if got := strings.Join(sequence(t, site+"/", 4), " "); !strings.Contains(got, "b1") {
		t.Fatalf("b1 gets no traffic after the attacks: %s", got)
	}

	// Positive control: the same body with a same-host Referer and the nonce
	// changes everything (the Referer's scheme and port do not matter).
	if r := secPost(t, mgr, body, "Referer: https://127.0.0.1:1/elsewhere"); r.Status != 200 {
		t.Fatalf("legitimate change: %d %s", r.Status, r.Body)
	}
	v := lookupBalancer("sec").View()
	m := v.Members[0]
	if v.LBMethod != "bybusyness" || !v.NoFailover || v.StickySession != "S1" || len(v.Members) != 3 ||
		m.LoadFactor != 700 || m.LBSet != 3 || m.Route != "zz" || m.Status.String() != "Init Ign Dis Stby " {
		t.Fatalf("legitimate change not applied: %+v", v)
	}
}

// TestSecurityAdminManagerCSRF: on the admin endpoint the manager drops the
// parameters of a cross-site Referer and needs the nonce; Caddy's admin
// server answers 403 to a foreign Host or Origin before the manager or the
// JSON API sees the request.
func TestSecurityAdminManagerCSRF(t *testing.T) {
	bs := startBackends(t, 3)
	port, aport := freePort(t), freePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	mgr := admin + "/balancer-manager"
	api := admin + "/balancers/sec"
	const nonce = "0f0f0f0f-aaaa-bbbb-cccc-ddddeeeeffff"
	loadCaddyfile(t, secConfig(aport, port, nonce, bs))
	body := changeEverything(bs[0].URL, nonce, bs[2].Port)
	before := secState(t, "sec")

	for _, a := range []struct {
		name    string
		status  int
		headers []string
	}{
		{"cross-site Referer", 200, []string{"Referer: http://evil.example/balancer-manager"}},
		{"look-alike Referer", 200, []string{"Referer: http://127.0.0.1.evil.example/"}},
		{"foreign Host", 403, []string{"Host: evil.example"}},
		{"foreign Host with its own Referer", 403, []string{"Host: evil.example", "Referer: http://evil.example/"}},
		{"foreign Host, admin port", 403, []string{fmt.Sprintf("Host: evil.example:%d", aport)}},
		{"foreign Origin", 403, []string{"Origin: http://evil.example"}},
		{"foreign Origin, same-host Referer", 403, []string{"Origin: http://evil.example", "Referer: " + mgr}},
		{"Origin on another port", 403, []string{"Origin: http://127.0.0.1:1"}},
		{"Origin null", 400, []string{"Origin: null"}},
		{"no-cors fetch", 400, []string{"Sec-Fetch-Mode: no-cors"}},
		{"cross-site fetch", 403, []string{"Sec-Fetch-Mode: cors", "Sec-Fetch-Site: cross-site"}},
	} {
		r := secPost(t, mgr, body, a.headers...)
		if r.Status != a.status {
			t.Errorf("manager, %s: status %d, want %d", a.name, r.Status, a.status)
		}
		if got := secState(t, "sec"); got != before {
			t.Fatalf("manager, %s changed the balancer:\nbefore %s\nafter  %s", a.name, before, got)
		}
		if a.status == 200 {
			continue
		}
		// The JSON API sits behind the same checks.
		for _, req := range []struct{ method, url, body string }{
			{"PATCH", api, `{"lbmethod": "bybusyness", "nofailover": true}`},
			{"PATCH", api + "/members/r1", `{"status": "+D", "loadfactor": 9}`},
			{"POST", api + "/members", fmt.Sprintf(`{"url": %q, "status": "-D"}`, bs[2].URL)},
			{"DELETE", api + "/members/r1", ""},
		} {
			r := secDo(t, req.method, req.url, req.body, a.headers...)
			if r.Status != a.status {
				t.Errorf("API %s %s, %s: status %d, want %d", req.method, req.url, a.name, r.Status, a.status)
			}
		}
		if got := secState(t, "sec"); got != before {
			t.Fatalf("API, %s changed the balancer", a.name)
		}
	}
	// Wrong, missing and empty nonces change nothing on the admin endpoint
	// either, with or without a Referer.
	for _, b := range []string{
		strings.Replace(body, nonce, "nope", 1),
		strings.Replace(body, "&nonce="+nonce, "", 1),
		strings.Replace(body, "nonce="+nonce, "nonce=", 1),
	} {
		secPost(t, mgr, b)
		secPost(t, mgr, b, "Referer: "+mgr)
	}
	if got := secState(t, "sec"); got != before {
		t.Fatalf("a bad nonce changed the balancer")
	}

	// Positive controls: the admin's own origin is accepted, with Host
	// localhost:PORT too.
	if r := secPost(t, mgr, "b=sec&w="+url.QueryEscape(bs[0].URL)+"&nonce="+nonce+"&w_ls=4",
		fmt.Sprintf("Origin: http://127.0.0.1:%d", aport)); r.Status != 200 {
		t.Fatalf("same-origin POST: %d %s", r.Status, r.Body)
	}
	if m := decodeMember(t, adminDo(t, "GET", fmt.Sprintf("http://localhost:%d/balancers/sec/members/r1", aport), "")); m.LBSet != 4 {
		t.Fatalf("same-origin change not applied: %+v", m)
	}
}

// TestSecurityNonceNone: `nonce None` makes the manager read-only on the site
// handler whatever nonce is sent (httpd 2.4.49+); the page still renders.
func TestSecurityNonceNone(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	mgr := site + "/balancer-manager"
	loadCaddyfile(t, secConfig(0, port, "None", bs))
	if n := lookupBalancer("sec").Nonce(); n != "" {
		t.Fatalf("nonce None: engine nonce %q", n)
	}
	before := secState(t, "sec")
	body := changeEverything(bs[0].URL, "", bs[2].Port)
	for _, n := range []string{"", "None", "none", "null", "undefined", "%00", "*"} {
		secPost(t, mgr, strings.Replace(body, "&nonce=", "&nonce="+n, 1), "Referer: "+mgr)
	}
	secPost(t, mgr, strings.Replace(body, "&nonce=", "", 1), "Referer: "+mgr)
	if got := secState(t, "sec"); got != before {
		t.Fatalf("nonce None: the manager changed the balancer:\nbefore %s\nafter  %s", before, got)
	}
	page := get(t, mgr, "Referer: "+mgr)
	if page.Status != 200 || !strings.Contains(page.Body, "balancer://sec") {
		t.Fatalf("read-only page: %d", page.Status)
	}
}

// Payloads of the XSS tests: each holds a character that HTML escaping
// changes, so none may appear verbatim in a page.
const (
	xssRoute    = `<script>alert('r')</script>`
	xssRedirect = `"><img src=x onerror=alert(1)>`
	xssHCURI    = `/h'onmouseover='alert(3)`
	xssSticky   = `<s>`
	xssName     = "x\"><svg\fonload=alert(4)>" // no white space, '/', '?' or '#': a valid balancer name
)

// formEscape %-encodes a form value for the manager, whose parser (httpd's
// push2table) does not turn '+' into a space.
func formEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// TestSecurityEscaping: routes, redirects, sticky names, hc URIs, member URLs
// and balancer names, set through the configuration and through the manager
// form (w_wr, w_rr, w_hu, b_ss), come out escaped in the HTML page, its edit
// forms and the XML; hostile b and w parameters select nothing and are not
// echoed (CVE-2007-6421, CVE-2007-6422, CVE-2012-4558, PR 56532).
func TestSecurityEscaping(t *testing.T) {
	bs := startBackends(t, 2)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	mgr := site + "/balancer-manager"
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	const nonce = "n-xss"
	cfg := map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", aport), "config": map[string]any{"persist": false}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"xss": map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{
				map[string]any{
					"match":    []any{map[string]any{"path": []string{"/balancer-manager*"}}},
					"handle":   []any{map[string]any{"handler": "balancer_manager"}},
					"terminal": true,
				},
				map[string]any{"handle": []any{map[string]any{
					"handler": "balancer", "name": xssName, "nonce": nonce, "stickysession": xssSticky + "|p",
					"members": []any{
						map[string]any{"url": bs[0].URL + "/a'b", "route": xssRoute, "redirect": xssRedirect,
							"hcmethod": "GET", "hcuri": xssHCURI, "hcinterval": "1h"},
						map[string]any{"url": bs[1].URL, "route": "r2"},
					},
				}}},
			},
		}}}},
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loadCaddy(t, js)
	name := strings.ToLower(xssName)
	if lookupBalancer(name) == nil {
		t.Fatalf("balancer %q not running", name)
	}
	payloads := []string{xssRoute, xssRedirect, xssHCURI, xssSticky, name, "<script", "<img", "<svg"}
	ref := "Referer: " + mgr
	w1 := bs[0].URL + "/a'b"
	q := "?b=" + formEscape(name) + "&nonce=" + nonce

	pages := map[string]string{
		"site page":      get(t, mgr, ref).Body,
		"admin page":     get(t, admin+"/balancer-manager").Body,
		"balancer form":  get(t, mgr+q, ref).Body,
		"worker form":    get(t, mgr+q+"&w="+url.QueryEscape(w1), ref).Body,
		"admin form":     get(t, admin+"/balancer-manager"+q+"&w="+url.QueryEscape(w1)).Body,
		"XML":            get(t, mgr+"?xml=1", ref).Body,
		"admin XML":      get(t, admin+"/balancer-manager?xml=1").Body,
		"sub-path page":  get(t, mgr+"/<script>x", ref).Body,
		"hostile b":      get(t, mgr+"?b="+url.QueryEscape("<script>alert(5)</script>")+"&nonce="+nonce, ref).Body,
		"hostile w":      get(t, mgr+q+"&w="+url.QueryEscape("http://<script>alert(6)</script>"), ref).Body,
		"traversal b":    get(t, mgr+"?b=..%2F..%2Fetc%2Fpasswd&w=%00&nonce=%00", ref).Body,
		"very long b":    get(t, mgr+"?b="+strings.Repeat("b", 8000), ref).Body,
		"forged Referer": get(t, mgr+q, "Referer: http://x/\"><script>alert(7)</script>").Body,
	}
	if !strings.Contains(pages["worker form"], "Edit worker settings") || !strings.Contains(pages["balancer form"], "Edit balancer settings") {
		t.Fatalf("edit forms not rendered:\n%s", pages["worker form"])
	}
	for what, page := range pages {
		if strings.HasPrefix(what, "XML") || strings.HasPrefix(what, "admin XML") {
			if !strings.HasPrefix(page, "<?xml") {
				t.Fatalf("%s: not XML: %.200s", what, page)
			}
			balancertest.CheckMarkup(t, what, page, balancertest.XMLTag, payloads...)
			continue
		}
		balancertest.CheckMarkup(t, what, page, balancertest.HTMLTag, payloads...)
	}
	for _, p := range []string{"&lt;script&gt;alert(&#39;r&#39;)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(pages["site page"], p) {
			t.Errorf("site page lacks the escaped payload %q", p)
		}
	}
	if !strings.Contains(pages["XML"], "<httpd:route>&lt;script&gt;") {
		t.Errorf("XML route not escaped as expected")
	}

	// The same through the manager form: route, redirect, hc uri and sticky
	// set with the nonce are escaped on the next rendering.
	const (
		formRoute  = `<script>alert(8)</script>`
		formRedir  = `'><b onclick=alert(9)>`
		formHCURI  = `/"<i>`
		formSticky = `"><u>|<q>`
	)
	body := "b=" + formEscape(name) + "&nonce=" + nonce + "&w=" + formEscape(bs[1].URL) +
		"&w_wr=" + formEscape(formRoute) + "&w_rr=" + formEscape(formRedir) +
		"&w_hm=GET&w_hu=" + formEscape(formHCURI) + "&b_ss=" + formEscape(formSticky)
	if r := secPost(t, mgr, body, ref); r.Status != 200 {
		t.Fatalf("form: %d", r.Status)
	}
	m := lookupBalancer(name).FindMemberByRoute(formRoute)
	if m == nil || m.View().Redirect != formRedir {
		t.Fatalf("the form did not set the hostile route and redirect")
	}
	formPayloads := append(payloads, formRoute, formRedir, formHCURI, formSticky, "<b ", "<u>", "<q>", "<i>")
	balancertest.CheckMarkup(t, "page after form", get(t, mgr, ref).Body, balancertest.HTMLTag, formPayloads...)
	balancertest.CheckMarkup(t, "worker form after form", get(t, mgr+q+"&w="+url.QueryEscape(bs[1].URL), ref).Body, balancertest.HTMLTag, formPayloads...)
	balancertest.CheckMarkup(t, "balancer form after form", get(t, mgr+q, ref).Body, balancertest.HTMLTag, formPayloads...)
	balancertest.CheckMarkup(t, "XML after form", get(t, mgr+"?xml=1", ref).Body, balancertest.XMLTag, formPayloads...)

	// The JSON API encodes the same values as JSON, never as markup.
	r := adminDo(t, "GET", admin+"/balancers/"+url.PathEscape(name), "")
	if ct := r.Header.Get("Content-Type"); ct != "application/json" || strings.Contains(r.Body, "<script") {
		t.Fatalf("JSON API: Content-Type %q, raw markup in body: %v", ct, strings.Contains(r.Body, "<script"))
	}
}

// TestSecurityMethods: the manager answers GET, HEAD, POST and OPTIONS (as
// httpd); any other method is 405 with Allow, reads no parameters and changes
// nothing.
func TestSecurityMethods(t *testing.T) {
	bs := startBackends(t, 3)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	const nonce = "n-methods"
	loadCaddyfile(t, secConfig(aport, port, nonce, bs))
	body := changeEverything(bs[0].URL, nonce, bs[2].Port)
	before := secState(t, "sec")
	for _, mgr := range []string{site + "/balancer-manager", admin + "/balancer-manager"} {
		ref := "Referer: " + mgr
		for _, method := range []string{"PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "MKCOL", "LOCK", "FOO"} {
			r := secDo(t, method, mgr+"?"+body, body, ref)
			if r.Status != 405 {
				t.Errorf("%s %s: %d, want 405", method, mgr, r.Status)
			}
			if a := r.Header.Get("Allow"); !strings.Contains(a, "GET") || !strings.Contains(a, "POST") || strings.Contains(a, method) {
				t.Errorf("%s %s: Allow %q", method, mgr, a)
			}
		}
		if r := secDo(t, "HEAD", mgr, "", ref); r.Status != 200 || r.Body != "" {
			t.Errorf("HEAD %s: %d, %d bytes", mgr, r.Status, len(r.Body))
		}
		if r := secDo(t, "OPTIONS", mgr, "", ref); r.Status != 200 || !strings.Contains(r.Header.Get("Allow"), "POST") {
			t.Errorf("OPTIONS %s: %d, Allow %q", mgr, r.Status, r.Header.Get("Allow"))
		}
		if got := secState(t, "sec"); got != before {
			t.Fatalf("a method other than POST changed the balancer via %s", mgr)
		}
	}
}

// zeroReader yields n bytes of 'z', without holding them in memory.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	for i := range p {
		p[i] = 'z'
	}
	z.n -= int64(len(p))
	return len(p), nil
}

// TestSecurityBodyLimit: a manager POST counts its first 1024 bytes only (a
// value cut at the limit is used cut, as httpd's single read cuts it), and a
// body of hundreds of megabytes is neither read nor buffered.
func TestSecurityBodyLimit(t *testing.T) {
	bs := startBackends(t, 3)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	const nonce = "n-body"
	loadCaddyfile(t, secConfig(aport, port, nonce, bs))
	b := lookupBalancer("sec")
	w := url.QueryEscape(bs[1].URL)

	for i, mgr := range []string{site + "/balancer-manager", admin + "/balancer-manager"} {
		ref := "Referer: " + mgr
		// The limit falls inside w_wr's value: the route is its first part.
		head := "b=sec&nonce=" + nonce + "&w=" + w + "&w_ls=" + fmt.Sprint(i+1) + "&pad="
		tail := "&w_wr=R" + fmt.Sprint(i)
		pad := strings.Repeat("p", manager.BodyLimit-len(head)-len(tail)-3)
		body := head + pad + tail + "abcdef&w_status_D=1"
		if r := secPost(t, mgr, body, ref); r.Status != 200 {
			t.Fatalf("%s: %d", mgr, r.Status)
		}
		m := b.FindMemberByName(bs[1].URL).View()
		if m.LBSet != i+1 || m.Route != "R"+fmt.Sprint(i)+"abc" || m.Status.Has(balancer.Disabled) {
			t.Fatalf("%s: after a cut body: lbset %d route %q status %q; want lbset %d, route cut to R%dabc, not disabled",
				mgr, m.LBSet, m.Route, m.Status, i+1, i)
		}

		// A huge body, streamed: the first 1024 bytes are applied, the rest
		// is never buffered.
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		const huge = 512 << 20
		prefix := "b=sec&nonce=" + nonce + "&w=" + w + fmt.Sprintf("&w_ls=%d&pad=", 10+i)
		req, err := http.NewRequest(http.MethodPost, mgr, io.MultiReader(strings.NewReader(prefix), &zeroReader{n: huge}))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(prefix)) + huge
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Referer", mgr)
		start := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: huge body: %d", mgr, resp.StatusCode)
			}
		} else if !strings.Contains(err.Error(), "reset by peer") && !strings.Contains(err.Error(), "broken pipe") {
			// Caddy's site server wraps the request body, which keeps
			// net/http from lingering before it closes a connection with
			// unread input: the client may see a reset instead of the
			// answer. Anything else is a failure.
			t.Fatalf("%s: huge body: %v", mgr, err)
		}
		elapsed := time.Since(start)
		runtime.ReadMemStats(&ms1)
		if got := b.FindMemberByName(bs[1].URL).View().LBSet; got != 10+i {
			t.Fatalf("%s: huge body: lbset %d, want %d", mgr, got, 10+i)
		}
		if grew := int64(ms1.TotalAlloc) - int64(ms0.TotalAlloc); grew > 64<<20 {
			t.Fatalf("%s: a %d MB body made the process allocate %d MB", mgr, huge>>20, grew>>20)
		}
		if elapsed > 5*time.Second {
			t.Fatalf("%s: the huge body took %v: it was read", mgr, elapsed)
		}
		// A body below net/http's drain limit (256 KiB) is answered
		// normally; only its first 1024 bytes count.
		mid := "b=sec&nonce=" + nonce + "&w=" + w + fmt.Sprintf("&w_ls=%d&pad=", 20+i) + strings.Repeat("z", 200<<10) + "&w_ls=50"
		if r := secPost(t, mgr, mid, ref); r.Status != 200 {
			t.Fatalf("%s: 200 KiB body: %d", mgr, r.Status)
		}
		if got := b.FindMemberByName(bs[1].URL).View().LBSet; got != 20+i {
			t.Fatalf("%s: 200 KiB body: lbset %d, want %d", mgr, got, 20+i)
		}
	}
	// The body is a C string for httpd: a NUL byte ends it.
	mgr := site + "/balancer-manager"
	secPost(t, mgr, "b=sec&nonce="+nonce+"&w="+w+"&w_ls=60\x00&w_ls=61&w_status_D=1", "Referer: "+mgr)
	if m := b.FindMemberByName(bs[1].URL).View(); m.LBSet != 60 || m.Status.Has(balancer.Disabled) {
		t.Fatalf("after a NUL byte: lbset %d, status %q; want 60 and nothing after the NUL applied", m.LBSet, m.Status)
	}
	// The server is still fine.
	if r := get(t, site+"/"); r.Status != 200 {
		t.Fatalf("after the huge bodies: %d", r.Status)
	}
}

// TestSecurityRuntimeMembers: a run-time member may not point at this Caddy
// (its admin endpoint, under any name, or one of its sites: through the
// balancer every client of the site would reach the admin API), must be
// http or https on a port from 1 to 65535, and must be within growth_allow
// when the balancer has one; the JSON API and the manager form both refuse
// and nothing is added.
func TestSecurityRuntimeMembers(t *testing.T) {
	bs := startBackends(t, 1)
	port, aport := freePort(t), freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer /open* open {
		growth 5
		nonce n1
		balancer_member %s
	}
	balancer listed {
		growth 5
		growth_allow 10.0.0.0/8 backend.internal
		balancer_member %s
	}
}`, aport, port, bs[0].URL, bs[0].URL))
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	add := func(bal, url string) result {
		return adminDo(t, "POST", admin+"/balancers/"+bal+"/members", fmt.Sprintf(`{"url": %q, "status": "-D"}`, url))
	}
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d", aport), // the admin endpoint
		fmt.Sprintf("http://localhost:%d", aport), // by another name
		fmt.Sprintf("http://[::1]:%d", aport),
		fmt.Sprintf("http://127.0.0.1:%d/config/", aport),
		fmt.Sprintf("http://127.0.0.1:%d", port), // the site itself: a loop
	} {
		wantError(t, add("open", u), 403, "this Caddy's own listener")
	}
	for _, u := range []string{"h2c://10.0.0.1:80", "ws://10.0.0.1", "wss://10.0.0.1", "h2://10.0.0.1",
		"http://10.0.0.1:0", "http://10.0.0.1:99999", "10.0.0.1:8080"} {
		if r := add("open", u); r.Status != 400 {
			t.Errorf("POST %s: %d %s, want 400", u, r.Status, r.Body)
		}
	}
	wantError(t, add("listed", "http://192.0.2.1:80"), 403, "growth_allow")
	wantError(t, add("listed", fmt.Sprintf("http://127.0.0.1:%d", aport)), 403, "own listener")
	for _, u := range []string{"http://10.1.2.3:8080", "http://backend.internal:81"} {
		if r := add("listed", u); r.Status != 201 {
			t.Errorf("POST %s to listed: %d %s, want 201", u, r.Status, r.Body)
		}
	}
	// The manager form: 400 and nothing added.
	form := "b=open&nonce=n1&b_wyes=1&b_nwrkr=" + url.QueryEscape(fmt.Sprintf("http://127.0.0.1:%d", aport))
	req, _ := http.NewRequest("POST", admin+"/balancer-manager", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := do(t, req); r.Status != 400 {
		t.Errorf("manager add of the admin endpoint: %d, want 400", r.Status)
	}
	b := decodeBalancer(t, adminDo(t, "GET", admin+"/balancers/open", ""))
	if len(b.Members) != 1 {
		t.Fatalf("open has %d members, want only the configured one: %+v", len(b.Members), b.Members)
	}
}
