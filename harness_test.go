package caddybalancer

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/lbset/caddy-balancer/internal/caddybin"
)

// This file is the integration-test harness: Caddy runs in this test process
// (caddy.Load), on free loopback ports, in front of real backend sockets.
// Tests in this package run one after another; each loads its own config.

// freePort returns a loopback TCP port that nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// backend is a real HTTP server on loopback that answers "<name> <METHOD> <path>".
type backend struct {
	Name string
	URL  string // http://127.0.0.1:port
	Port int
	srv  *httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	handler http.HandlerFunc // optional override
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.Name)
	if h != nil {
		h(w, r)
		return
	}
	fmt.Fprintf(w, "%s %s %s", b.Name, r.Method, r.URL.RequestURI())
}

// SetHandler replaces what the backend answers (it still sets X-Backend).
func (b *backend) SetHandler(h http.HandlerFunc) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

// Close stops the backend: its port then refuses connections.
func (b *backend) Close() { b.srv.Close() }

// startBackends starts n backends named b1..bn.
func startBackends(t testing.TB, n int) []*backend {
	t.Helper()
	out := make([]*backend, n)
	for i := range out {
		b := &backend{Name: fmt.Sprintf("b%d", i+1)}
		b.srv = httptest.NewServer(b)
		b.URL = b.srv.URL
		b.Port = b.srv.Listener.Addr().(*net.TCPAddr).Port
		t.Cleanup(b.srv.Close)
		out[i] = b
	}
	return out
}

// deadURL returns an http URL on a loopback port with nothing listening.
func deadURL(t testing.TB) string {
	return fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
}

// adaptCaddyfile adapts a Caddyfile to JSON, failing the test on errors.
func adaptCaddyfile(t testing.TB, src string) []byte {
	t.Helper()
	js, err := adaptCaddyfileErr(src)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, src)
	}
	return js
}

func adaptCaddyfileErr(src string) ([]byte, error) {
	ad := caddyconfig.GetAdapter("caddyfile")
	js, _, err := ad.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	return js, err
}

// loadCaddy runs the given config (JSON) in this process and stops it at the
// end of the test. The config should set "admin" itself if the test needs it;
// otherwise the admin endpoint is disabled.
func loadCaddy(t testing.TB, cfgJSON []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cfgJSON, &m); err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	if _, ok := m["admin"]; !ok {
		m["admin"] = map[string]any{"disabled": true}
	}
	cfgJSON, _ = json.Marshal(m)
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cfgJSON)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// loadCaddyfile adapts and runs a Caddyfile. Use a global block with
// `admin off` (or an admin address) and explicit http:// site addresses.
func loadCaddyfile(t testing.TB, src string) {
	t.Helper()
	loadCaddy(t, adaptCaddyfile(t, src))
}

// client is an HTTP client that never reuses connections across tests and
// does not follow redirects.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true},
}

// result is what a client saw for one request.
type result struct {
	Status  int
	Backend string // X-Backend of the answer, "" if none
	Body    string
	Header  http.Header
}

// do sends one request and returns what the client saw.
func do(t testing.TB, req *http.Request) result {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{Status: resp.StatusCode, Backend: resp.Header.Get("X-Backend"), Body: string(body), Header: resp.Header}
}

// get sends a GET with optional "Name: value" header lines.
func get(t testing.TB, url string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return do(t, req)
}

// sequence sends n GETs and returns which backend answered each ("503" etc.
// for an answer without a backend).
func sequence(t testing.TB, url string, n int, headers ...string) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		r := get(t, url, headers...)
		if r.Backend != "" && r.Status < 500 {
			out[i] = r.Backend
		} else {
			out[i] = fmt.Sprint(r.Status)
		}
	}
	return out
}

// TestMain removes what the tests built (the caddy binary of the fleet
// tests) once they have run.
func TestMain(m *testing.M) {
	code := m.Run()
	caddybin.Cleanup()
	os.Exit(code)
}
