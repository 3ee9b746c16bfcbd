package caddybalancer

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/hcheck"
)

// balancers holds every balancer by name in a UsagePool, so that a balancer
// and its run-time state survive a config reload: the new config takes a
// reference before the old one lets go of its own. It is the only state the
// plugin keeps outside a config load; everything a balancer owns hangs off
// its registryEntry and is freed by Destruct.
var balancers = caddy.NewUsagePool()

// registryEntry is one balancer and everything it owns across reloads: the
// engine, its committed definition, the definitions of config loads not yet
// committed, its persistence, its health checker, and where its events go.
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
	persist persister
	// bare: the balancer was built from a block that only refers to it by
	// name (a Caddyfile `handle` block comes before the site's defining
	// `balancer` block), so its first definition must still be applied.
	bare bool
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
		return &registryEntry{name: cfg.Name, bal: b, staged: map[*App]*definition{}, bare: def == nil}, nil
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
		if !first || e.bare {
			e.bare = false
			if err := e.bal.Reconfigure(def.cfg); err != nil {
				// Provision checked the configuration; this cannot happen.
				app.logger.Error("balancer: reconfiguring", zap.String("balancer", e.name), zap.Error(err))
			}
		}
		e.def = def
		e.setPersist(app, def, first)
	}
	e.bal.SetOnStatusChange(func(m *balancer.Member, old, new balancer.Status, reason string) {
		app.onStatusChange(e.name, m, old, new, reason)
	})
	if e.checker == nil {
		e.checker = hcheck.Start(e.bal, e.logger)
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
// stops the health checker and unhooks the balancer.
func (e *registryEntry) Destruct() error {
	e.mu.Lock()
	c := e.checker
	e.checker = nil
	e.committedBy, e.waiting = nil, nil
	clear(e.staged)
	e.mu.Unlock()
	if c != nil {
		c.Stop()
	}
	e.bal.SetOnStatusChange(nil)
	e.bal.SetOnEdit(nil)
	return nil
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
