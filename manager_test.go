package caddybalancer

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Integration tests of the balancer-manager: real in-process Caddy, real
// backends. They replay httpd-tests' t/modules/proxy_balancer.t manager
// requests (docs/behaviour.md §11.1) against the site handler, and the requests of
// Ansible's community.general.apache2_mod_proxy against the admin endpoint.

// mgPost sends a POST with a form body and optional "Name: value" headers.
func mgPost(t *testing.T, url, body string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return do(t, req)
}

// scrapeNonce finds a balancer's nonce as proxy_balancer.t does: split the
// page at "?b=", take the first piece naming the balancer, split it at
// "&amp;" and read nonce= up to the closing quote.
func scrapeNonce(t *testing.T, page, name string) string {
	t.Helper()
	for _, piece := range strings.Split(page, "?b=") {
		if !strings.Contains(piece, name) {
			continue
		}
		for _, part := range strings.Split(piece, "&amp;") {
			if v, ok := strings.CutPrefix(part, "nonce="); ok {
				v, _, _ = strings.Cut(v, "\"")
				if !regexp.MustCompile(`^[0-9a-fA-F-]+$`).MatchString(v) {
					t.Fatalf("nonce %q does not look like httpd's", v)
				}
				return v
			}
		}
	}
	t.Fatalf("no nonce for %s in page:\n%s", name, page)
	return ""
}

// TestManagerHTTPDTestsReplay replays the balancer-manager part of httpd-tests'
// proxy_balancer.t (tests 1-3 and 12-16) against the balancer_manager site
// handler, which follows httpd's Referer gate exactly.
func TestManagerHTTPDTestsReplay(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
}
%s {
	handle_path /baltest1* {
		balancer foo1 {
			lbmethod byrequests
			balancer_member %s loadfactor=1
			balancer_member %s loadfactor=1
		}
	}
	handle_path /baltest2* {
		balancer foo2 {
			lbmethod bytraffic
			balancer_member %s loadfactor=1
			balancer_member %s loadfactor=1
		}
	}
	handle_path /baltest3* {
		balancer foo3 {
			lbmethod bybusyness
			balancer_member %s loadfactor=1
			balancer_member %s loadfactor=1
		}
	}
	handle /balancer-manager* {
		balancer_manager
	}
	handle_path /dynproxy* {
		balancer dynproxy {
			growth 10
		}
	}
}`, site, bs[0].URL, bs[1].URL, bs[0].URL, bs[1].URL, bs[0].URL, bs[1].URL))

	// 1-3: the three lbmethods answer.
	for _, p := range []string{"/baltest1/index.html", "/baltest2/index.html", "/baltest3/index.html"} {
		if r := get(t, site+p); r.Status != 200 {
			t.Fatalf("GET %s: %d %s", p, r.Status, r.Body)
		}
	}
	// 12: the manager page.
	page := get(t, site+"/balancer-manager")
	if page.Status != 200 {
		t.Fatalf("GET /balancer-manager: %d", page.Status)
	}
	if !regexp.MustCompile(`Server Version: Apache/2\.4\.\d+`).MatchString(page.Body) {
		t.Errorf("no httpd-style server version line")
	}
	if ct := page.Header.Get("Content-Type"); ct != "text/html; charset=ISO-8859-1" {
		t.Errorf("Content-Type %q", ct)
	}
	nonce := scrapeNonce(t, page.Body, "dynproxy")

	// 13-14: a POST without Referer: the parameters are dropped, no member is added.
	body := "b_lbm=byrequests&b_tmo=0&b_max=0&b_sforce=0&b_ss=&b_nwrkr=ajp%3A%2F%2F%5B0%3A0%3A0%3A0%3A0%3A0%3A0%3A1%5D%3A8080&b_wyes=1&b=dynproxy&nonce=" + nonce
	r := mgPost(t, site+"/balancer-manager", body)
	if r.Status != 200 || strings.Contains(r.Body, "ajp") {
		t.Fatalf("POST without Referer: %d, ajp in body: %v", r.Status, strings.Contains(r.Body, "ajp"))
	}
	// The same without Referer but with a valid http member: still dropped.
	r = mgPost(t, site+"/balancer-manager", strings.Replace(body, "ajp%3A%2F%2F%5B0%3A0%3A0%3A0%3A0%3A0%3A0%3A1%5D%3A8080",
		"http%3A%2F%2F127.0.0.1%3A"+fmt.Sprint(bs[2].Port), 1))
	if r.Status != 200 || strings.Contains(r.Body, bs[2].URL) {
		t.Fatalf("POST without Referer added the member (%d)", r.Status)
	}
	// 15: the balancer has no members.
	if r := get(t, site+"/dynproxy"); r.Status != 503 {
		t.Fatalf("GET /dynproxy before: %d, want 503", r.Status)
	}
	// Add a member with a same-host Referer; it starts Disabled.
	referer := "Referer: " + site + "/balancer-manager"
	add := fmt.Sprintf("b_lbm=byrequests&b_tmo=0&b_max=0&b_sforce=0&b_ss=&b_nwrkr=http%%3A%%2F%%2F127.0.0.1%%3A%d&b_wyes=1&b=dynproxy&nonce=%s", bs[2].Port, nonce)
	r = mgPost(t, site+"/balancer-manager", add, referer)
	if r.Status != 200 || !strings.Contains(r.Body, bs[2].URL) {
		t.Fatalf("adding a member: %d\n%s", r.Status, r.Body)
	}
	if r := get(t, site+"/dynproxy"); r.Status != 503 {
		t.Fatalf("GET /dynproxy with the new member disabled: %d, want 503", r.Status)
	}
	// Adding it again: 400.
	if r := mgPost(t, site+"/balancer-manager", add, referer); r.Status != 400 {
		t.Errorf("adding a duplicate: %d, want 400", r.Status)
	}
	// Enable it.
	enable := fmt.Sprintf("w=http%%3A%%2F%%2F127.0.0.1%%3A%d&b=dynproxy&w_status_D=0&nonce=%s", bs[2].Port, nonce)
	if r := mgPost(t, site+"/balancer-manager", enable, referer); r.Status != 200 {
		t.Fatalf("enabling: %d", r.Status)
	}
	// 16: the balancer answers.
	if r := get(t, site+"/dynproxy"); r.Status != 200 || r.Backend != "b3" {
		t.Fatalf("GET /dynproxy after: %d from %q, want 200 from b3", r.Status, r.Backend)
	}

	// The Referer gate: another host drops everything; the host is compared
	// case-insensitively and scheme and port are ignored.
	disable := fmt.Sprintf("w=http%%3A%%2F%%2F127.0.0.1%%3A%d&b=dynproxy&w_status_D=1&nonce=%s", bs[2].Port, nonce)
	mgPost(t, site+"/balancer-manager", disable, "Referer: http://evil.example/balancer-manager")
	mgPost(t, site+"/balancer-manager", disable, "Referer: /balancer-manager")
	if r := get(t, site+"/dynproxy"); r.Status != 200 {
		t.Fatalf("a foreign or relative Referer changed the member: %d", r.Status)
	}
	// A wrong nonce changes nothing either.
	mgPost(t, site+"/balancer-manager", strings.Replace(disable, nonce, "00000000-0000-0000-0000-000000000000", 1), referer)
	if r := get(t, site+"/dynproxy"); r.Status != 200 {
		t.Fatalf("a wrong nonce changed the member: %d", r.Status)
	}
	mgPost(t, site+"/balancer-manager", disable, "Referer: https://127.0.0.1:1/other")
	if r := get(t, site+"/dynproxy"); r.Status != 503 {
		t.Fatalf("same host, other scheme and port: not accepted (%d)", r.Status)
	}

	// GET ?xml=1 without Referer is the HTML page; with one, XML.
	if r := get(t, site+"/balancer-manager?xml=1"); !strings.HasPrefix(r.Body, "<!DOCTYPE HTML") {
		t.Errorf("?xml=1 without Referer: not HTML")
	}
	r = get(t, site+"/balancer-manager?xml=1", referer)
	if !strings.HasPrefix(r.Body, "<?xml version='1.0' encoding='UTF-8' ?>") || !strings.Contains(r.Header.Get("Content-Type"), "text/xml") {
		t.Errorf("?xml=1 with Referer: %q\n%s", r.Header.Get("Content-Type"), r.Body)
	}
	// Pages below the manager's path are the manager too; PUT is 405.
	if r := get(t, site+"/balancer-manager/sub/path"); r.Status != 200 || !strings.Contains(r.Body, "Load Balancer Manager") {
		t.Errorf("sub path: %d", r.Status)
	}
	req, _ := http.NewRequest(http.MethodPut, site+"/balancer-manager", nil)
	if r := do(t, req); r.Status != 405 {
		t.Errorf("PUT: %d, want 405", r.Status)
	}
}

// ansibleMember is what community.general.apache2_mod_proxy extracts from a
// member link.
var ansibleExpression = regexp.MustCompile(`(b=([\w\.\-]+)&w=(https?|ajp|wss?|ftp|[sf]cgi)://([\w\.\-]+):?(\d*)([/\w\.\-]*)&?[\w\-\=]*)`)

var (
	reHref  = regexp.MustCompile(`<a href="([^"]*)"`)
	reTable = regexp.MustCompile(`(?s)<table>(.*?)</table>`)
	reRow   = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
	reTH    = regexp.MustCompile(`(?s)<th>(.*?)</th>`)
	reTD    = regexp.MustCompile(`(?s)<td>(.*?)</td>`)
	reTag   = regexp.MustCompile(`<[^>]*>`)
)

// ansibleAttributes is BalancerMember.get_member_attributes: the second table
// of the page, header cells as keys, the row naming the host as values.
func ansibleAttributes(t *testing.T, page, host string) map[string]string {
	t.Helper()
	tables := reTable.FindAllStringSubmatch(page, -1)
	if len(tables) < 2 {
		t.Fatalf("page has %d tables", len(tables))
	}
	rows := reRow.FindAllStringSubmatch(tables[1][1], -1)
	var keys []string
	for _, th := range reTH.FindAllStringSubmatch(rows[0][1], -1) {
		keys = append(keys, th[1])
	}
	for _, row := range rows[1:] {
		if !strings.Contains(row[1], host) {
			continue
		}
		tds := reTD.FindAllStringSubmatch(row[1], -1)
		if len(tds) != len(keys) {
			t.Fatalf("%d cells for %d headers", len(tds), len(keys))
		}
		out := map[string]string{}
		for i, k := range keys {
			out[k] = html.UnescapeString(reTag.ReplaceAllString(tds[i][1], ""))
		}
		return out
	}
	t.Fatalf("no row for %s", host)
	return nil
}

// TestManagerAdminAnsible drives the admin endpoint's balancer-manager the way
// community.general.apache2_mod_proxy does: GET the page, take every link but
// the first as a member's management URL, GET it for the attributes, and POST
// the status fields to it without a Referer.
func TestManagerAdminAnsible(t *testing.T) {
	bs := startBackends(t, 3)
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	balancer mywsbalancer {
		balancer_member %s route=node1
		balancer_member %s route=node2
		balancer_member %s route=node3
	}
}`, aport, site, bs[0].URL, bs[1].URL, bs[2].URL))

	// Balancer.fetch_balancer_page
	page := get(t, admin+"/balancer-manager/")
	if page.Status != 200 {
		t.Fatalf("GET page: %d %s", page.Status, page.Body)
	}
	ver := regexp.MustCompile(`SERVER VERSION: APACHE/([\d.]+)`).FindStringSubmatch(strings.ToUpper(page.Body))
	if ver == nil || !regexp.MustCompile(`2\.4\.[\d]*`).MatchString(ver[1]) {
		t.Fatalf("Ansible's version check fails: %v", ver)
	}
	// Balancer.get_balancer_members
	links := reHref.FindAllStringSubmatch(page.Body, -1)
	if len(links) != 4 {
		t.Fatalf("%d links, want 1 balancer + 3 members", len(links))
	}
	type member struct{ url, host, port, body string }
	var members []member
	for _, l := range links[1:] {
		u := admin + html.UnescapeString(l[1])
		m := ansibleExpression.FindStringSubmatch(u)
		if m == nil {
			t.Fatalf("Ansible's expression does not match %s", u)
		}
		members = append(members, member{url: u, host: m[4], port: m[5], body: m[1]})
	}
	if members[1].host != "127.0.0.1" || members[1].port != fmt.Sprint(bs[1].Port) {
		t.Fatalf("member 2: %+v", members[1])
	}
	// BalancerMember.get_member_attributes (GET without Referer)
	m2 := members[1]
	mp := get(t, m2.url)
	attrs := ansibleAttributes(t, mp.Body, fmt.Sprintf("127.0.0.1:%d", bs[1].Port))
	if attrs["Status"] != "Init Ok " || attrs["Route"] != "node2" || attrs["Factor"] != "1.00" || attrs["Worker URL"] != bs[1].URL {
		t.Fatalf("attributes %v", attrs)
	}
	// set_member_status: disabled, no Referer, nonce from the link.
	status := func(m member, disabled, drained, standby, ignore int) {
		t.Helper()
		body := fmt.Sprintf("%s&w_status_D=%d&w_status_N=%d&w_status_H=%d&w_status_I=%d", m.body, disabled, drained, standby, ignore)
		if r := mgPost(t, m.url, body); r.Status != 200 {
			t.Fatalf("POST status: %d", r.Status)
		}
	}
	status(m2, 1, 0, 0, 0)
	attrs = ansibleAttributes(t, get(t, m2.url).Body, fmt.Sprintf("127.0.0.1:%d", bs[1].Port))
	if attrs["Status"] != "Init Dis " {
		t.Fatalf("after disabling: %q", attrs["Status"])
	}
	// The traffic follows: the disabled member gets no requests.
	for _, b := range sequence(t, site+"/", 12) {
		if b == "b2" || b == "503" {
			t.Fatalf("request went to %s with b2 disabled", b)
		}
	}
	// Drain b1 too: only b3 is left.
	status(members[0], 0, 1, 0, 0)
	if got := strings.Join(sequence(t, site+"/", 4), " "); got != "b3 b3 b3 b3" {
		t.Fatalf("with b1 draining and b2 disabled: %s", got)
	}
	status(members[0], 0, 0, 0, 0)
	status(m2, 0, 0, 0, 0)
	seen := map[string]bool{}
	for _, b := range sequence(t, site+"/", 6) {
		seen[b] = true
	}
	if !seen["b1"] || !seen["b2"] || !seen["b3"] {
		t.Fatalf("after re-enabling, not every member answers: %v", seen)
	}

	// A foreign Referer drops the parameters on the admin endpoint as well.
	mgPost(t, m2.url, m2.body+"&w_status_D=1", "Referer: http://evil.example/")
	// So does a wrong nonce.
	wrong := regexp.MustCompile(`nonce=[0-9a-f-]+`).ReplaceAllString(m2.body, "nonce=bad")
	mgPost(t, m2.url, wrong+"&w_status_D=1")
	if a := ansibleAttributes(t, get(t, admin+"/balancer-manager").Body, fmt.Sprintf("127.0.0.1:%d", bs[1].Port)); a["Status"] != "Init Ok " {
		t.Fatalf("foreign Referer or wrong nonce changed the member: %q", a["Status"])
	}
	// A same-host Referer is fine (a browser on the admin page).
	mgPost(t, admin+"/balancer-manager", m2.body+"&w_lf=2.5&w_wr=n%3Cb%3E2", "Referer: "+admin+"/balancer-manager")
	a := ansibleAttributes(t, get(t, admin+"/balancer-manager").Body, fmt.Sprintf("127.0.0.1:%d", bs[1].Port))
	if a["Factor"] != "2.50" || a["Route"] != "n<b>2" {
		t.Fatalf("after the form: %v", a)
	}
	if strings.Contains(get(t, admin+"/balancer-manager").Body, "n<b>2") {
		t.Fatalf("route not escaped")
	}

	// XML on the admin endpoint (no Referer needed there).
	x := get(t, admin+"/balancer-manager?xml=1")
	if !strings.HasPrefix(x.Body, "<?xml") {
		t.Fatalf("xml: %s", x.Body)
	}
	tags := regexp.MustCompile(`<httpd:(\w+)>`).FindAllStringSubmatch(x.Body, -1)
	var order []string
	for _, tg := range tags {
		order = append(order, tg[1])
	}
	wantPrefix := "balancers balancer name nonce timeout maxattempts lbmethod workers worker name scheme hostname loadfactor port min smax max ttl status retries lbstatus loadfactor transferred read elected route redirect busy lbset worker"
	if got := strings.Join(order, " "); !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("XML element order:\n got %s\nwant %s ...", got, wantPrefix)
	}
	if !strings.Contains(x.Body, "<httpd:route>n&lt;b&gt;2</httpd:route>") {
		t.Errorf("XML route not escaped")
	}
	if !strings.HasSuffix(x.Body, "</httpd:manager>") {
		t.Errorf("XML does not end with </httpd:manager>")
	}
	// Unknown methods.
	req, _ := http.NewRequest(http.MethodDelete, admin+"/balancer-manager", nil)
	if r := do(t, req); r.Status != 405 {
		t.Errorf("DELETE: %d", r.Status)
	}
}

// TestManagerNonceNoneReadOnly: `nonce None` makes the manager read-only.
func TestManagerNonceNoneReadOnly(t *testing.T) {
	bs := startBackends(t, 2)
	port, aport := freePort(t), freePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer ro {
		nonce None
		balancer_member %s
		balancer_member %s
	}
}`, aport, port, bs[0].URL, bs[1].URL))
	page := get(t, admin+"/balancer-manager").Body
	if !strings.Contains(page, "?b=ro&amp;nonce=\"") {
		t.Fatalf("link with an empty nonce expected:\n%s", page)
	}
	for _, body := range []string{
		"b=ro&w=" + bs[0].URL + "&w_status_D=1&nonce=",
		"b=ro&w=" + bs[0].URL + "&w_status_D=1",
		"b=ro&w=" + bs[0].URL + "&w_status_D=1&nonce=None",
	} {
		mgPost(t, admin+"/balancer-manager", body)
	}
	if strings.Contains(get(t, admin+"/balancer-manager").Body, "Init Dis") {
		t.Fatal("nonce None: the manager changed a member")
	}
}

// TestManagerParameterParsing checks push2table's rules through the page:
// values are decoded twice, '+' stays, the last duplicate wins, the body is
// read up to 1024 bytes, and a POST's query string is ignored.
func TestManagerParameterParsing(t *testing.T) {
	bs := startBackends(t, 2)
	port, aport := freePort(t), freePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer pp {
		nonce n1
		balancer_member %s/app
		balancer_member %s
	}
}`, aport, port, bs[0].URL, bs[1].URL))
	member := func(host string) map[string]string {
		return ansibleAttributes(t, get(t, admin+"/balancer-manager").Body, host)
	}
	page := get(t, admin+"/balancer-manager").Body
	if !strings.Contains(page, "?b=pp&amp;w="+bs[0].URL+"/app&amp;nonce=n1\"") {
		t.Fatalf("member link not as httpd writes it:\n%s", page)
	}
	// Values are decoded twice; '+' stays; the last duplicate wins.
	w := strings.NewReplacer(":", "%253A", "/", "%252F").Replace(bs[0].URL + "/app")
	mgPost(t, admin+"/balancer-manager", "b=pp&nonce=n1&w="+w+"&w_wr=x+y&w_rr=1&w_rr=2")
	a := member(fmt.Sprintf("127.0.0.1:%d/app", bs[0].Port))
	if a["Route"] != "x+y" || a["RouteRedir"] != "2" {
		t.Fatalf("route %q redirect %q", a["Route"], a["RouteRedir"])
	}
	// Beyond 1024 bytes: ignored.
	pad := "b=pp&nonce=n1&w=" + bs[1].URL + "&x=" + strings.Repeat("z", 1024)
	mgPost(t, admin+"/balancer-manager", pad+"&w_status_D=1")
	if s := member(fmt.Sprintf("127.0.0.1:%d<", bs[1].Port))["Status"]; s != "Init Ok " {
		t.Fatalf("a parameter after 1024 bytes was applied: %q", s)
	}
	// The query string of a POST is ignored.
	mgPost(t, admin+"/balancer-manager?b=pp&nonce=n1&w="+bs[1].URL+"&w_status_D=1", "")
	if s := member(fmt.Sprintf("127.0.0.1:%d<", bs[1].Port))["Status"]; s != "Init Ok " {
		t.Fatalf("a POST's query string was applied: %q", s)
	}
	// A GET keeps only b, w, nonce and xml: no change by GET.
	get(t, admin+"/balancer-manager?b=pp&nonce=n1&w="+bs[1].URL+"&w_status_D=1")
	if s := member(fmt.Sprintf("127.0.0.1:%d<", bs[1].Port))["Status"]; s != "Init Ok " {
		t.Fatalf("a GET changed a member: %q", s)
	}
	// But a GET with b and w shows the worker edit form with httpd's fields.
	p := get(t, admin+"/balancer-manager?b=pp&nonce=n1&w="+bs[1].URL).Body
	for _, f := range []string{"name='w_lf'", "name='w_ls'", "name='w_wr'", "name='w_rr'", "name='w_status_I'",
		"name='w_status_N'", "name='w_status_D'", "name='w_status_H'", "name='w_status_R'", "name='w_status_C'",
		"name='w_status_S'", "name='w_hm'", "name='w_hi'", "name='w_hp'", "name='w_hf'", "name='w_hu'", "name='w_he'",
		"name='w' id='w'", "name='b' id='b'", "name='nonce' id='nonce' value='n1'",
		"action=\"" + admin + "/balancer-manager\""} {
		if !strings.Contains(p, f) {
			t.Errorf("worker form lacks %s", f)
		}
	}
	p = get(t, admin+"/balancer-manager?b=PP").Body
	for _, f := range []string{"Edit balancer settings for balancer://pp", "name='b_lbm'", "name='b_tmo'", "name='b_max'",
		"name='b_sforce'", "name='b_ss'"} {
		if !strings.Contains(p, f) {
			t.Errorf("balancer form lacks %s", f)
		}
	}
	if strings.Contains(p, "b_nwrkr") {
		t.Errorf("add-member field shown without a free slot")
	}
}

// TestManagerCaddyfile: the balancer_manager directive takes optional
// balancer names, which limit the page to those balancers.
func TestManagerCaddyfile(t *testing.T) {
	js := string(adaptCaddyfile(t, `{
	admin off
}
http://127.0.0.1:1 {
	handle /balancer-manager* {
		balancer_manager Foo balancer://bar
	}
}`))
	if !strings.Contains(js, `{"balancers":["Foo","balancer://bar"],"handler":"balancer_manager"}`) {
		t.Fatalf("adapted: %s", js)
	}
	if _, err := adaptCaddyfileErr("http://127.0.0.1:1 {\n\tbalancer_manager {\n\t\tx\n\t}\n}"); err == nil {
		t.Fatal("a block was accepted")
	}

	bs := startBackends(t, 2)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
}
%s {
	handle /one* {
		balancer one {
			balancer_member %s
		}
	}
	handle /two* {
		balancer two {
			balancer_member %s
		}
	}
	handle /bm* {
		balancer_manager One
	}
}`, site, bs[0].URL, bs[1].URL))
	page := get(t, site+"/bm")
	if !strings.Contains(page.Body, "balancer://one") || strings.Contains(page.Body, "balancer://two") {
		t.Fatalf("page not limited to balancer one:\n%s", page.Body)
	}
	req, _ := http.NewRequest(http.MethodHead, site+"/bm", nil)
	if r := do(t, req); r.Status != 200 || r.Body != "" {
		t.Errorf("HEAD: %d %q", r.Status, r.Body)
	}
	req, _ = http.NewRequest(http.MethodOptions, site+"/bm", nil)
	if r := do(t, req); r.Status != 200 || r.Header.Get("Allow") == "" {
		t.Errorf("OPTIONS: %d allow %q", r.Status, r.Header.Get("Allow"))
	}
}

// TestManagerSiteRouteLogsIgnoredChange: on the site route a POST without a
// Referer changes nothing and the page says nothing, as in httpd; Caddy's
// log says why and what to do. A page view (the page's own b/w/nonce links)
// and a change that passes are not logged as ignored.
func TestManagerSiteRouteLogsIgnoredChange(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	log {
		output file %s
		format json
	}
}
%s {
	handle /balancer-manager* {
		balancer_manager
	}
	balancer logged {
		balancer_member %s route=r1
		balancer_member %s route=r2
	}
}`, logFile, site, bs[0].URL, bs[1].URL))
	mgr := site + "/balancer-manager"
	nonce := scrapeNonce(t, get(t, mgr).Body, "logged")
	disable := fmt.Sprintf("b=logged&w=%s&nonce=%s&w_status_D=1", url.QueryEscape(bs[1].URL), nonce)
	ignored := func() []string {
		var out []string
		for _, w := range logWarnings(t, logFile) {
			if strings.Contains(w, "change ignored") {
				out = append(out, w)
			}
		}
		return out
	}

	// A page view with the edit link's parameters: nothing to log.
	get(t, fmt.Sprintf("%s?b=logged&w=%s&nonce=%s", mgr, url.QueryEscape(bs[1].URL), nonce))
	// The POST without a Referer: ignored, and logged.
	if r := mgPost(t, mgr, disable); r.Status != 200 {
		t.Fatalf("POST without Referer: %d", r.Status)
	}
	if got := sequence(t, site+"/", 2); strings.Join(got, " ") != "b1 b2" {
		t.Fatalf("after the POST without Referer the balancer answers %v, want b1 b2 (nothing changed)", got)
	}
	got := ignored()
	want := "http.handlers.balancer_manager: balancer-manager: change ignored: the request has no Referer"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) ||
		!strings.Contains(got[0], "curl -e http://127.0.0.1:") || !strings.Contains(got[0], "admin endpoint") ||
		!strings.HasSuffix(got[0], "balancer=logged") {
		t.Fatalf("warnings about ignored changes:\n%s\nwant one: %s ... (curl -e ... admin endpoint) balancer=logged", strings.Join(got, "\n"), want)
	}
	// With a Referer naming this host it applies, and nothing more is logged.
	mgPost(t, mgr, disable, "Referer: "+mgr)
	if got := sequence(t, site+"/", 2); strings.Join(got, " ") != "b1 b1" {
		t.Fatalf("after the POST with a Referer the balancer answers %v, want b1 b1 (r2 disabled)", got)
	}
	if got := ignored(); len(got) != 1 {
		t.Errorf("warnings about ignored changes:\n%s\nwant only the first", strings.Join(got, "\n"))
	}
}
