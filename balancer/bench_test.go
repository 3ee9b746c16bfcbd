package balancer

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbset/caddy-balancer/internal/benchutil"
)

// Benchmarks of one selection: Balancer.Pick followed by Member.Release, the
// engine's whole share of a proxied request's member choice. Budget
// (docs/performance.md): ≤ 100 ns and 0 allocations at 8 members, ≤ 2 µs at
// 1024 members.
//
//	go test -run '^$' -bench . -benchmem ./balancer/

var benchSizes = []int{2, 8, 64, 1024}

// benchLayout builds the members of a benchmark balancer.
//
//   - flat: n regular members in lbset 0, loadfactors 1…4.
//   - sticky: flat, each member with route rN, and the request carries a
//     ROUTEID cookie naming the member in the middle (a cookie hit: the
//     chooser does not run, but findRouteWorker and the sticky lbstatus
//     update walk the members).
//   - tiers: lbsets, hot spares and standbys in play: members cycle through
//     "lbset 0, disabled", "lbset 0, hot spare", "lbset 0, hot standby",
//     "lbset 1"; every disabled member admits one spare, so the spares win
//     and every member is examined.
func benchLayout(layout string, n int) []MemberConfig {
	ms := make([]MemberConfig, n)
	for i := range ms {
		ms[i] = MemberConfig{URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250+1), LoadFactor: 100 * (1 + i%4)}
		switch layout {
		case "sticky":
			ms[i].Route = fmt.Sprintf("r%d", i)
		case "tiers":
			switch i % 4 {
			case 0:
				ms[i].Status = Disabled
			case 1:
				ms[i].Status = HotSpare
			case 2:
				ms[i].Status = HotStandby
			case 3:
				ms[i].LBSet = 1
			}
		}
	}
	return ms
}

func benchBalancer(b *testing.B, method, layout string, n int) (*Balancer, *Request) {
	b.Helper()
	cfg := Config{Name: "bench", LBMethod: method, ForceRecovery: true, Members: benchLayout(layout, n)}
	var req *Request
	if layout == "sticky" {
		cfg.StickySession, cfg.StickyPath, cfg.StickySeparator = "ROUTEID", "ROUTEID", '.'
		req = &Request{
			URL:    "balancer://bench/app/index.html?lang=en",
			Cookie: fmt.Sprintf("lang=en; ROUTEID=.r%d; theme=dark", n/2),
		}
	}
	bal, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if method == "bytraffic" {
		// Members that have moved data: bytraffic divides real counts.
		for i, m := range bal.Members() {
			m.AddTraffic(int64(i)*1_000_003+12_345, int64(i)*7_000_001+999_999)
		}
	}
	return bal, req
}

// BenchmarkPick is one selection per iteration, per lbmethod, member count and
// layout.
func BenchmarkPick(b *testing.B) {
	ctx := context.Background()
	for _, layout := range []string{"flat", "sticky", "tiers"} {
		for _, method := range []string{"byrequests", "bybusyness", "bytraffic"} {
			for _, n := range benchSizes {
				b.Run(fmt.Sprintf("%s/%s/n=%d", layout, method, n), func(b *testing.B) {
					bal, req := benchBalancer(b, method, layout, n)
					b.ReportAllocs()
					cpu := benchutil.StartCPU(b)
					for i := 0; i < b.N; i++ {
						p, err := bal.Pick(ctx, req)
						if err != nil {
							b.Fatal(err)
						}
						p.Member.Release()
					}
					cpu.Stop(b)
				})
			}
		}
	}
}

// BenchmarkPickParallel is BenchmarkPick/flat with every P selecting at once:
// the cost of the balancer's one lock under contention (GOMAXPROCS goroutines).
func BenchmarkPickParallel(b *testing.B) {
	ctx := context.Background()
	for _, method := range []string{"byrequests", "bybusyness"} {
		for _, n := range []int{8, 64} {
			b.Run(fmt.Sprintf("%s/n=%d", method, n), func(b *testing.B) {
				bal, _ := benchBalancer(b, method, "flat", n)
				b.ReportAllocs()
				cpu := benchutil.StartCPU(b)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p, err := bal.Pick(ctx, nil)
						if err != nil {
							b.Error(err)
							return
						}
						p.Member.Release()
					}
				})
				cpu.Stop(b)
			})
		}
	}
}

// BenchmarkSessionRoute is the sticky lookup alone: the session value in the
// URL, then in the Cookie header, cut at the separator.
func BenchmarkSessionRoute(b *testing.B) {
	bal, req := benchBalancer(b, "byrequests", "sticky", 8)
	b.ReportAllocs()
	cpu := benchutil.StartCPU(b)
	for i := 0; i < b.N; i++ {
		if _, _, ok := bal.sessionRoute(req); !ok {
			b.Fatal("no route")
		}
	}
	cpu.Stop(b)
}

// TestBenchLayouts checks that the benchmark layouts select what they are
// meant to: a spare in "tiers", the cookie's member in "sticky".
func TestBenchLayouts(t *testing.T) {
	for _, n := range benchSizes {
		b, err := New(Config{Name: "t", LBMethod: "byrequests", ForceRecovery: true, Members: benchLayout("tiers", n)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := b.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.State().Status&HotSpare == 0 {
			t.Errorf("tiers n=%d: picked %s, want a hot spare", n, p.Member.Name())
		}
		b, err = New(Config{Name: "t", StickySession: "ROUTEID", StickyPath: "ROUTEID", StickySeparator: '.',
			ForceRecovery: true, Members: benchLayout("sticky", n)})
		if err != nil {
			t.Fatal(err)
		}
		req := &Request{URL: "balancer://t/", Cookie: fmt.Sprintf("ROUTEID=.r%d", n/2)}
		p, err = b.Pick(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("r%d", n/2); p.WorkerRoute != want || p.RouteChanged {
			t.Errorf("sticky n=%d: route %q changed %v, want %q unchanged", n, p.WorkerRoute, p.RouteChanged, want)
		}
	}
}
