//go:build linux

package httpdadapter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/lbset/caddy-balancer"
	"github.com/lbset/caddy-balancer/httpdadapter"
	"github.com/lbset/caddy-balancer/internal/httpdtest"
	"github.com/lbset/caddy-balancer/internal/testenv"
)

// These tests run the configurations of httpd's Reverse Proxy Guide (and a
// few more) twice: through real httpd 2.4 (apache2 -X) and, adapted by the
// httpd adapter, through Caddy in this process. The same requests go to
// both, each against its own fresh set of backends, and the answers must be
// the same: which member answered, the path and Host it saw, the status,
// and the rewritten Location and Set-Cookie headers.

// hdtBackend is one backend: it answers with its name.
type hdtBackend struct {
	name string
	addr string
	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
}

func (b *hdtBackend) start() error {
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ln = ln
	b.addr = ln.Addr().String()
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return nil
}

func (b *hdtBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv = nil
	}
}

func (b *hdtBackend) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("Connection", "close")
	switch {
	case strings.HasSuffix(r.URL.Path, "/redirect"):
		w.Header().Set("Location", "http://"+b.addr+"/target?q=1")
		w.WriteHeader(http.StatusFound)
	case strings.HasSuffix(r.URL.Path, "/setcookie"):
		w.Header().Add("Set-Cookie", "s=1; domain=backend.internal; path=/app/x")
		w.Header().Add("Set-Cookie", "t=2; Path=/other; Domain=other.example")
	}
	fmt.Fprintf(w, "%s %s host=%s\n", b.name, r.RequestURI, r.Host)
}

// hdtStep is one step of a scenario: requests, or members going down or up.
type hdtStep struct {
	path    string
	host    string
	cookie  string
	referer string
	n       int // send the request n times (default 1)
	down    []string
	up      []string
	body    bool   // compare the (normalized) body, e.g. a manager page's member list
	via     string // connect to this address instead of the front end's (same port)
}

type hdtScenario struct {
	conf     string // file in testdata
	backends []string
	defines  map[string]string  // more Defines
	modules  []httpdtest.Module // more modules for the httpd side
	steps    []hdtStep
	// bodyFilter picks what of a body to compare when step.body is set.
	bodyFilter func(string) string
}

// hdtOutcome is what the client saw of one request.
type hdtOutcome struct {
	Status    int
	Backend   string
	Seen      string // the backend's first body line: name, request URI, Host
	Location  string
	SetCookie []string
	Body      string
}

func (o hdtOutcome) String() string {
	s := fmt.Sprintf("%d %s [%s]", o.Status, o.Backend, o.Seen)
	if o.Location != "" {
		s += " Location: " + o.Location
	}
	for _, c := range o.SetCookie {
		s += " Set-Cookie: " + c
	}
	if o.Body != "" {
		s += " body: " + o.Body
	}
	return s
}

var hdtClient = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// hdtSide is one run of a scenario on one server.
type hdtSide struct {
	backends map[string]*hdtBackend
	front    string
	replacer *strings.Replacer
}

func hdtFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newSide starts the scenario's backends and picks a front-end address.
func hdtNewSide(t *testing.T, sc *hdtScenario) *hdtSide {
	t.Helper()
	s := &hdtSide{backends: map[string]*hdtBackend{}}
	var pairs []string
	for _, name := range sc.backends {
		b := &hdtBackend{name: name, addr: "127.0.0.1:0"}
		if err := b.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.stop)
		s.backends[name] = b
		pairs = append(pairs, b.addr, "${"+name+"}")
	}
	s.front = hdtFreeAddr(t)
	pairs = append(pairs, s.front, "${FRONT}")
	s.replacer = strings.NewReplacer(pairs...)
	return s
}

// defines are the Define lines that fill in the scenario's variables.
func (s *hdtSide) defines(sc *hdtScenario) string {
	var b strings.Builder
	var names []string
	for n := range s.backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "Define %s %s\n", n, s.backends[n].addr)
	}
	_, port, _ := net.SplitHostPort(s.front)
	fmt.Fprintf(&b, "Define FRONT %s\nDefine FRONTPORT %s\n", s.front, port)
	for k, v := range sc.defines {
		fmt.Fprintf(&b, "Define %s %s\n", k, v)
	}
	return b.String()
}

func (s *hdtSide) run(t *testing.T, sc *hdtScenario) []hdtOutcome {
	t.Helper()
	var out []hdtOutcome
	for _, st := range sc.steps {
		for _, n := range st.down {
			s.backends[n].stop()
		}
		for _, n := range st.up {
			if err := s.backends[n].start(); err != nil {
				t.Fatalf("restart %s: %v", n, err)
			}
		}
		if st.path == "" {
			continue
		}
		n := st.n
		if n == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			out = append(out, s.request(t, sc, st))
		}
	}
	return out
}

func (s *hdtSide) request(t *testing.T, sc *hdtScenario, st hdtStep) hdtOutcome {
	t.Helper()
	addr := s.front
	if st.via != "" {
		_, port, _ := net.SplitHostPort(s.front)
		addr = net.JoinHostPort(st.via, port)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+st.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.host != "" {
		req.Host = st.host
	}
	if st.cookie != "" {
		req.Header.Set("Cookie", st.cookie)
	}
	if st.referer != "" {
		req.Header.Set("Referer", strings.ReplaceAll(st.referer, "${FRONT}", s.front))
	}
	resp, err := hdtClient.Do(req)
	if err != nil {
		return hdtOutcome{Status: -1, Seen: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	o := hdtOutcome{Status: resp.StatusCode, Backend: resp.Header.Get("X-Backend")}
	if o.Backend != "" {
		line, _, _ := strings.Cut(string(body), "\n")
		o.Seen = s.replacer.Replace(line)
	}
	o.Location = s.replacer.Replace(resp.Header.Get("Location"))
	for _, c := range resp.Header.Values("Set-Cookie") {
		o.SetCookie = append(o.SetCookie, s.replacer.Replace(c))
	}
	if st.body {
		b := s.replacer.Replace(string(body))
		if sc.bodyFilter != nil {
			b = sc.bodyFilter(b)
		}
		o.Body = b
	}
	return o
}

func hdtConfPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hdtHTTPDModules are loaded for the httpd side.
var hdtHTTPDModules = []httpdtest.Module{
	{Name: "mpm_event_module", File: "mod_mpm_event.so"},
	{Name: "authz_core_module", File: "mod_authz_core.so"},
	{Name: "authz_host_module", File: "mod_authz_host.so"},
	{Name: "access_compat_module", File: "mod_access_compat.so"},
	{Name: "headers_module", File: "mod_headers.so"},
	{Name: "slotmem_shm_module", File: "mod_slotmem_shm.so"},
	{Name: "proxy_module", File: "mod_proxy.so"},
	{Name: "proxy_http_module", File: "mod_proxy_http.so"},
	{Name: "proxy_balancer_module", File: "mod_proxy_balancer.so"},
	{Name: "lbmethod_byrequests_module", File: "mod_lbmethod_byrequests.so"},
	{Name: "lbmethod_bytraffic_module", File: "mod_lbmethod_bytraffic.so"},
	{Name: "lbmethod_bybusyness_module", File: "mod_lbmethod_bybusyness.so"},
}

// hdtRunHTTPD runs the scenario through real httpd.
func hdtRunHTTPD(t *testing.T, sc *hdtScenario) []hdtOutcome {
	t.Helper()
	testenv.NeedTool(t, "apache2", httpdtest.Binary())
	side := hdtNewSide(t, sc)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(httpdtest.Preamble(dir, append(append([]httpdtest.Module(nil), hdtHTTPDModules...), sc.modules...)))
	b.WriteString(side.defines(sc))
	fmt.Fprintf(&b, "Include %q\n", hdtConfPath(t, sc.conf))
	proc, err := httpdtest.Start(dir, b.String())
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	hdtWaitListening(t, side.front, proc.Exited, func() string { return proc.Output() + proc.ErrorLog() })
	return side.run(t, sc)
}

func hdtWaitListening(t *testing.T, addr string, exited <-chan struct{}, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("server exited at start:\n%s", logs())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not listening on %s:\n%s", addr, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hdtAdapt adapts the scenario's configuration with the side's Defines.
func hdtAdapt(t *testing.T, side *hdtSide, sc *hdtScenario) ([]byte, string) {
	t.Helper()
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "httpd.conf")
	text := side.defines(sc) + fmt.Sprintf("Include %q\n", hdtConfPath(t, sc.conf))
	if err := os.WriteFile(wrapper, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, warns, err := httpdadapter.Adapter{}.Adapt([]byte(text), map[string]any{"filename": wrapper})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var ws []string
	for _, w := range warns {
		ws = append(ws, fmt.Sprintf("%s:%d: %s: %s", filepath.Base(w.File), w.Line, w.Directive, w.Message))
	}
	return out, strings.Join(ws, "\n")
}

// runCaddy runs the scenario through the adapted configuration in Caddy.
func hdtRunCaddy(t *testing.T, sc *hdtScenario) ([]hdtOutcome, string) {
	t.Helper()
	side := hdtNewSide(t, sc)
	adapted, warns := hdtAdapt(t, side, sc)
	var cfg map[string]any
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	// Only what a test run needs on top: no admin endpoint, storage and
	// logs out of the way.
	cfg["admin"] = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	cfg["storage"] = map[string]any{"module": "file_system", "root": filepath.Join(t.TempDir(), "storage")}
	cfg["logging"] = map[string]any{"logs": map[string]any{"default": map[string]any{"writer": map[string]any{"output": "discard"}}}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(raw, true); err != nil {
		t.Fatalf("caddy.Load: %v\n%s", err, adapted)
	}
	defer func() { _ = caddy.Stop() }()
	hdtWaitListening(t, side.front, nil, func() string { return string(adapted) })
	return side.run(t, sc), warns
}

// hdtCompare runs the scenario on both sides and compares.
func hdtCompare(t *testing.T, sc *hdtScenario) {
	t.Helper()
	want := hdtRunHTTPD(t, sc)
	got, warns := hdtRunCaddy(t, sc)
	n := len(want)
	if len(got) > n {
		n = len(got)
	}
	var diff strings.Builder
	for i := 0; i < n; i++ {
		var w, g string
		if i < len(want) {
			w = want[i].String()
		}
		if i < len(got) {
			g = got[i].String()
		}
		mark := "  "
		if w != g {
			mark = "!="
		}
		fmt.Fprintf(&diff, "%2d %s httpd: %s\n      caddy: %s\n", i+1, mark, w, g)
	}
	if !hdtSame(want, got) {
		t.Errorf("httpd and the adapted Caddy config differ:\n%s\nadapter warnings:\n%s", diff.String(), warns)
	} else {
		t.Logf("both sides:\n%s", diff.String())
	}
}

func hdtSame(a, b []hdtOutcome) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

func TestHttpdGuideSimple(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_simple.conf",
		backends: []string{"WWW"},
		steps: []hdtStep{
			{path: "/"},
			{path: "/foo/bar.html?x=1"},
			{path: "/redirect"},
		},
	})
}

func TestHttpdGuideCluster(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_cluster.conf",
		backends: []string{"WWW2", "WWW3"},
		steps: []hdtStep{
			{path: "/images/a.png", n: 6},
			{path: "/images/redirect"},
			{path: "/other"},
		},
	})
}

func TestHttpdGuideLoadfactor(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_loadfactor.conf",
		backends: []string{"WWW2", "WWW3"},
		steps: []hdtStep{
			{path: "/images/a.png", n: 12},
		},
	})
}

func TestHttpdGuideFailover(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_failover.conf",
		backends: []string{"WWW2", "WWW3", "SPARE1", "SPARE2", "HSTANDBY", "BKUP1", "BKUP2"},
		steps: []hdtStep{
			{path: "/images/a.png", n: 8},
			{down: []string{"WWW2"}},
			{path: "/images/a.png", n: 6},
			{down: []string{"WWW3"}},
			{path: "/images/a.png", n: 6},
			{down: []string{"SPARE1", "SPARE2"}},
			{path: "/images/a.png", n: 4},
			{down: []string{"HSTANDBY"}},
			{path: "/images/a.png", n: 6},
			{down: []string{"BKUP1", "BKUP2"}},
			{path: "/images/a.png", n: 2},
		},
	})
}

// hdtManagerMembers reduces a balancer-manager page to its balancers and
// member names.
func hdtManagerMembers(body string) string {
	re := regexp.MustCompile(`balancer://[a-z0-9]+|http://\$\{[A-Z0-9]+\}`)
	var seen []string
	for _, m := range re.FindAllString(body, -1) {
		if len(seen) == 0 || seen[len(seen)-1] != m {
			seen = append(seen, m)
		}
	}
	return strings.Join(seen, " ")
}

func TestHttpdGuideManager(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:       "guide_manager.conf",
		backends:   []string{"WWW2", "WWW3"},
		bodyFilter: hdtManagerMembers,
		steps: []hdtStep{
			{path: "/balancer-manager", body: true},
			{path: "/balancer-manager/", body: true},
			{path: "/a", n: 2},
			{path: "/manager-shadowed"},
			{path: "/private/x"},
			{path: "/privatex"},
		},
	})
}

func TestHttpdGuideSticky(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:       "guide_sticky.conf",
		backends:   []string{"NODE1", "NODE2"},
		bodyFilter: hdtManagerMembers,
		steps: []hdtStep{
			{path: "/", n: 2},
			{path: "/page", cookie: "BALANCEID=.node2", n: 2},
			{path: "/page", cookie: "BALANCEID=.node1"},
			{path: "/page;BALANCEID=.node2"},
			{path: "/page?BALANCEID=.node2"},
			{path: "/redirect", cookie: "BALANCEID=.node2"},
			{path: "/setcookie", cookie: "BALANCEID=.node1"},
			{path: "/balancer-manager", body: true},
			{down: []string{"NODE2"}},
			{path: "/page", cookie: "BALANCEID=.node2"},
			{path: "/page"},
		},
	})
}

func TestHttpdVhosts(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "vhosts.conf",
		backends: []string{"SHARED", "A1", "A2", "B1", "B2", "C1"},
		steps: []hdtStep{
			{path: "/x", host: "a.example", n: 3},
			{path: "/x", host: "b.example"},
			{path: "/api/list", host: "www.b.example:8080"},
			{path: "/shared/y", host: "b.example"},
			{path: "/shared/y", host: "a.example"},
			{path: "/common/z", host: "b.example"},
			{path: "/common/z", host: "a.example"},
			{path: "/z", host: "unknown.example"},
			{path: "/z"},
		},
	})
}

func TestHttpdAccess(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "access.conf",
		backends: []string{"M1", "M2"},
		steps: []hdtStep{
			{path: "/a/x"},
			{path: "/a/public/x"},
			{path: "/b/x"},
			{path: "/c/x"},
			{path: "/d"},
			{path: "/e"},
			{path: "/f12/x"},
			{path: "/fx"},
			{path: "/locked/x"},
			{path: "/locked/open/x"},
			{path: "/other"},
		},
	})
}

func TestHttpdMatch(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "match.conf",
		backends: []string{"I1", "I2", "APP"},
		steps: []hdtStep{
			{path: "/static/a.png", n: 2},
			{path: "/static/private/a.png"},
			{path: "/static/privatex/a.png"},
			{path: "/raw/x?q=1"},
			{path: "/static/doc.txt?a=1"},
			{path: "/loc/x?b=2"},
			{path: "/loc/skip/y"},
			{path: "/other?c=3"},
		},
	})
}

func TestHttpdIPVhost(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "ipvhost.conf",
		backends: []string{"IP1", "STAR"},
		steps: []hdtStep{
			{path: "/a", host: "star.example"},
			{path: "/b", host: "ip.example"},
			{path: "/c"},
		},
	})
}

func TestHttpdIPVhostAnyAddress(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "ipvhost_any.conf",
		backends: []string{"IP1", "STAR"},
		steps: []hdtStep{
			{path: "/a", host: "star.example"},
			{path: "/b", host: "ip.example", via: "127.0.0.2"},
			{path: "/c", via: "127.0.0.2"},
		},
	})
}

// The catch-all ProxyPassMatch of many tutorials, verbatim: $1 fills in the
// end of the balancer URL, httpd cuts the name after it, and the member sees
// the whole path; the sticky cookie (BALANCEID, no route cookie set by
// httpd here) and the URL parameter stick.
func TestHttpdGuidePassMatch(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_passmatch.conf",
		backends: []string{"NODE1", "NODE2"},
		steps: []hdtStep{
			{path: "/", n: 2},
			{path: "/foo", n: 2},
			{path: "/foo/bar.html?x=1"},
			{path: "/foo", cookie: "BALANCEID=x.node2", n: 2},
			{path: "/foo", cookie: "BALANCEID=x.node1", n: 2},
			{path: "/a/b?BALANCEID=x.node2"},
			{path: "/redirect"},
			{down: []string{"NODE2"}},
			{path: "/foo", cookie: "BALANCEID=x.node2"},
		},
	})
}

// mod_proxy_balancer's manual example: ProxyPass "/test" "balancer://mycluster"
// (no '/' after the name), the route cookie set by mod_headers.
func TestHttpdGuideModProxyBalancer(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_mod_proxy_balancer.conf",
		backends: []string{"M1", "M2"},
		steps: []hdtStep{
			{path: "/test", n: 2},
			{path: "/test/", n: 2},
			{path: "/test/a/b?q=1"},
			{path: "/test/x", cookie: "ROUTEID=.2", n: 2},
			{path: "/test/redirect", cookie: "ROUTEID=.1"},
			{path: "/testx"},
			{path: "/other"},
		},
	})
}

// mod_proxy_hcheck's manual example: ProxyPass "/" "balancer://foo" sends
// only / to balancer://foo; /x names balancer://foox, which does not exist.
func TestHttpdGuideHcheck(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "guide_hcheck.conf",
		backends: []string{"W1", "W2", "W3", "W4"},
		modules:  []httpdtest.Module{{Name: "proxy_hcheck_module", File: "mod_proxy_hcheck.so"}},
		steps: []hdtStep{
			{path: "/", n: 5},
			{path: "/x"},
			{path: "/foo/bar"},
		},
	})
}

// Every form of a balancer URL whose name is only known per request.
func TestHttpdBalancerNames(t *testing.T) {
	hdtCompare(t, &hdtScenario{
		conf:     "balancer_names.conf",
		backends: []string{"A1", "A2", "F1"},
		steps: []hdtStep{
			{path: "/m1"},
			{path: "/m1/a/b"},
			{path: "/m2/x"},
			{path: "/m2/foo/bar?q=1"},
			{path: "/m2/"},
			{path: "/m3/mycluster/z"},
			{path: "/m3/MyClusterFoo/q"},
			{path: "/m3/nothing/q"},
			{path: "/m4/a"},
			{path: "/m5/a/b?q=1"},
			{path: "/m6/foo/bar"},
			{path: "/m6//bar"},
			{path: "/m6/x/bar"},
			{path: "/p1"},
			{path: "/p1/x"},
			{path: "/p2/"},
			{path: "/p2/x"},
			{path: "/p2/foo/y"},
			{path: "/p3/x"},
			{path: "/l1/"},
			{path: "/l1/foo/z"},
			{path: "/l1/x"},
		},
	})
}
