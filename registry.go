package caddybalancer

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/lbset/caddy-balancer/balancer"
)

// balancers holds every balancer by name. It is a package-level UsagePool so
// that a balancer and its run-time state survive a config reload: the new
// config takes a reference before the old one lets go of its own.
var balancers = caddy.NewUsagePool()

// registryEntry is one balancer in the pool.
type registryEntry struct {
	name string
	bal  *balancer.Balancer

	mu sync.Mutex
	// definedIn is the Done channel of the config load whose block last
	// defined the balancer, and cfg that definition: a second defining block
	// in the same load must agree with it.
	definedIn <-chan struct{}
	cfg       balancer.Config

	// rt runs the health checker and reports status changes (events.go).
	rt entryRuntime
}

// acquireBalancer returns the balancer of that name, creating it, or
// reconfiguring it when this block defines it.
func acquireBalancer(ctx caddy.Context, cfg balancer.Config, defines bool) (*registryEntry, error) {
	var created bool
	v, _, err := balancers.LoadOrNew(cfg.Name, func() (caddy.Destructor, error) {
		b, err := balancer.New(cfg)
		if err != nil {
			return nil, err
		}
		created = true
		return &registryEntry{name: cfg.Name, bal: b}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("balancer %s: %w", cfg.Name, err)
	}
	e := v.(*registryEntry)
	if !defines {
		return e, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case created:
	case e.definedIn == ctx.Done():
		if !reflect.DeepEqual(e.cfg, cfg) {
			_, _ = balancers.Delete(cfg.Name)
			return nil, fmt.Errorf("balancer %s is defined twice with different members or parameters; define it once and refer to it by name", cfg.Name)
		}
	default:
		if err := e.bal.Reconfigure(cfg); err != nil {
			_, _ = balancers.Delete(cfg.Name)
			return nil, fmt.Errorf("balancer %s: %w", cfg.Name, err)
		}
	}
	e.definedIn, e.cfg = ctx.Done(), cfg
	return e, nil
}

func releaseBalancer(e *registryEntry) {
	_, _ = balancers.Delete(e.name)
}

// Destruct is called when no config uses the balancer any more.
func (e *registryEntry) Destruct() error {
	e.destroy()
	return nil
}

// lookupBalancer finds a live balancer by name, for the manager and admin API.
func lookupBalancer(name string) *balancer.Balancer {
	var b *balancer.Balancer
	balancers.Range(func(k, v any) bool {
		if k.(string) == name {
			b = v.(*registryEntry).bal
			return false
		}
		return true
	})
	return b
}
