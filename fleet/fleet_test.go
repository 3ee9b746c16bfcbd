package fleet

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/internal/redistest"
)

// Tests of the fleet sync with a real redis-server and real engine
// balancers: several nodes in one process, each with its own copy of the
// balancer, as several Caddy processes would have. The end-to-end tests with
// Caddy processes are in the root package (fleet_test.go).

var webMembers = []balancer.MemberConfig{
	{URL: "http://10.0.0.1:8080", Route: "r1"},
	{URL: "http://10.0.0.2:8080", Route: "r2"},
	{URL: "http://10.0.0.3:8080", Route: "r3"},
}

func webConfig() balancer.Config {
	return balancer.Config{Name: "web", Growth: 2, ForceRecovery: true, Members: webMembers}
}

type testNode struct {
	n *Node
	b *balancer.Balancer
}

// startNode starts node id of the fleet and attaches a balancer built from
// bcfg, wired as the plugin wires it (edits are shared).
func startNode(t *testing.T, cfg Config, id string, st Storage, bcfg balancer.Config) testNode {
	t.Helper()
	n, err := New(cfg, id, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	b, err := balancer.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	b.SetOnEdit(func(b *balancer.Balancer, e balancer.Edit, reason string) { n.Changed(b, e, reason) })
	n.Attach(b)
	return testNode{n, b}
}

func redisFleet(s *redistest.Server) Config {
	return Config{Redis: &RedisConfig{Addresses: []string{s.Addr}, Timeout: 500_000_000}, KeyPrefix: "t"}
}

func ptr[T any](v T) *T { return &v }

// await polls cond until it holds or the deadline passes.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func member(b *balancer.Balancer, route string) balancer.MemberState {
	for _, s := range b.States() {
		if s.Route == route {
			return s
		}
	}
	return balancer.MemberState{}
}

func apply(t *testing.T, b *balancer.Balancer, e balancer.Edit) {
	t.Helper()
	if _, err := b.Apply(e, balancer.ReasonAPI); err != nil {
		t.Fatal(err)
	}
}

func drain(route string, on bool) balancer.MemberEdit {
	me := balancer.MemberEdit{Name: "http://10.0.0." + route[1:] + ":8080"}
	if on {
		me.Set = balancer.Drain
	} else {
		me.Clear = balancer.Drain
	}
	return me
}

// A change on one node reaches the others: flags, parameters, balancer
// parameters, members added and removed at run time.
func TestPropagation(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	a, b, c := startNode(t, cfg, "a", nil, webConfig()), startNode(t, cfg, "b", nil, webConfig()), startNode(t, cfg, "c", nil, webConfig())
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r1", true),
		{Name: "http://10.0.0.2:8080", LoadFactor: ptr(300), Set: balancer.Disabled}}})
	apply(t, b.b, balancer.Edit{LBMethod: ptr("bybusyness"), Timeout: ptr(3 * time.Second)})
	apply(t, c.b, balancer.Edit{Add: []balancer.MemberConfig{{URL: "http://10.0.0.9:8080", Route: "r9", Status: balancer.Disabled}}})
	for _, n := range []testNode{a, b, c} {
		await(t, "every change on node "+n.n.ID(), func() bool {
			v := n.b.View()
			return member(n.b, "r1").Status.Has(balancer.Drain) && member(n.b, "r2").LoadFactor == 300 &&
				member(n.b, "r2").Status.Has(balancer.Disabled) && v.LBMethod == "bybusyness" && v.Timeout == 3*time.Second &&
				len(v.Members) == 4 && member(n.b, "r9").Dynamic && member(n.b, "r9").Status.Has(balancer.Disabled)
		})
	}
	// Enable the added member on b, then remove it on a.
	apply(t, b.b, balancer.Edit{Members: []balancer.MemberEdit{{Name: "http://10.0.0.9:8080", Clear: balancer.Disabled}}})
	await(t, "r9 enabled on c", func() bool { s := member(c.b, "r9"); return s.Name != "" && !s.Status.Has(balancer.Disabled) })
	apply(t, a.b, balancer.Edit{Remove: []string{"http://10.0.0.9:8080"}})
	for _, n := range []testNode{a, b, c} {
		await(t, "r9 removed on "+n.n.ID(), func() bool { return len(n.b.View().Members) == 3 })
	}
	// Local observations stay local: an error on a is not an error on b.
	a.b.Members()[2].ConnectFailed()
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r1", false)}})
	await(t, "r1 undrained on b", func() bool { return !member(b.b, "r1").Status.Has(balancer.Drain) })
	if member(b.b, "r3").Status.Has(balancer.InError) {
		t.Error("a's connection failure to r3 put r3 in error on b")
	}
}

// Concurrent writes of the same field on two nodes end with the same value
// on every node.
func TestConcurrentWritesConverge(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	nodes := []testNode{startNode(t, cfg, "a", nil, webConfig()), startNode(t, cfg, "b", nil, webConfig()),
		startNode(t, cfg, "c", nil, webConfig())}
	var wg sync.WaitGroup
	for i, n := range nodes[:2] {
		wg.Add(1)
		go func(i int, n testNode) {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				lf := 100 + 100*((k+i)%10)
				_, _ = n.b.Apply(balancer.Edit{Members: []balancer.MemberEdit{{Name: "http://10.0.0.1:8080", LoadFactor: &lf},
					drain("r2", (k+i)%2 == 0)}}, balancer.ReasonAPI)
			}
		}(i, n)
	}
	wg.Wait()
	same := func() bool {
		first := member(nodes[0].b, "r1").LoadFactor
		drained := member(nodes[0].b, "r2").Status.Has(balancer.Drain)
		for _, n := range nodes[1:] {
			if member(n.b, "r1").LoadFactor != first || member(n.b, "r2").Status.Has(balancer.Drain) != drained {
				return false
			}
		}
		return true
	}
	await(t, "the same loadfactor and drain on a, b and c", same)
}

// With the store out of reach, each node applies its own changes and serves
// on; when it is back (empty: it lost its data), the changes made meanwhile
// are shared, the newest write of each field winning, and the state the
// nodes had before is written back.
func TestStoreLostAndRegained(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	a, b := startNode(t, cfg, "a", nil, webConfig()), startNode(t, cfg, "b", nil, webConfig())
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{{Name: "http://10.0.0.3:8080", LBSet: ptr(5)}}})
	await(t, "lbset 5 on b", func() bool { return member(b.b, "r3").LBSet == 5 })

	s.Kill()
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r1", true)}})
	await(t, "a sees the store lost", func() bool { f := a.b.Durability().Fleet; return f != nil && !f.Connected })
	if f := a.b.Durability().Fleet; f.Pending == 0 || len(a.b.Durability().Warnings()) == 0 {
		t.Errorf("a's change while the store is lost: %+v, warnings %q", f, a.b.Durability().Warnings())
	}
	time.Sleep(2 * time.Millisecond) // b's write is the later one on a wall clock in milliseconds
	apply(t, b.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r1", false), {Name: "http://10.0.0.2:8080", LBSet: ptr(7)}}})
	if !member(a.b, "r1").Status.Has(balancer.Drain) || member(b.b, "r1").Status.Has(balancer.Drain) {
		t.Fatal("a change made while the store is lost did not apply locally")
	}

	s.Restart()
	for _, n := range []testNode{a, b} {
		await(t, "converged on "+n.n.ID(), func() bool {
			return !member(n.b, "r1").Status.Has(balancer.Drain) && member(n.b, "r2").LBSet == 7 && member(n.b, "r3").LBSet == 5
		})
		await(t, "nothing pending on "+n.n.ID(), func() bool {
			f := n.b.Durability().Fleet
			return f != nil && f.Connected && f.Pending == 0
		})
	}
	// A node that joins now gets the whole state from the store.
	c := startNode(t, cfg, "c", nil, webConfig())
	await(t, "the state on a late node", func() bool {
		return !member(c.b, "r1").Status.Has(balancer.Drain) && member(c.b, "r2").LBSet == 7 && member(c.b, "r3").LBSet == 5
	})
}

// A record written under another configuration of its member does not
// apply: the node whose configuration differs keeps its configuration.
func TestConfigurationDrift(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	changed := webConfig()
	changed.Members = append([]balancer.MemberConfig(nil), webMembers...)
	changed.Members[0].LBSet = 1 // r1 deployed with another lbset
	a, b := startNode(t, cfg, "a", nil, webConfig()), startNode(t, cfg, "b", nil, changed)
	c := startNode(t, cfg, "c", nil, webConfig())
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{{Name: "http://10.0.0.1:8080", LoadFactor: ptr(500)},
		{Name: "http://10.0.0.2:8080", LoadFactor: ptr(200)}}})
	await(t, "the change on c", func() bool { return member(c.b, "r1").LoadFactor == 500 && member(c.b, "r2").LoadFactor == 200 })
	await(t, "r2's change on b", func() bool { return member(b.b, "r2").LoadFactor == 200 })
	if lf := member(b.b, "r1").LoadFactor; lf != 100 {
		t.Errorf("b (r1 configured differently) took a's change of r1: loadfactor %d", lf)
	}
}

// What the store holds is input: a record that does not parse, holds a
// value out of range or names a flag that is not shared is skipped whole;
// the good ones apply.
func TestInvalidRecordsIgnored(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	a := startNode(t, cfg, "a", nil, webConfig())
	fp := Fingerprint(webMembers[0])
	rec := func(field, value string, stamp int64) string {
		r := Record{Balancer: "web", Member: "http://10.0.0.1:8080", Field: field, Value: json.RawMessage(value),
			Config: fp, Stamp: Stamp{Wall: stamp}, Node: "evil"}
		v, _ := encode(r)
		return v
	}
	client := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer client.Close()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for field, v := range map[string]string{
		"http://10.0.0.1:8080|lbset":      rec("lbset", "100", now),           // out of range
		"http://10.0.0.1:8080|flag:E":     rec("flag:E", "true", now),         // E is each node's own
		"http://10.0.0.1:8080|loadfactor": rec("loadfactor", `"many"`, now),   // not a number
		"junk":                            "not a record",                     // not a record at all
		"http://10.0.0.1:8080|route":      rec("route", `"fleet-route"`, now), // good
	} {
		if err := client.HSet(ctx, "t:balancer:web", field, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Publish(ctx, "t:changes", rec("lbset", "-3", now)).Err(); err != nil {
		t.Fatal(err)
	}
	a.n.resync()
	st := member(a.b, "fleet-route")
	if st.Name == "" {
		t.Fatal("the good record was not applied")
	}
	if st.LBSet != 0 || st.Status.Has(balancer.InError) || st.LoadFactor != 100 {
		t.Errorf("an invalid record was applied: %+v (%s)", st, st.Status.Letters())
	}
}

// The storage fallback: the same propagation through node files on a shared
// directory, polled.
func TestStorageFallback(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Storage: &StorageConfig{PollInterval: 50_000_000}, KeyPrefix: "t"}
	st := func() Storage { return &certmagic.FileStorage{Path: dir} }
	a, b := startNode(t, cfg, "a", st(), webConfig()), startNode(t, cfg, "b", st(), webConfig())
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r2", true)}, LBMethod: ptr("bytraffic")})
	await(t, "the change on b", func() bool { return member(b.b, "r2").Status.Has(balancer.Drain) && b.b.View().LBMethod == "bytraffic" })
	apply(t, b.b, balancer.Edit{Add: []balancer.MemberConfig{{URL: "http://10.0.0.7:8080", Route: "r7"}}})
	await(t, "b's added member on a", func() bool { return member(a.b, "r7").Dynamic })
	c := startNode(t, cfg, "c", st(), webConfig())
	await(t, "the state on a late node", func() bool {
		return member(c.b, "r2").Status.Has(balancer.Drain) && member(c.b, "r7").Dynamic
	})
}

// BenchmarkPropagation measures the time from a change applied on node a to
// the same change applied on nodes b and c, through Redis on loopback and
// through the storage fallback on a local directory (polled every 100ms),
// and reports the median and the 99th percentile.
func BenchmarkPropagation(bm *testing.B) {
	bm.Run("redis", func(bm *testing.B) {
		s := redistest.Start(bm)
		benchPropagation(bm, redisFleet(s), func() Storage { return nil })
	})
	bm.Run("storage", func(bm *testing.B) {
		dir := bm.TempDir()
		cfg := Config{Storage: &StorageConfig{PollInterval: 100_000_000}, KeyPrefix: "t"}
		benchPropagation(bm, cfg, func() Storage { return &certmagic.FileStorage{Path: dir} })
	})
}

func benchPropagation(bm *testing.B, cfg Config, st func() Storage) {
	nodes := make([]testNode, 3)
	arrived := make(chan time.Time, 16)
	for i, id := range []string{"a", "b", "c"} {
		n, err := New(cfg, id, st())
		if err != nil {
			bm.Fatal(err)
		}
		defer n.Close()
		b, _ := balancer.New(webConfig())
		nn := n
		b.SetOnEdit(func(b *balancer.Balancer, e balancer.Edit, reason string) {
			if reason == balancer.ReasonFleet {
				arrived <- time.Now()
			}
			nn.Changed(b, e, reason)
		})
		n.Attach(b)
		nodes[i] = testNode{n, b}
	}
	var lat []time.Duration
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		lf := 200 + 100*(i%2) // a new value each time: the configured 100 would change nothing
		start := time.Now()
		if _, err := nodes[0].b.Apply(balancer.Edit{Members: []balancer.MemberEdit{{Name: "http://10.0.0.1:8080", LoadFactor: &lf}}}, balancer.ReasonAPI); err != nil {
			bm.Fatal(err)
		}
		for k := 0; k < 2; k++ {
			select {
			case at := <-arrived:
				lat = append(lat, at.Sub(start))
			case <-time.After(5 * time.Second):
				bm.Fatalf("change %d did not arrive", i)
			}
		}
	}
	bm.StopTimer()
	sortDurations(lat)
	bm.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	bm.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

// Each node reports the members draining there and their requests in
// flight: a drain started on one node can wait for the others.
func TestPeersReportDrain(t *testing.T) {
	s := redistest.Start(t)
	cfg := redisFleet(s)
	a, b := startNode(t, cfg, "a", nil, webConfig()), startNode(t, cfg, "b", nil, webConfig())
	peer := func() PeerDrain {
		ps, err := a.n.Peers(context.Background(), "web", "http://10.0.0.1:8080")
		if err != nil || len(ps) != 1 {
			t.Fatalf("peers: %v %+v", err, ps)
		}
		return ps[0]
	}
	await(t, "b's first report", func() bool {
		ps, _ := a.n.Peers(context.Background(), "web", "http://10.0.0.1:8080")
		return len(ps) == 1
	})
	if p := peer(); p.Node != "b" || p.Draining || p.Stale {
		t.Fatalf("before the drain: %+v", p)
	}
	// A request in flight to r1 on b, then a drain started on a.
	pick, err := b.b.Pick(context.Background(), &balancer.Request{Cookie: "x"})
	for err == nil && pick.Member.Route() != "r1" {
		pick.Member.Release()
		pick, err = b.b.Pick(context.Background(), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	apply(t, a.b, balancer.Edit{Members: []balancer.MemberEdit{drain("r1", true)}})
	await(t, "b reports r1 draining with one request in flight", func() bool { p := peer(); return p.Draining && p.InFlight == 1 })
	pick.Member.Release()
	await(t, "b reports r1 drained", func() bool { p := peer(); return p.Draining && p.InFlight == 0 })
}
