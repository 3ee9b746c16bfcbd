package caddybalancer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/api"
	"github.com/lbset/caddy-balancer/internal/testenv"
)

// Real clients of the balancer-manager, run against our in-process Caddy:
//
//   - TestClientAnsible: Ansible's community.general.apache2_mod_proxy
//     (Debian: apt-get install ansible python3-bs4), on the admin endpoint;
//   - TestClientCurl: testdata/clients/proxy_balancer.sh, httpd-tests'
//     proxy_balancer.t manager flow in bash + curl, on the site handler and on
//     the admin endpoint;
//   - TestClientBrowser: headless Chromium driven through chromedriver's
//     WebDriver HTTP API (apt-get install chromium chromium-driver), on the
//     site handler and on the admin endpoint.
//
// Each skips with a message when its client is not installed; .ci/clients.sh
// installs them and runs `go test -run 'Client|Ansible|Browser|Curl' .`.

// clientsDir is testdata/clients, absolute.
func clientsDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("testdata", "clients"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startBackendAt starts a backend named name on ip (any 127.0.0.0/8 address
// works on Linux), so that members differ by host, as Ansible's module
// selects members by host alone.
func startBackendAt(t *testing.T, name, ip string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (need the whole 127.0.0.0/8 on loopback): %v", ip, err)
	}
	b := &backend{Name: name}
	b.srv = httptest.NewUnstartedServer(b)
	_ = b.srv.Listener.Close()
	b.srv.Listener = l
	b.srv.Start()
	b.URL = b.srv.URL
	b.Port = l.Addr().(*net.TCPAddr).Port
	t.Cleanup(b.srv.Close)
	return b
}

// apiMemberFlags returns the members' status letters from the JSON API, by URL.
func apiMemberFlags(t *testing.T, apiURL, name string) map[string]api.Member {
	t.Helper()
	b := decodeBalancer(t, adminDo(t, "GET", apiURL+"/"+name, ""))
	out := map[string]api.Member{}
	for _, m := range b.Members {
		out[m.Name] = m
	}
	return out
}

// traffic sends n requests and counts the answers per backend.
func traffic(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, b := range sequence(t, url, n) {
		out[b]++
	}
	return out
}

// ---- Ansible ---------------------------------------------------------------

// ansibleRunner runs `ansible localhost -m community.general.apache2_mod_proxy`.
type ansibleRunner struct {
	bin, python, home, pythonpath string
	total                         time.Duration
	runs                          int
}

// ansibleResult is the module's answer (the json stdout callback's host result).
type ansibleResult struct {
	Changed bool            `json:"changed"`
	Failed  bool            `json:"failed"`
	Msg     string          `json:"msg"`
	Member  ansibleMember   `json:"member"`
	Members []ansibleMember `json:"members"`
}

type ansibleMember struct {
	Host          string            `json:"host"`
	Port          string            `json:"port"`
	Protocol      string            `json:"protocol"`
	Path          *string           `json:"path"`
	Status        map[string]bool   `json:"status"`
	Attributes    map[string]string `json:"attributes"`
	ManagementURL string            `json:"management_url"`
	BalancerURL   string            `json:"balancer_url"`
}

func newAnsibleRunner(t *testing.T) *ansibleRunner {
	t.Helper()
	bin := testenv.NeedTool(t, "ansible", "ansible")
	// The module runs under the Python that runs ansible (its shebang) and
	// needs bs4 there.
	python := "python3"
	if f, err := os.Open(bin); err == nil {
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "#!"); ok {
			if fs := strings.Fields(s); len(fs) == 1 && filepath.IsAbs(fs[0]) {
				python = fs[0]
			}
		}
	}
	if err := exec.Command(python, "-c", "import bs4").Run(); err != nil {
		testenv.Skip(t, "%s has no bs4 (Debian: apt-get install -y python3-bs4); skipping the Ansible client test", python)
	}
	mod := exec.Command(python, "-c", "import ansible_collections.community.general.plugins.modules.apache2_mod_proxy")
	if out, err := mod.CombinedOutput(); err != nil {
		testenv.Skip(t, "community.general.apache2_mod_proxy is not importable by %s (Debian's ansible package ships it): %v\n%s", python, err, out)
	}
	return &ansibleRunner{bin: bin, python: python, home: t.TempDir(), pythonpath: clientsDir(t)}
}

// run runs the module with args (key=value ...); check adds --check.
func (a *ansibleRunner) run(t *testing.T, args string, check bool) ansibleResult {
	t.Helper()
	cmdArgs := []string{"localhost", "-m", "community.general.apache2_mod_proxy", "-a", args,
		"-e", "ansible_python_interpreter=" + a.python}
	if check {
		cmdArgs = append(cmdArgs, "--check")
	}
	cmd := exec.Command(a.bin, cmdArgs...)
	cmd.Dir = a.home // no ansible.cfg from the working directory
	pp := a.pythonpath
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(),
		"PYTHONPATH="+pp,            // BeautifulSoup.py, the shim for the module's `from BeautifulSoup import BeautifulSoup`
		"PYTHONDONTWRITEBYTECODE=1", // no __pycache__ in testdata/clients
		"ANSIBLE_HOME="+a.home,
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(a.home, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(a.home, "tmp"),
		"ANSIBLE_STDOUT_CALLBACK=json",
		"ANSIBLE_LOAD_CALLBACK_PLUGINS=1",
		"ANSIBLE_LOCALHOST_WARNING=0",
		"ANSIBLE_NOCOLOR=1",
		"no_proxy=*", "NO_PROXY=*",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	a.total += d
	a.runs++
	var out struct {
		Plays []struct {
			Tasks []struct {
				Hosts map[string]json.RawMessage `json:"hosts"`
			} `json:"tasks"`
		} `json:"plays"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil || len(out.Plays) != 1 || len(out.Plays[0].Tasks) != 1 {
		t.Fatalf("ansible %s: %v / %v\nstdout:\n%s\nstderr:\n%s", args, err, jerr, stdout.String(), stderr.String())
	}
	raw := out.Plays[0].Tasks[0].Hosts["localhost"]
	var res ansibleResult
	if jerr := json.Unmarshal(raw, &res); jerr != nil {
		t.Fatalf("ansible %s: result %v\n%s", args, jerr, raw)
	}
	if res.Failed || err != nil {
		t.Fatalf("ansible %s failed (%v): %s\n%s\nstderr:\n%s", args, err, res.Msg, raw, stderr.String())
	}
	t.Logf("ansible %s%s: changed=%v (%.1fs)", args, map[bool]string{true: " --check"}[check], res.Changed, d.Seconds())
	return res
}

// TestClientAnsible runs Ansible's community.general.apache2_mod_proxy (the
// module shipped with Debian's ansible 7 / community.general 6) against the
// balancer-manager on Caddy's admin endpoint, a balancer of three live
// members on 127.0.0.2, .3 and .4. It lists the members, then sets each state
// the module knows on one member, and checks after each step the member's
// flags through the JSON API, the module's own answer, idempotence, check
// mode, and where the requests go. Last, it shows the module silently failing
// against the balancer_manager site handler (httpd's Referer gate), as it
// does against httpd >= 2.4.41.
func TestClientAnsible(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Ansible client test takes about 30s (2s per module run)")
	}
	a := newAnsibleRunner(t)
	started := time.Now()
	bs := []*backend{
		startBackendAt(t, "b1", "127.0.0.2"),
		startBackendAt(t, "b2", "127.0.0.3"),
		startBackendAt(t, "b3", "127.0.0.4"),
	}
	port, aport := freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	handle /balancer-manager* {
		balancer_manager
	}
	handle {
		balancer mywsbalancer {
			balancer_member %s route=node1
			balancer_member %s route=node2
			balancer_member %s route=node3
		}
	}
}`, aport, site, bs[0].URL, bs[1].URL, bs[2].URL))
	// The module sends Host = balancer_vhost; Caddy's admin accepts 127.0.0.1:PORT.
	vhost := fmt.Sprintf("balancer_vhost=127.0.0.1:%d balancer_url_suffix=/balancer-manager/", aport)
	member := func(host, state string) string {
		s := vhost + " member_host=" + host
		if state != "" {
			s += " state=" + state
		}
		return s
	}
	flags := func(b *backend) string {
		t.Helper()
		return apiMemberFlags(t, apiURL, "mywsbalancer")[b.URL].Flags
	}
	wantFlags := func(want ...string) {
		t.Helper()
		for i, b := range bs {
			if got := flags(b); got != want[i] {
				t.Fatalf("%s (%s): flags %q, want %q", b.Name, b.URL, got, want[i])
			}
		}
	}
	wantStatus := func(m ansibleMember, disabled, drained, standby, ignore bool) {
		t.Helper()
		want := map[string]bool{"disabled": disabled, "drained": drained, "hot_standby": standby, "ignore_errors": ignore}
		for k, v := range want {
			if m.Status[k] != v {
				t.Fatalf("module reports status %v, want %v", m.Status, want)
			}
		}
	}

	// List mode: no member_host.
	res := a.run(t, vhost, false)
	if res.Changed || len(res.Members) != 3 {
		t.Fatalf("list: changed=%v, %d members: %+v", res.Changed, len(res.Members), res.Members)
	}
	for i, m := range res.Members {
		b := bs[i]
		if m.Host != fmt.Sprintf("127.0.0.%d", i+2) || m.Port != fmt.Sprint(b.Port) || m.Protocol != "http" ||
			m.Attributes["Status"] != "Init Ok " || m.Attributes["Route"] != fmt.Sprintf("node%d", i+1) ||
			m.Attributes["Worker URL"] != b.URL || m.Attributes["Factor"] != "1.00" ||
			!strings.HasPrefix(m.ManagementURL, fmt.Sprintf("http://127.0.0.1:%d/balancer-manager/?b=mywsbalancer&w=%s&nonce=", aport, b.URL)) {
			t.Fatalf("list: member %d: %+v", i, m)
		}
		wantStatus(m, false, false, false, false)
	}

	// disabled: D set; the member gets no requests.
	res = a.run(t, member("127.0.0.3", "disabled"), false)
	if !res.Changed || res.Member.Host != "127.0.0.3" || res.Member.Attributes["Status"] != "Init Dis " {
		t.Fatalf("disabled: %+v", res)
	}
	wantStatus(res.Member, true, false, false, false)
	wantFlags("O", "OD", "O")
	if got := traffic(t, site+"/", 12); got["b2"] != 0 || got["b1"] != 6 || got["b3"] != 6 {
		t.Fatalf("with b2 disabled: %v", got)
	}
	// Again: nothing to change.
	if res = a.run(t, member("127.0.0.3", "disabled"), false); res.Changed {
		t.Fatalf("disabled twice: changed")
	}
	// Check mode reports the change but makes none.
	if res = a.run(t, member("127.0.0.2", "drained"), true); !res.Changed {
		t.Fatalf("check mode: no change reported")
	}
	wantFlags("O", "OD", "O")

	// drained: N set, D cleared; still no requests for it (no sticky sessions).
	res = a.run(t, member("127.0.0.3", "drained"), false)
	if !res.Changed || res.Member.Attributes["Status"] != "Init Drn Ok " {
		t.Fatalf("drained: %+v", res)
	}
	wantStatus(res.Member, false, true, false, false)
	wantFlags("O", "ON", "O")
	if got := traffic(t, site+"/", 8); got["b2"] != 0 || got["b1"]+got["b3"] != 8 {
		t.Fatalf("with b2 draining: %v", got)
	}

	// hot_standby: H; unused while a regular member is usable, used when
	// none is (state=absent is disabled for the module).
	res = a.run(t, member("127.0.0.3", "hot_standby"), false)
	if !res.Changed || res.Member.Attributes["Status"] != "Init Stby Ok " {
		t.Fatalf("hot_standby: %+v", res)
	}
	wantStatus(res.Member, false, false, true, false)
	wantFlags("O", "OH", "O")
	if got := traffic(t, site+"/", 8); got["b2"] != 0 || got["b1"]+got["b3"] != 8 {
		t.Fatalf("with b2 on standby: %v", got)
	}
	a.run(t, member("127.0.0.2", "absent"), false)
	a.run(t, member("127.0.0.4", "disabled,drained"), false)
	wantFlags("OD", "OH", "OND")
	if got := traffic(t, site+"/", 4); got["b2"] != 4 {
		t.Fatalf("with b1 and b3 disabled, the standby b2 should take everything: %v", got)
	}
	a.run(t, member("127.0.0.2", "present"), false)
	a.run(t, member("127.0.0.4", "enabled"), false)
	wantFlags("O", "OH", "O")

	// ignore_errors: I; the member is usable and takes requests.
	res = a.run(t, member("127.0.0.3", "ignore_errors"), false)
	if !res.Changed || res.Member.Attributes["Status"] != "Init Ign Ok " {
		t.Fatalf("ignore_errors: %+v", res)
	}
	wantStatus(res.Member, false, false, false, true)
	wantFlags("O", "OI", "O")
	if got := traffic(t, site+"/", 9); got["b1"] == 0 || got["b2"] == 0 || got["b3"] == 0 || got["b1"]+got["b2"]+got["b3"] != 9 {
		t.Fatalf("with b2 ignoring errors, every member should answer: %v", got)
	}

	// enabled: every flag the module manages cleared.
	res = a.run(t, member("127.0.0.3", "enabled"), false)
	if !res.Changed || res.Member.Attributes["Status"] != "Init Ok " {
		t.Fatalf("enabled: %+v", res)
	}
	wantStatus(res.Member, false, false, false, false)
	wantFlags("O", "O", "O")
	if got := traffic(t, site+"/", 9); got["b1"] == 0 || got["b2"] == 0 || got["b3"] == 0 || got["b1"]+got["b2"]+got["b3"] != 9 {
		t.Fatalf("all enabled, every member should answer: %v", got)
	}

	// The site handler follows httpd >= 2.4.41's Referer gate, and the
	// module sends no Referer: its POST is dropped. The module does not
	// notice (it reports the change it asked for); the member is unchanged,
	// as against httpd itself. Use the admin endpoint for Ansible.
	siteVhost := fmt.Sprintf("balancer_vhost=127.0.0.1:%d balancer_url_suffix=/balancer-manager/", port)
	res = a.run(t, siteVhost+" member_host=127.0.0.3 state=disabled", false)
	if !res.Changed || res.Member.Attributes["Status"] != "Init Ok " {
		t.Fatalf("site handler: %+v", res)
	}
	wantFlags("O", "O", "O")

	// The manager's XML agrees.
	x := get(t, fmt.Sprintf("http://127.0.0.1:%d/balancer-manager?xml=1", aport)).Body
	if strings.Count(x, "<httpd:status>Init Ok </httpd:status>") != 3 {
		t.Fatalf("XML:\n%s", x)
	}
	t.Logf("Ansible: %d module runs in %.1fs, whole test %.1fs", a.runs, a.total.Seconds(), time.Since(started).Seconds())
}

// ---- curl ------------------------------------------------------------------

// TestClientCurl runs testdata/clients/proxy_balancer.sh (httpd-tests'
// proxy_balancer.t manager flow in bash + curl) against the balancer_manager
// site handler and against the admin endpoint.
func TestClientCurl(t *testing.T) {
	for tool, pkg := range map[string]string{"bash": "bash", "curl": "curl", "awk": "mawk", "sed": "sed"} {
		testenv.NeedTool(t, pkg, tool)
	}
	script := filepath.Join(clientsDir(t), "proxy_balancer.sh")
	run := func(t *testing.T, env []string, args ...string) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("proxy_balancer.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), "ok ") || strings.Contains(string(out), "not ok") {
			t.Fatalf("proxy_balancer.sh output:\n%s", out)
		}
		t.Logf("proxy_balancer.sh (%.2fs):\n%s", time.Since(start).Seconds(), out)
	}
	config := func(port, aport int, manager string) string {
		admin := "admin off"
		if aport != 0 {
			admin = fmt.Sprintf("admin 127.0.0.1:%d", aport)
		}
		return fmt.Sprintf(`{
	%s
	persist_config off
}
http://127.0.0.1:%d {
	%s
	handle_path /dynproxy* {
		balancer dynproxy {
			growth 10
		}
	}
}`, admin, port, manager)
	}

	t.Run("site", func(t *testing.T) {
		bs := startBackends(t, 1)
		port := freePort(t)
		site := fmt.Sprintf("http://127.0.0.1:%d", port)
		loadCaddyfile(t, config(port, 0, "handle /balancer-manager* {\n\t\tbalancer_manager\n\t}"))
		run(t, nil, site+"/balancer-manager", site+"/dynproxy", bs[0].URL, "dynproxy")
		if r := get(t, site+"/dynproxy/x"); r.Backend != "b1" {
			t.Fatalf("after the script: %d from %q", r.Status, r.Backend)
		}
	})
	t.Run("admin", func(t *testing.T) {
		bs := startBackends(t, 1)
		port, aport := freePort(t), freePort(t)
		site := fmt.Sprintf("http://127.0.0.1:%d", port)
		loadCaddyfile(t, config(port, aport, ""))
		// The admin endpoint keeps the parameters of Referer-less requests.
		run(t, []string{"REFERER_OPTIONAL=1"}, fmt.Sprintf("http://127.0.0.1:%d/balancer-manager", aport), site+"/dynproxy", bs[0].URL)
		m := apiMemberFlags(t, fmt.Sprintf("http://127.0.0.1:%d/balancers", aport), "dynproxy")[bs[0].URL]
		if m.Flags != "O" || !m.Dynamic {
			t.Fatalf("added member: %+v", m)
		}
	})
}

// ---- Chromium ----------------------------------------------------------------

// webDriver is a minimal W3C WebDriver client for chromedriver.
type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID
}

const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

// wdCall sends one WebDriver command and returns its "value".
func wdCall(t *testing.T, method, url string, body any) (json.RawMessage, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		js, _ := json.Marshal(body)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, out.Value)
	}
	return out.Value, nil
}

func (w *webDriver) do(method, path string, body any) json.RawMessage {
	w.t.Helper()
	v, err := wdCall(w.t, method, w.base+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// find returns the element for a locator ("css selector", "link text", ...).
func (w *webDriver) find(using, value string) string {
	w.t.Helper()
	var el map[string]string
	if err := json.Unmarshal(w.do("POST", "/element", map[string]string{"using": using, "value": value}), &el); err != nil || el[webElementKey] == "" {
		var src string
		w.script(&src, "return document.documentElement.outerHTML")
		w.t.Fatalf("no element %s %q (%v) in the page:\n%s", using, value, err, src)
	}
	return el[webElementKey]
}

func (w *webDriver) click(el string) {
	w.t.Helper()
	w.do("POST", "/element/"+el+"/click", map[string]any{})
}

func (w *webDriver) clear(el string) {
	w.t.Helper()
	w.do("POST", "/element/"+el+"/clear", map[string]any{})
}

func (w *webDriver) sendKeys(el, text string) {
	w.t.Helper()
	w.do("POST", "/element/"+el+"/value", map[string]string{"text": text})
}

// script runs JavaScript in the page and decodes its result into out.
func (w *webDriver) script(out any, js string, args ...any) {
	w.t.Helper()
	if args == nil {
		args = []any{}
	}
	if err := json.Unmarshal(w.do("POST", "/execute/sync", map[string]any{"script": js, "args": args}), out); err != nil {
		w.t.Fatalf("script result: %v", err)
	}
}

// waitTitle waits until the page's title is want (after a navigation that
// does not wait for the page to load).
func (w *webDriver) waitTitle(want string) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var title string
		w.script(&title, "return document.readyState === 'complete' ? document.title : ''")
		if title == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("page title %q, want %q", title, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memberRow is the member table's row for a member URL, as the page shows it.
func (w *webDriver) memberRow(url string) map[string]string {
	w.t.Helper()
	var row map[string]string
	w.script(&row, `
const t = document.querySelectorAll('table')[1];
const keys = Array.from(t.rows[0].cells).map(c => c.textContent);
for (const r of Array.from(t.rows).slice(1)) {
  if (r.cells[0].textContent === arguments[0]) {
    const o = {};
    keys.forEach((k, i) => o[k] = r.cells[i].textContent);
    return o;
  }
}
return null;`, url)
	return row
}

// screenshot saves the viewport as a PNG, paletted with its 256 most
// frequent colours (a text page has few more; a third of the size).
func (w *webDriver) screenshot(path string) {
	w.t.Helper()
	var b64 string
	if err := json.Unmarshal(w.do("GET", "/screenshot", nil), &b64); err != nil {
		w.t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		w.t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		w.t.Fatal(err)
	}
	count := map[color.NRGBA]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			count[color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)]++
		}
	}
	cols := make([]color.NRGBA, 0, len(count))
	for c := range count {
		cols = append(cols, c)
	}
	sort.Slice(cols, func(i, j int) bool {
		if count[cols[i]] != count[cols[j]] {
			return count[cols[i]] > count[cols[j]]
		}
		a, b := cols[i], cols[j]
		return uint32(a.R)<<24|uint32(a.G)<<16|uint32(a.B)<<8|uint32(a.A) < uint32(b.R)<<24|uint32(b.G)<<16|uint32(b.B)<<8|uint32(b.A)
	})
	var pal color.Palette
	for _, c := range cols[:min(len(cols), 256)] {
		pal = append(pal, c)
	}
	p := image.NewPaletted(bounds, pal)
	draw.Draw(p, bounds, img, bounds.Min, draw.Src)
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, p); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		w.t.Fatal(err)
	}
	w.t.Logf("screenshot: %s (%d bytes; %d colours, 256 kept)", path, buf.Len(), len(cols))
}

// startChromium starts chromedriver and a headless Chromium session; both go
// away at the end of the test.
func startChromium(t *testing.T) *webDriver {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	testenv.NeedTool(t, "chromium", chromium)
	driver := testenv.NeedTool(t, "chromium-driver", "chromedriver")
	port := freePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromedriver: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := wdCall(t, "GET", root+"/status", nil)
		var st struct{ Ready bool }
		if err == nil && json.Unmarshal(v, &st) == nil && st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	profile, err := os.MkdirTemp("", "caddy-balancer-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	v, err := wdCall(t, "POST", root+"/session", map[string]any{
		"capabilities": map[string]any{"alwaysMatch": map[string]any{
			"browserName": "chrome",
			"goog:chromeOptions": map[string]any{
				"binary": chromium,
				"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
					"--disable-background-networking", "--disable-component-update", "--disable-sync",
					"--disable-dev-shm-usage", "--window-size=1100,800", "--user-data-dir=" + profile},
			},
		}},
	})
	if err != nil {
		t.Fatalf("new session: %v\n%s", err, logs.String())
	}
	var sess struct {
		SessionID    string         `json:"sessionId"`
		Capabilities map[string]any `json:"capabilities"`
	}
	if err := json.Unmarshal(v, &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("new session: %v %s", err, v)
	}
	w := &webDriver{t: t, base: root + "/session/" + sess.SessionID}
	t.Cleanup(func() { _, _ = wdCall(t, "DELETE", w.base, nil) })
	t.Logf("Chromium %v", sess.Capabilities["browserVersion"])
	return w
}

// TestClientBrowser opens the manager in headless Chromium, follows a
// worker's link, sets Disabled (radio w_status_D=1) and the load factor in
// the edit form, submits it, and checks that the page shows the new values
// and that the traffic follows; then it enables the member again with a
// different load factor and checks the request split. It runs against the
// balancer_manager site handler (httpd's Referer gate: the browser's
// same-origin Referer passes it) and against the admin endpoint.
func TestClientBrowser(t *testing.T) {
	w := startChromium(t)
	for _, where := range []string{"site", "admin"} {
		t.Run(where, func(t *testing.T) {
			w.t = t
			bs := startBackends(t, 3)
			port, aport := freePort(t), freePort(t)
			site := fmt.Sprintf("http://127.0.0.1:%d", port)
			manager := site + "/balancer-manager"
			if where == "admin" {
				manager = fmt.Sprintf("http://127.0.0.1:%d/balancer-manager", aport)
			}
			loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
%s {
	handle /balancer-manager* {
		balancer_manager
	}
	# Chromium's favicon request would move the byrequests counters.
	handle /favicon.ico {
		respond 404
	}
	handle {
		balancer web {
			balancer_member %s route=node1
			balancer_member %s route=node2
			balancer_member %s route=node3
		}
	}
}`, aport, site, bs[0].URL, bs[1].URL, bs[2].URL))
			apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers", aport)

			if where == "admin" {
				// Caddy's admin server refuses a browser's direct navigation:
				// a request with Sec-Fetch-Mode must carry an Origin or a
				// Referer of the admin's own origin (caddy admin.go,
				// checkOrigin), and a typed URL or bookmark sends neither.
				w.do("POST", "/url", map[string]string{"url": manager})
				var body string
				w.script(&body, "return document.body.innerText")
				if !strings.Contains(body, "not allowed to access from origin") {
					t.Fatalf("direct navigation to the admin endpoint: expected Caddy's origin error, got:\n%s", body)
				}
				// Arriving with the admin's own origin as Referer (as from
				// a link on an admin page) passes; from then on the page's
				// own links and forms carry it.
				w.do("POST", "/goog/cdp/execute", map[string]any{"cmd": "Page.navigate",
					"params": map[string]string{"url": manager, "referrer": manager}})
				w.waitTitle("Balancer Manager")
			} else {
				w.do("POST", "/url", map[string]string{"url": manager})
			}
			var title string
			w.script(&title, "return document.title")
			if title != "Balancer Manager" {
				var src string
				w.script(&src, "return document.documentElement.outerHTML")
				t.Fatalf("title %q, page:\n%s", title, src)
			}
			if row := w.memberRow(bs[1].URL); row == nil || row["Status"] != "Init Ok " || row["Factor"] != "1.00" {
				t.Fatalf("member row before: %v", row)
			}
			// Follow b2's link: the worker edit form.
			w.click(w.find("link text", bs[1].URL))
			var h3 string
			w.script(&h3, "const h = Array.from(document.querySelectorAll('h3')).pop(); return h ? h.textContent : ''")
			if h3 != "Edit worker settings for "+bs[1].URL {
				t.Fatalf("after following the worker link, last heading %q (no edit form: Referer gate?)", h3)
			}
			// Disabled on, load factor 4, submit.
			lf := w.find("css selector", "input[name='w_lf']")
			w.clear(lf)
			w.sendKeys(lf, "4")
			w.click(w.find("css selector", "#w_status_D1"))
			w.click(w.find("css selector", "form input[type='submit']"))

			var row map[string]string
			deadline := time.Now().Add(10 * time.Second)
			for {
				row = w.memberRow(bs[1].URL)
				if row != nil && row["Status"] == "Init Dis " {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after submitting: member row %v", row)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if row["Factor"] != "4.00" {
				t.Fatalf("after submitting: factor %q, want 4.00", row["Factor"])
			}
			// The re-rendered form shows the new values too.
			var form struct {
				LF       string `json:"lf"`
				Disabled bool   `json:"disabled"`
			}
			w.script(&form, `return {lf: document.querySelector("input[name='w_lf']").value,
				disabled: document.querySelector('#w_status_D1').checked}`)
			if form.LF != "4.00" || !form.Disabled {
				t.Fatalf("edit form after submitting: %+v", form)
			}
			if where == "site" && os.Getenv("CLIENTS_SCREENSHOT") != "" {
				w.screenshot(filepath.Join(clientsDir(t), "balancer-manager.png"))
			}
			m := apiMemberFlags(t, apiURL, "web")[bs[1].URL]
			if m.Flags != "OD" || m.LoadFactor != 4 {
				t.Fatalf("JSON API after the form: %+v", m)
			}
			if got := traffic(t, site+"/", 12); got["b2"] != 0 || got["b1"] != 6 || got["b3"] != 6 {
				t.Fatalf("with b2 disabled: %v", got)
			}

			// Enable it again (radio Off); its load factor 4 now shows in the split.
			w.click(w.find("css selector", "#w_status_D0"))
			w.click(w.find("css selector", "form input[type='submit']"))
			deadline = time.Now().Add(10 * time.Second)
			for {
				row = w.memberRow(bs[1].URL)
				if row != nil && row["Status"] == "Init Ok " {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after enabling: member row %v", row)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := traffic(t, site+"/", 12); got["b1"] != 2 || got["b2"] != 8 || got["b3"] != 2 {
				t.Fatalf("with b2 at load factor 4 and the others at 1: %v, want b1:2 b2:8 b3:2", got)
			}
		})
	}
}
