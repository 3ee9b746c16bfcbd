// Package fleet shares the operator's intent for balancers across a fleet of
// Caddy nodes: a drain, a disabled member, a changed loadfactor or a member
// added on one node applies on every node. What each node observes (E and
// its retry timer, C from its own health checks, busy, elected, lbstatus,
// byte counts) stays local, as httpd keeps it per host; selection never
// waits on the network.
//
// Each run-time change made through the manager or the JSON API becomes one
// Record per field, stamped with a hybrid logical clock and this node's ID,
// and is written to the shared store (Redis, or Caddy's storage polled).
// The newest record of each field wins on every node alike. A record made
// under another configuration of its member or balancer (a fingerprint)
// does not apply: a deploy wins over an older change. With the store out of
// reach, every node serves on with what it has, changes made meanwhile apply
// locally and are written when the store is back, unless a newer write won.
package fleet

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Events emitted when the store is lost and regained.
const (
	// StoreLostEvent: the store stopped answering (data: store, node, error).
	StoreLostEvent = "balancer_fleet_store_lost"
	// StoreRegainedEvent: the store answers again (data: store, node,
	// pending: the local changes it is now given).
	StoreRegainedEvent = "balancer_fleet_store_regained"
)

// writeTimeout bounds a write made for a run-time change: the change's
// answer says whether it was shared, so it must not wait long.
const writeTimeout = 2 * time.Second

// Node is this Caddy's membership in a fleet.
type Node struct {
	id    string
	cfg   Config
	store Store
	clock clock

	out atomic[output]

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	known     map[Key]Record                // the newest record of each field seen
	pending   map[Key]Record                // local records the store has not taken
	bals      map[string]*balancer.Balancer // balancers taking part
	connected bool
	lastErr   string
	lastSync  time.Time
}

// output is where the node logs and emits events: the config load in force.
type output struct {
	logger *zap.Logger
	emit   func(event string, data map[string]any)
}

// New starts a node of the fleet described by cfg. id is the node's ID
// (cfg.Node if set); st is Caddy's storage, needed for the storage store.
func New(cfg Config, id string, st Storage) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Node != "" {
		id = cfg.Node
	}
	if id == "" {
		return nil, errors.New("fleet: the node has no ID")
	}
	n := &Node{
		id: id, cfg: cfg, clock: clock{now: time.Now},
		known: map[Key]Record{}, pending: map[Key]Record{}, bals: map[string]*balancer.Balancer{},
		done: make(chan struct{}),
	}
	switch {
	case cfg.Redis != nil:
		n.store = newRedisStore(cfg.Redis, cfg.prefix())
	default:
		if st == nil {
			return nil, errors.New("fleet: storage: no storage is configured")
		}
		n.store = newStorageStore(st, cfg.Storage, cfg.prefix(), id)
	}
	n.out.Store(&output{logger: zap.NewNop()})
	ctx, cancel := context.WithCancel(context.Background())
	n.ctx, n.cancel = ctx, cancel
	go n.run(ctx)
	return n, nil
}

// ID is the node's ID.
func (n *Node) ID() string { return n.id }

// SetOutput sets where the node logs and emits events.
func (n *Node) SetOutput(logger *zap.Logger, emit func(event string, data map[string]any)) {
	n.out.Store(&output{logger: logger, emit: emit})
}

func (n *Node) logger() *zap.Logger { return n.out.Load().logger }

func (n *Node) emit(event string, data map[string]any) {
	if o := n.out.Load(); o.emit != nil {
		o.emit(event, data)
	}
}

// Takes reports whether the balancer takes part in the fleet.
func (n *Node) Takes(name string) bool {
	if len(n.cfg.Balancers) == 0 {
		return true
	}
	for _, b := range n.cfg.Balancers {
		if b == name {
			return true
		}
	}
	return false
}

// Attach makes the balancer take part: the fleet's records for it are
// applied now (those the node knows, then those the store holds), and its
// run-time changes are shared from now on (through Changed).
func (n *Node) Attach(b *balancer.Balancer) {
	n.mu.Lock()
	n.bals[b.Name()] = b
	var rs []Record
	for k, r := range n.known {
		if k.Balancer == b.Name() {
			rs = append(rs, r)
		}
	}
	n.mu.Unlock()
	n.apply(b, rs)
	n.updateDurability()
	go func() {
		n.report(n.ctx) // the fleet knows this node has the balancer at once
		n.readBalancers([]string{b.Name()})
		n.flush()
	}()
}

// Detach ends the balancer's part in the fleet.
func (n *Node) Detach(b *balancer.Balancer) {
	n.mu.Lock()
	if n.bals[b.Name()] == b {
		delete(n.bals, b.Name())
	}
	n.mu.Unlock()
	b.UpdateDurability(func(d *balancer.Durability) { d.Fleet = nil })
}

// Changed shares a run-time change of an attached balancer made on this
// node (the manager, the JSON API). Changes from the fleet itself and from
// restored state are not shared again. It returns once the store took the
// change or the write failed; a failed write is kept and retried.
func (n *Node) Changed(b *balancer.Balancer, e balancer.Edit, reason string) {
	if reason != balancer.ReasonManager && reason != balancer.ReasonAPI {
		return
	}
	n.mu.Lock()
	attached := n.bals[b.Name()] == b
	n.mu.Unlock()
	if !attached {
		return
	}
	v := b.View()
	member := func(name string) (balancer.MemberConfig, bool) {
		for _, m := range v.Members {
			if m.Name == name {
				return m.Config, true
			}
		}
		return balancer.MemberConfig{}, false
	}
	rs := records(b.Name(), e, b.Config(), member)
	if len(rs) == 0 {
		return
	}
	n.mu.Lock()
	for i := range rs {
		rs[i].Stamp, rs[i].Node = n.clock.Now(), n.id
		n.known[rs[i].Key()] = rs[i]
		n.pending[rs[i].Key()] = rs[i]
	}
	n.mu.Unlock()
	n.flush()
}

// flush writes the pending records to the store.
func (n *Node) flush() {
	n.mu.Lock()
	rs := make([]Record, 0, len(n.pending))
	for _, r := range n.pending {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	if len(rs) == 0 {
		n.updateDurability()
		return
	}
	sortRecords(rs)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err := n.store.Write(ctx, rs)
	cancel()
	n.mu.Lock()
	if err == nil {
		for _, r := range rs {
			if p, ok := n.pending[r.Key()]; ok && !p.Newer(r) {
				delete(n.pending, r.Key())
			}
		}
	}
	n.mu.Unlock()
	n.setState(err)
}

// run watches the store until the node is closed.
func (n *Node) run(ctx context.Context) {
	defer close(n.done)
	go func() {
		t := time.NewTicker(n.cfg.resync())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.resync()
			}
		}
	}()
	go func() {
		t := time.NewTicker(ReportInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.report(ctx)
			}
		}
	}()
	n.store.Watch(ctx, n.received, n.resync, n.setState)
}

// resync reads everything the store holds for the attached balancers, then
// writes what is pending and what the store lacks: a store that lost its
// data (a Redis without persistence that restarted) gets the fleet's state
// back from the nodes, each of which holds all of it.
func (n *Node) resync() {
	n.mu.Lock()
	names := make([]string, 0, len(n.bals))
	for name := range n.bals {
		names = append(names, name)
	}
	n.mu.Unlock()
	sort.Strings(names)
	n.readBalancers(names)
	n.flush()
}

func (n *Node) readBalancers(names []string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	rs, err := n.store.Read(ctx, names)
	cancel()
	if err != nil {
		n.setState(err)
		return
	}
	n.setState(nil)
	n.received(rs)
	// What the store lacks, or holds older, is written again.
	stored := make(map[Key]Record, len(rs))
	for _, r := range rs {
		if cur, ok := stored[r.Key()]; !ok || r.Newer(cur) {
			stored[r.Key()] = r
		}
	}
	want := make(map[string]bool, len(names))
	for _, name := range names {
		want[name] = true
	}
	n.mu.Lock()
	for k, r := range n.known {
		if s, ok := stored[k]; want[k.Balancer] && (!ok || r.Newer(s)) {
			n.pending[k] = r
		}
	}
	n.mu.Unlock()
}

// received merges records from the store and applies the newer ones.
func (n *Node) received(rs []Record) {
	byBal := map[string][]Record{}
	n.mu.Lock()
	for _, r := range rs {
		n.clock.Observe(r.Stamp)
		if cur, ok := n.known[r.Key()]; ok && !r.Newer(cur) {
			continue
		}
		n.known[r.Key()] = r
		if p, ok := n.pending[r.Key()]; ok && r.Newer(p) {
			delete(n.pending, r.Key()) // a newer write won
		}
		if n.bals[r.Balancer] != nil {
			byBal[r.Balancer] = append(byBal[r.Balancer], r)
		}
	}
	bals := make(map[string]*balancer.Balancer, len(byBal))
	for name := range byBal {
		bals[name] = n.bals[name]
	}
	n.mu.Unlock()
	for name, rs := range byBal {
		n.apply(bals[name], rs)
	}
}

// apply applies records to a balancer, each checked as a run-time change
// is; a record that does not pass is logged and skipped whole.
func (n *Node) apply(b *balancer.Balancer, rs []Record) {
	sortRecords(rs)
	for _, r := range rs {
		v := b.View()
		e, err := r.edit(v, b.Config())
		switch {
		case errors.Is(err, errStale):
			n.logger().Debug("fleet: record ignored: written under another configuration",
				zap.String("balancer", r.Balancer), zap.String("member", r.Member), zap.String("field", r.Field))
			continue
		case err != nil:
			n.logger().Warn("fleet: invalid record ignored", zap.String("balancer", r.Balancer),
				zap.String("member", r.Member), zap.String("field", r.Field), zap.String("node", r.Node), zap.Error(err))
			continue
		}
		e = unchanged(e, v)
		if e.Empty() {
			continue
		}
		if _, err := b.Apply(e, balancer.ReasonFleet); err != nil {
			n.logger().Warn("fleet: change from another node not applied", zap.String("balancer", r.Balancer),
				zap.String("member", r.Member), zap.String("field", r.Field), zap.String("node", r.Node), zap.Error(err))
		}
	}
}

// unchanged drops from e what v shows already: a record applied again (a
// resync, a reload) changes nothing, and in particular does not rerun the
// loadfactor's recalculation of lbstatus.
func unchanged(e balancer.Edit, v balancer.View) balancer.Edit {
	if e.LBMethod != nil && *e.LBMethod == v.LBMethod {
		e.LBMethod = nil
	}
	if s := e.StickySession; s != nil && s.Cookie == v.StickySession && s.Path == v.StickyPath {
		e.StickySession = nil
	}
	if e.Timeout != nil && *e.Timeout == v.Timeout {
		e.Timeout = nil
	}
	if e.MaxAttempts != nil && *e.MaxAttempts == v.MaxAttempts {
		e.MaxAttempts = nil
	}
	if e.NoFailover != nil && *e.NoFailover == v.NoFailover {
		e.NoFailover = nil
	}
	if e.ForceRecovery != nil && *e.ForceRecovery == v.ForceRecovery {
		e.ForceRecovery = nil
	}
	var mes []balancer.MemberEdit
	for _, me := range e.Members {
		for _, m := range v.Members {
			if m.Name != me.Name {
				continue
			}
			if me.LoadFactor != nil && *me.LoadFactor == m.LoadFactor {
				me.LoadFactor = nil
			}
			if me.LBSet != nil && *me.LBSet == m.LBSet {
				me.LBSet = nil
			}
			if me.Route != nil && *me.Route == m.Route {
				me.Route = nil
			}
			if me.Redirect != nil && *me.Redirect == m.Redirect {
				me.Redirect = nil
			}
			if me.HealthCheck != nil && *me.HealthCheck == m.HC {
				me.HealthCheck = nil
			}
			me.Set &^= m.Status
			me.Clear &= m.Status
		}
		if me.LoadFactor != nil || me.LBSet != nil || me.Route != nil || me.Redirect != nil ||
			me.HealthCheck != nil || me.Set != 0 || me.Clear != 0 {
			mes = append(mes, me)
		}
	}
	e.Members = mes
	return e
}

// setState records whether the store answered, and reports a lost or
// regained store.
func (n *Node) setState(err error) {
	n.mu.Lock()
	was := n.connected
	n.connected = err == nil
	if err == nil {
		n.lastErr, n.lastSync = "", time.Now()
	} else {
		n.lastErr = err.Error()
	}
	pending := len(n.pending)
	n.mu.Unlock()
	switch {
	case was && err != nil:
		n.logger().Warn("fleet: store lost; serving with the state this node has", zap.String("store", n.store.Name()),
			zap.String("node", n.id), zap.Error(err))
		n.emit(StoreLostEvent, map[string]any{"store": n.store.Name(), "node": n.id, "error": err.Error()})
	case !was && err == nil:
		n.logger().Info("fleet: store reachable", zap.String("store", n.store.Name()), zap.String("node", n.id),
			zap.Int("pending", pending))
		n.emit(StoreRegainedEvent, map[string]any{"store": n.store.Name(), "node": n.id, "pending": pending})
	}
	n.updateDurability()
}

// updateDurability shows the sync's state on every attached balancer.
func (n *Node) updateDurability() {
	n.mu.Lock()
	type state struct {
		b       *balancer.Balancer
		pending int
	}
	var ss []state
	for name, b := range n.bals {
		p := 0
		for k := range n.pending {
			if k.Balancer == name {
				p++
			}
		}
		ss = append(ss, state{b, p})
	}
	fs := balancer.FleetState{Store: n.store.Name(), Node: n.id, Connected: n.connected, LastSync: n.lastSync}
	if !n.connected {
		fs.LastError = n.lastErr
	}
	n.mu.Unlock()
	for _, s := range ss {
		f := fs
		f.Pending = s.pending
		s.b.UpdateDurability(func(d *balancer.Durability) { d.Fleet = &f })
	}
}

// NodeReport is a node's report to the fleet: which members drain there and
// their requests in flight, so that a drain started on one node can wait for
// every node. Each node writes its report every ReportInterval.
type NodeReport struct {
	// Node is the reporting node's ID.
	Node string `json:"node"`
	// Time is when the report was written (Unix milliseconds).
	Time int64 `json:"t"`
	// Draining maps balancer and member names to the requests in flight of
	// the members with N on that node.
	Draining map[string]map[string]int64 `json:"draining"`
}

// ReportInterval is how often a node writes its report; a report older
// than StaleAfter is a node gone (or a clock far off).
const (
	ReportInterval = 500 * time.Millisecond
	StaleAfter     = 5 * time.Second
)

// PeerDrain is another node's part of a drain.
type PeerDrain struct {
	// Node is the node's ID.
	Node string
	// Draining: the member has N on that node (the drain has reached it).
	Draining bool
	// InFlight is the member's requests in flight there.
	InFlight int64
	// Stale: the node's last report is older than StaleAfter; it is likely
	// gone, and does not hold the drain up.
	Stale bool
	// Seen is when its last report was written.
	Seen time.Time
}

// Peers returns the other nodes' part in the drain of a member, from their
// latest reports.
func (n *Node) Peers(ctx context.Context, bal, member string) ([]PeerDrain, error) {
	rs, err := n.store.Reports(ctx)
	if err != nil {
		return nil, err
	}
	var out []PeerDrain
	now := time.Now()
	for _, r := range rs {
		if r.Node == n.id {
			continue
		}
		in, ok := r.Draining[bal][member]
		seen := time.UnixMilli(r.Time)
		out = append(out, PeerDrain{Node: r.Node, Draining: ok, InFlight: in, Seen: seen, Stale: now.Sub(seen) > StaleAfter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// report writes this node's report.
func (n *Node) report(ctx context.Context) {
	n.mu.Lock()
	bals := make([]*balancer.Balancer, 0, len(n.bals))
	for _, b := range n.bals {
		bals = append(bals, b)
	}
	n.mu.Unlock()
	r := NodeReport{Node: n.id, Time: time.Now().UnixMilli(), Draining: map[string]map[string]int64{}}
	for _, b := range bals {
		for _, m := range b.States() {
			if m.Status.Has(balancer.Drain) {
				if r.Draining[b.Name()] == nil {
					r.Draining[b.Name()] = map[string]int64{}
				}
				r.Draining[b.Name()][m.Name] = m.Busy
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_ = n.store.Report(ctx, r) // a lost store shows in the state of the next write
}

// Close stops the node and closes the store.
func (n *Node) Close() error {
	n.cancel()
	<-n.done
	return n.store.Close()
}

// atomic is a typed atomic pointer.
type atomic[T any] struct {
	mu sync.Mutex
	v  *T
}

func (a *atomic[T]) Store(v *T) { a.mu.Lock(); a.v = v; a.mu.Unlock() }

func (a *atomic[T]) Load() *T { a.mu.Lock(); defer a.mu.Unlock(); return a.v }
