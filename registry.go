package caddybalancer

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/fleet"
	"github.com/lbset/caddy-balancer/hcheck"
	"github.com/lbset/caddy-balancer/live"
)

// balancers holds every balancer by name in a UsagePool, so that a balancer
// and its run-time state survive a config reload: the new config takes a
// reference before the old one lets go of its own. It is the only state the
// plugin keeps outside a config load; everything a balancer owns hangs off
// its registryEntry and is freed by Destruct.
var balancers = caddy.NewUsagePool()

// fleets holds the fleet nodes (fleet sync) by configuration, so that a
// reload with the same fleet settings keeps the node and its connection.
var fleets = caddy.NewUsagePool()

// fleetEntry is one fleet node in the pool.
type fleetEntry struct {
	key  string
	node *fleet.Node
}

// acquireFleet returns the fleet node of cfg, starting it if no config load
// uses it yet. Placeholders ({env.REDIS_PASSWORD}) are replaced first.
func acquireFleet(ctx caddy.Context, cfg fleet.Config) (*fleetEntry, error) {
	repl := caddy.NewReplacer()
	if r := cfg.Redis; r != nil {
		rc := *r
		rc.Addresses = append([]string(nil), r.Addresses...)
		for i, a := range rc.Addresses {
			rc.Addresses[i] = repl.ReplaceKnown(a, "")
		}
		rc.Username, rc.Password = repl.ReplaceKnown(r.Username, ""), repl.ReplaceKnown(r.Password, "")
		rc.SentinelPassword = repl.ReplaceKnown(r.SentinelPassword, "")
		cfg.Redis = &rc
	}
	cfg.Node = repl.ReplaceKnown(cfg.Node, "")
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := cfg.Node
	if id == "" {
		uuid, err := caddy.InstanceID()
		if err != nil {
			return nil, fmt.Errorf("fleet: this node's ID: %v", err)
		}
		id = uuid.String()
	}
	js, _ := json.Marshal(struct {
		Cfg  fleet.Config
		Node string
	}{cfg, id})
	key := string(js)
	v, _, err := fleets.LoadOrNew(key, func() (caddy.Destructor, error) {
		var st fleet.Storage
		if s := contextStorage(ctx); s != nil {
			st, _ = s.(fleet.Storage)
		}
		n, err := fleet.New(cfg, id, st)
		if err != nil {
			return nil, err
		}
		return &fleetEntry{key: key, node: n}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*fleetEntry), nil
}

func (f *fleetEntry) release() { _, _ = fleets.Delete(f.key) }

// Destruct closes the fleet node when no config load uses it.
func (f *fleetEntry) Destruct() error { return f.node.Close() }

// registryEntry is one balancer and everything it owns across reloads: the
// engine (and with its members their metrics recorders), its committed
// definition, the definitions of config loads not yet committed, its
// persistence, its health checker, the live view's sampler, and where its
// events go.
//
// A config load changes a live balancer only once Caddy has decided to run
// it: handlers stage their definition at Provision, and the load's App
// commits it (app.go). A rejected load leaves the balancer exactly as it
// was.
type registryEntry struct {
	name string
	bal  *balancer.Balancer

	mu sync.Mutex
	// committedBy is the config load whose definition is in force (nil: none
	// yet; the balancer is not listed), stopped once that load has stopped.
	committedBy *App
	stopped     bool
	// def is the committed definition; nil if the balancer was only ever
	// referred to by name.
	def *definition
	// staged holds the definitions of config loads not committed yet, and
	// waiting the load that started while another was in force: it is
	// committed when that one stops.
	staged  map[*App]*definition
	waiting *App

	checker *hcheck.Checker
	// sampler records the members' counters for the live view's charts.
	sampler *live.Sampler
	persist persister
	// fleet is the fleet node the balancer takes part in, nil if none.
	fleet *fleet.Node
}

// definition is a balancer block's configuration in one config load.
type definition struct {
	cfg     balancer.Config
	persist bool
	storage kvStorage
}

// acquire returns the registry entry of cfg.Name for the handler of app,
// creating it (not listed until committed), and stages the definition if
// the block defines the balancer. A second defining block in the same load
// must agree with the first.
func (app *App) acquire(cfg balancer.Config, def *definition) (*registryEntry, error) {
	v, _, err := balancers.LoadOrNew(cfg.Name, func() (caddy.Destructor, error) {
		b, err := balancer.New(cfg)
		if err != nil {
			return nil, err
		}
		return &registryEntry{name: cfg.Name, bal: b, staged: map[*App]*definition{}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("balancer %s: %w", cfg.Name, err)
	}
	e := v.(*registryEntry)
	if err := e.stage(app, def); err != nil {
		e.release(app)
		return nil, err
	}
	app.use(e)
	return e, nil
}

// stage records app's definition of the balancer (nil: the block only
// refers to it by name).
func (e *registryEntry) stage(app *App, def *definition) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if def == nil {
		return nil
	}
	if old, ok := e.staged[app]; ok && (!reflect.DeepEqual(old.cfg, def.cfg) || old.persist != def.persist) {
		return fmt.Errorf("balancer %s is defined twice with different members or parameters; define it once and refer to it by name", e.name)
	}
	e.staged[app] = def
	return nil
}

// definedFor reports whether the balancer has a definition once app is in
// force: app's own, or the one in force (a block that only refers to a
// balancer by name keeps it).
func (e *registryEntry) definedFor(app *App) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.def != nil || e.staged[app] != nil
}

// release drops a handler's reference; the entry is destructed with the
// last. A load that never came into force loses its definition.
func (e *registryEntry) release(app *App) {
	e.mu.Lock()
	if e.committedBy != app {
		delete(e.staged, app)
		if e.waiting == app {
			e.waiting = nil
		}
	}
	e.mu.Unlock()
	_, _ = balancers.Delete(e.name) // may call Destruct
}

// started is called when app, a config load that uses the entry, starts: it
// is committed now if no other load is in force, else when that one stops.
func (e *registryEntry) started(app *App) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.committedBy == nil || e.stopped {
		e.commitLocked(app)
		return
	}
	if e.committedBy != app {
		e.waiting = app
	}
}

// stopping is called when app stops. If app is the load in force, the load
// that started after it (if any) is committed: Caddy stops the old config
// only after it switched to the new one. If app never came into force, its
// start was rolled back: its definition is dropped.
func (e *registryEntry) stopping(app *App) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.committedBy == app && e.waiting != nil:
		next := e.waiting
		e.waiting = nil
		e.commitLocked(next)
	case e.committedBy == app:
		e.stopped = true
	default:
		delete(e.staged, app)
		if e.waiting == app {
			e.waiting = nil
		}
	}
}

// commitLocked puts app's definition (if it has one) in force: the
// balancer is reconfigured, persistence set up (and on the first commit,
// the saved state restored), the health checker started and the events of
// the balancer sent to app.
func (e *registryEntry) commitLocked(app *App) {
	first := e.committedBy == nil
	def := e.staged[app]
	delete(e.staged, app)
	e.committedBy, e.stopped = app, false
	if def != nil {
		// The balancer may have been built from a block that only refers to
		// it by name (a Caddyfile handle block before the site's balancer
		// block), or from the previous definition: apply this one. A
		// definition equal to the balancer's own changes nothing.
		if err := e.bal.Reconfigure(def.cfg); err != nil {
			// Provision checked the configuration; this cannot happen.
			app.logger.Error("balancer: reconfiguring", zap.String("balancer", e.name), zap.Error(err))
		}
		e.def = def
		e.setPersist(app, def, first)
	}
	e.bal.SetOnStatusChange(func(m *balancer.Member, old, new balancer.Status, reason string) {
		app.onStatusChange(e.name, m, old, new, reason)
	})
	e.bal.SetMemberPolicy(func(a balancer.MemberAddress) error { return runtimeMemberPolicy(e.bal, a) })
	e.bal.SetOnEdit(e.onEdit)
	e.setFleet(app)
	e.bal.SetOnDrained(func(m *balancer.Member) { app.onDrained(e.name, m) })
	if e.checker == nil {
		e.checker = hcheck.Start(e.bal, e.logger)
	}
	if e.sampler == nil {
		e.sampler = live.StartSampler(e.bal, live.DefaultInterval, live.DefaultSlots)
	}
}

// onEdit is the balancer's OnEdit hook: a run-time change is persisted (with
// persist on) and shared with the fleet (if the balancer takes part).
func (e *registryEntry) onEdit(b *balancer.Balancer, ed balancer.Edit, reason string) {
	e.save()
	e.mu.Lock()
	n := e.fleet
	e.mu.Unlock()
	if n != nil {
		n.Changed(b, ed, reason)
	}
}

// setFleet makes the balancer take part in app's fleet, if app has one and
// the balancer is among its balancers, and leaves the previous one. Caller
// holds e.mu.
func (e *registryEntry) setFleet(app *App) {
	var n *fleet.Node
	if app.fleet != nil && app.fleet.node.Takes(e.name) {
		n = app.fleet.node
		n.SetOutput(app.logger, app.emit)
	}
	if n == e.fleet {
		if n != nil {
			go n.Attach(e.bal) // after a reconfiguration, apply the fleet's state again
		}
		return
	}
	if e.fleet != nil {
		e.fleet.Detach(e.bal)
	}
	e.fleet = n
	if n != nil {
		go n.Attach(e.bal)
	}
}

// logger is the logger of the load in force.
func (e *registryEntry) logger() *zap.Logger {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.committedBy == nil {
		return zap.NewNop()
	}
	return e.committedBy.logger
}

// Destruct is called when no config load uses the balancer any more: it
// stops the health checker and the live view's sampler and unhooks the
// balancer.
func (e *registryEntry) Destruct() error {
	e.mu.Lock()
	c, s := e.checker, e.sampler
	e.checker, e.sampler = nil, nil
	e.committedBy, e.waiting = nil, nil
	clear(e.staged)
	n := e.fleet
	e.fleet = nil
	e.mu.Unlock()
	if n != nil {
		n.Detach(e.bal)
	}
	if c != nil {
		c.Stop()
	}
	if s != nil {
		s.Stop()
	}
	e.bal.SetOnStatusChange(nil)
	e.bal.SetOnEdit(nil)
	e.bal.SetMemberPolicy(nil)
	e.bal.SetOnDrained(nil)
	return nil
}

// resolveTimeout bounds the look-up of a run-time member's host name.
const resolveTimeout = 3 * time.Second

// runtimeMemberPolicy is the check of every member added at run time (the
// manager, the JSON API, a restored state, the fleet sync): it must not
// point at this Caddy itself (its admin endpoint or one of its own
// listeners: through the balancer, any client could reach the admin API or
// loop requests back), and it must be within the balancer's growth_allow.
// The host is resolved once, when the member is added.
func runtimeMemberPolicy(b *balancer.Balancer, a balancer.MemberAddress) error {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(a.Host); err == nil {
		ips = []netip.Addr{ip.Unmap()}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		defer cancel()
		found, err := net.DefaultResolver.LookupNetIP(ctx, "ip", a.Host)
		if err != nil && !b.GrowthAllows(a.Host, nil) {
			return fmt.Errorf("host %s does not resolve (%v), so growth_allow cannot admit it", a.Host, err)
		}
		for _, ip := range found {
			ips = append(ips, ip.Unmap())
		}
	}
	if isSelf(a.Host, a.Port, ips) {
		return fmt.Errorf("%s:%s is this Caddy's own listener (its admin endpoint or a site)", a.Host, a.Port)
	}
	if !b.GrowthAllows(a.Host, ips) {
		return fmt.Errorf("host %s is not in the balancer's growth_allow", a.Host)
	}
	return nil
}

// isSelf reports whether host:port, whose addresses are ips, is one of
// this Caddy's listeners: Caddy's listener pool (which holds the admin
// endpoint's and the sites' listeners) has one for that port on a local
// address, on the wildcard address, or on the name as written.
func isSelf(host, port string, ips []netip.Addr) bool {
	keys := []string{net.JoinHostPort(host, port)}
	local := false
	for _, ip := range ips {
		if isLocalAddr(ip) {
			local = true
			keys = append(keys, net.JoinHostPort(ip.String(), port))
		}
	}
	if local {
		keys = append(keys, ":"+port, net.JoinHostPort("0.0.0.0", port), net.JoinHostPort("::", port),
			net.JoinHostPort("localhost", port), net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port))
	}
	for _, k := range keys {
		for _, network := range []string{"tcp", "tcp4", "tcp6"} {
			if caddy.ListenerUsage(network, k) > 0 {
				return true
			}
		}
	}
	return false
}

// isLocalAddr reports whether ip is an address of this host: loopback,
// unspecified, or one of its interfaces' addresses.
func isLocalAddr(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// listed reports whether the entry is shown (a load using it was committed).
func (e *registryEntry) listed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.committedBy != nil
}

// liveBalancers returns the balancers in force, sorted by name.
func liveBalancers() []*balancer.Balancer {
	var out []*balancer.Balancer
	balancers.Range(func(_, v any) bool {
		if e, ok := v.(*registryEntry); ok && e.listed() {
			out = append(out, e.bal)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// liveSamplers returns the live view's samplers of the balancers in force,
// sorted by balancer name.
func liveSamplers() []*live.Sampler {
	var out []*live.Sampler
	balancers.Range(func(_, v any) bool {
		e, ok := v.(*registryEntry)
		if !ok {
			return true
		}
		e.mu.Lock()
		if e.committedBy != nil && e.sampler != nil {
			out = append(out, e.sampler)
		}
		e.mu.Unlock()
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Balancer().Name() < out[j].Balancer().Name() })
	return out
}

// lookupBalancer finds a balancer in force by name (case and "balancer://"
// ignored), nil if there is none.
func lookupBalancer(name string) *balancer.Balancer {
	name = strings.ToLower(strings.TrimPrefix(name, "balancer://"))
	var b *balancer.Balancer
	balancers.Range(func(k, v any) bool {
		if e := v.(*registryEntry); k.(string) == name && e.listed() {
			b = e.bal
		}
		return b == nil
	})
	return b
}
