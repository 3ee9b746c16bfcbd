package caddybalancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/lbset/caddy-balancer/config"

	"github.com/lbset/caddy-balancer/internal/benchutil"
)

// Benchmarks of the glue (docs/performance.md):
//
//   - BenchmarkSelectionPolicy: one selection on a reverse_proxy
//     UpstreamPool, Caddy's weighted_round_robin, round_robin and least_conn
//     next to this plugin's lb_policy byrequests, bybusyness and bytraffic.
//   - BenchmarkProxy: one request through the whole handler, plain
//     reverse_proxy next to the balancer handler, against an in-memory
//     backend (a RoundTripper: the proxies' own cost and allocations) and a
//     loopback HTTP backend (httptest).
//   - BenchmarkProxyInterleaved: the same two handlers, request for request
//     in alternation, and the ratio of their mean times (bal/rp): the
//     steadiest figure of the glue's overhead on a busy machine.
//
//	go test -run '^$' -bench . -benchmem .

func benchPool(n int) reverseproxy.UpstreamPool {
	pool := make(reverseproxy.UpstreamPool, n)
	for i := range pool {
		pool[i] = &reverseproxy.Upstream{Host: new(reverseproxy.Host), Dial: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1)}
	}
	return pool
}

// BenchmarkSelectionPolicy is one Select per iteration on a pool of n
// healthy upstreams, weights (loadfactors) 1…4 where the policy has them.
func BenchmarkSelectionPolicy(b *testing.B) {
	policies := []struct {
		name string
		make func(pool reverseproxy.UpstreamPool) (reverseproxy.Selector, error)
	}{
		{"caddy_weighted_round_robin", func(pool reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			s := &reverseproxy.WeightedRoundRobinSelection{}
			for i := range pool {
				s.Weights = append(s.Weights, 1+i%4)
			}
			if err := s.Provision(caddy.Context{}); err != nil {
				return nil, err
			}
			return s, s.Validate()
		}},
		{"caddy_round_robin", func(reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			return new(reverseproxy.RoundRobinSelection), nil
		}},
		{"caddy_least_conn", func(reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			return reverseproxy.LeastConnSelection{}, nil
		}},
		{"lb_policy_byrequests", func(pool reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			s := new(ByRequestsSelection)
			s.Members = weightedMembers(pool)
			return s, s.Provision(caddy.Context{})
		}},
		{"lb_policy_bybusyness", func(pool reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			s := new(ByBusynessSelection)
			s.Members = weightedMembers(pool)
			return s, s.Provision(caddy.Context{})
		}},
		{"lb_policy_bytraffic", func(pool reverseproxy.UpstreamPool) (reverseproxy.Selector, error) {
			s := new(ByTrafficSelection)
			s.Members = weightedMembers(pool)
			return s, s.Provision(caddy.Context{})
		}},
	}
	for _, p := range policies {
		for _, n := range []int{2, 8, 64, 1024} {
			b.Run(fmt.Sprintf("%s/n=%d", p.name, n), func(b *testing.B) {
				pool := benchPool(n)
				sel, err := p.make(pool)
				if err != nil {
					b.Fatal(err)
				}
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				b.ReportAllocs()
				cpu := benchutil.StartCPU(b)
				for i := 0; i < b.N; i++ {
					if sel.Select(pool, r, nil) == nil {
						b.Fatal("no upstream")
					}
				}
				cpu.Stop(b)
			})
		}
	}
}

func weightedMembers(pool reverseproxy.UpstreamPool) []PolicyMember {
	ms := make([]PolicyMember, len(pool))
	for i, u := range pool {
		ms[i] = PolicyMember{Address: u.Dial, LoadFactor: float64(1 + i%4)}
	}
	return ms
}

// memBackend is an in-memory backend: a transport that answers every request
// with a small static response without any I/O, so that what a benchmark
// measures is the proxy's own work.
type memBackend struct{}

const memBody = "hello from the backend\n"

func (memBackend) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {fmt.Sprint(len(memBody))}},
		ContentLength: int64(len(memBody)),
		Body:          io.NopCloser(strings.NewReader(memBody)),
		Request:       req,
	}, nil
}

// discardWriter is a reusable http.ResponseWriter that throws the body away.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchServer stands for the caddyhttp server that would have accepted the
// request; reverse_proxy reads its logging settings.
var benchServer = new(caddyhttp.Server)

var nopNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// proxyCase is one handler under benchmark.
type proxyCase struct {
	name    string
	handler caddyhttp.MiddlewareHandler
	cookie  string
}

// benchHandlers provisions a plain reverse_proxy (round_robin over the
// backends) and balancer handlers (byrequests; with and without a sticky
// session) over the same backends. transport nil means Caddy's HTTP transport.
func benchHandlers(b *testing.B, addrs []string, transport http.RoundTripper) ([]proxyCase, func()) {
	b.Helper()
	// A context of an empty config: it has the events app that
	// reverse_proxy needs. It is never cancelled (caddy offers no way to
	// cancel a ProvisionContext from outside); the handlers are cleaned up.
	ctx, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		b.Fatal(err)
	}
	plain := &reverseproxy.Handler{
		LoadBalancing: &reverseproxy.LoadBalancing{SelectionPolicy: new(reverseproxy.RoundRobinSelection)},
		Transport:     transport,
	}
	for _, a := range addrs {
		plain.Upstreams = append(plain.Upstreams, &reverseproxy.Upstream{Dial: a})
	}
	if err := plain.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	newBal := func(name, sticky string) *Handler {
		h := &Handler{Balancer: config.Balancer{Name: name, StickySession: sticky}}
		h.Transport = transport
		for i, a := range addrs {
			h.Members = append(h.Members, config.Member{URL: "http://" + a, Route: fmt.Sprintf("r%d", i+1)})
		}
		if err := h.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		return h
	}
	bal := newBal("bench-plain", "")
	sticky := newBal("bench-sticky", "ROUTEID")
	cases := []proxyCase{
		{name: "reverse_proxy", handler: plain},
		{name: "balancer", handler: bal},
		{name: "balancer_sticky_hit", handler: sticky, cookie: "ROUTEID=.r1"},
	}
	return cases, func() {
		_ = sticky.Cleanup()
		_ = bal.Cleanup()
		_ = plain.Cleanup()
	}
}

// serveOne runs one request through h the way Caddy's server prepares it.
func serveOne(h caddyhttp.MiddlewareHandler, w *discardWriter, cookie string) error {
	r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://front.example/app/index.html?x=1", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.RequestURI = "/app/index.html?x=1"
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	clear(w.h)
	w.status = 0
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, benchServer)
	return h.ServeHTTP(w, r, nopNext)
}

func benchProxy(b *testing.B, addrs []string, transport http.RoundTripper) {
	cases, cleanup := benchHandlers(b, addrs, transport)
	defer cleanup()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: make(http.Header)}
			for i := 0; i < 10; i++ { // warm up connections and pools
				if err := serveOne(c.handler, w, c.cookie); err != nil || w.status != 200 {
					b.Fatalf("warm-up: status %d, error %v", w.status, err)
				}
			}
			b.ReportAllocs()
			cpu := benchutil.StartCPU(b)
			for i := 0; i < b.N; i++ {
				if err := serveOne(c.handler, w, c.cookie); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Stop(b)
		})
	}
}

// BenchmarkProxy is one proxied GET per iteration. The allocs/op difference
// between balancer and reverse_proxy is what the glue allocates.
func BenchmarkProxy(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		benchProxy(b, []string{"10.0.0.1:8080", "10.0.0.2:8080"}, memBackend{})
	})
	b.Run("tcp", func(b *testing.B) {
		benchProxy(b, startBenchBackends(b, 2), nil)
	})
}

// startBenchBackends starts n loopback HTTP backends with a small static
// answer, closed when the benchmark ends.
func startBenchBackends(b *testing.B, n int) []string {
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, memBody)
		}))
		b.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().(*net.TCPAddr).String())
	}
	return addrs
}

// BenchmarkProxyInterleaved sends each iteration's request through
// reverse_proxy and then through the balancer, alternately, and reports
// each handler's mean wall time per request and their ratio: interference
// from other work on the machine hits both handlers alike, so the ratio
// is steadier than that of two separate benchmarks.
func BenchmarkProxyInterleaved(b *testing.B) {
	run := func(b *testing.B, addrs []string, transport http.RoundTripper) {
		cases, cleanup := benchHandlers(b, addrs, transport)
		defer cleanup()
		rp, bal := cases[0], cases[1]
		w := &discardWriter{h: make(http.Header)}
		for i := 0; i < 10; i++ {
			_ = serveOne(rp.handler, w, "")
			_ = serveOne(bal.handler, w, "")
		}
		var trp, tbal time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		hs := [2]caddyhttp.MiddlewareHandler{rp.handler, bal.handler}
		for i := 0; i < b.N; i++ {
			// which goes first alternates, so that neither always follows
			// the other
			var d [2]time.Duration
			for k := 0; k < 2; k++ {
				j := (i + k) % 2
				t0 := time.Now()
				if err := serveOne(hs[j], w, ""); err != nil {
					b.Fatal(err)
				}
				d[j] = time.Since(t0)
			}
			trp += d[0]
			tbal += d[1]
		}
		b.StopTimer()
		b.ReportMetric(float64(trp.Nanoseconds())/float64(b.N), "rp-ns/req")
		b.ReportMetric(float64(tbal.Nanoseconds())/float64(b.N), "bal-ns/req")
		b.ReportMetric(float64(tbal)/float64(trp), "bal/rp")
	}
	b.Run("mem", func(b *testing.B) {
		run(b, []string{"10.0.0.1:8080", "10.0.0.2:8080"}, memBackend{})
	})
	b.Run("tcp", func(b *testing.B) {
		run(b, startBenchBackends(b, 2), nil)
	})
}

// TestBenchProxyHandlers checks that the benchmark's handlers answer, and
// that the sticky case is a cookie hit.
func TestBenchProxyHandlers(t *testing.T) {
	ctx, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Balancer: config.Balancer{Name: "bench-check", StickySession: "ROUTEID"}}
	h.Transport = memBackend{}
	h.Members = []config.Member{{URL: "http://10.0.0.1:8080", Route: "r1"}, {URL: "http://10.0.0.2:8080", Route: "r2"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	w := &discardWriter{h: make(http.Header)}
	for i := 0; i < 4; i++ {
		if err := serveOne(h, w, "ROUTEID=.r2"); err != nil || w.status != 200 {
			t.Fatalf("status %d, error %v", w.status, err)
		}
	}
	for _, m := range h.bal.Members() {
		st := m.State()
		if want := map[string]int64{"r1": 0, "r2": 4}[st.Route]; st.Elected != want || st.Busy != 0 {
			t.Errorf("%s: elected %d busy %d, want %d 0", st.Route, st.Elected, st.Busy, want)
		}
	}
}
