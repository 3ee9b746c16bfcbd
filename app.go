package caddybalancer

import (
	"errors"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/cli"
	"github.com/lbset/caddy-balancer/fleet"
	"github.com/lbset/caddy-balancer/httpdadapter"
	"github.com/lbset/caddy-balancer/metrics"
)

func init() {
	caddy.RegisterModule(new(App))
	// `caddy adapt --adapter httpd` and the `caddy balancer` command:
	// registered here so that building Caddy with this module brings them.
	caddyconfig.RegisterAdapter("httpd", httpdadapter.Adapter{})
	caddycmd.RegisterCommand(cli.Command())
}

// App is the `balancer` app: one per config load, it is where that load's
// balancers report (events, logs, metrics) and the point at which their
// definitions come into force. Balancer handlers load it themselves, so it
// need not be configured.
//
// A config load changes live balancers only once Caddy runs it: Caddy starts
// the new config's apps, switches to the new config and only then stops the
// old config's apps. A balancer's new definition is therefore put in force
// when the app of the config that was in force stops (or, for a balancer no
// running config uses, when the new app starts). If the new config fails to
// start, its definitions are dropped and the balancers stay exactly as they
// were.
type App struct {
	// Fleet shares the balancers' run-time state with other Caddy nodes
	// through Redis or Caddy's storage (a drain made on one node applies on
	// every node). Omitted: each node keeps its own state, as httpd does.
	Fleet *fleet.Config `json:"fleet,omitempty"`

	fleet  *fleetEntry // the fleet node this load uses, nil without Fleet
	logger *zap.Logger
	events *caddyevents.App
	// eventCtx is the context of the load's first balancer handler: events
	// have the handler as their origin.
	eventCtx *caddy.Context

	mu      sync.Mutex
	entries []*registryEntry
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "balancer",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets up the app: its logger and events, the balancer metrics in
// this load's metrics registry, and the fleet node if Fleet is set.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.Fleet != nil {
		f, err := acquireFleet(ctx, *a.Fleet)
		if err != nil {
			return err
		}
		a.fleet = f
	}
	if app, err := ctx.App("events"); err == nil {
		a.events, _ = app.(*caddyevents.App)
	}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(metrics.Collector{Balancers: liveBalancers}); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				a.logger.Warn("registering balancer metrics", zap.Error(err))
			}
		}
	}
	return nil
}

// appOf returns the balancer app of the handler's config load.
func appOf(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("balancer")
	if err != nil {
		return nil, err
	}
	a := v.(*App)
	a.mu.Lock()
	if a.eventCtx == nil {
		a.eventCtx = &ctx
	}
	a.mu.Unlock()
	return a, nil
}

// use records that this load uses the entry.
func (a *App) use(e *registryEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.entries {
		if x == e {
			return
		}
	}
	a.entries = append(a.entries, e)
}

func (a *App) used() []*registryEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*registryEntry(nil), a.entries...)
}

// Start puts the load's definitions in force for balancers no running config
// uses; the others wait for the running config to stop.
func (a *App) Start() error {
	for _, e := range a.used() {
		if !e.definedFor(a) {
			a.logger.Warn("balancer is only referred to by name and no balancer block defines it: it has no members, "+
				"every request it gets is answered 503; check the name, or add balancer_member lines", zap.String("balancer", e.name))
		}
		e.started(a)
	}
	return nil
}

// Cleanup lets go of the fleet node (it is closed with its last load).
func (a *App) Cleanup() error {
	if a.fleet != nil {
		a.fleet.release()
		a.fleet = nil
	}
	return nil
}

// Stop hands the balancers of this load, if it is in force, to the load that
// started after it; if this load never came into force (its start failed),
// its definitions are dropped.
func (a *App) Stop() error {
	for _, e := range a.used() {
		e.stopping(a)
	}
	return nil
}

// MemberStatusEvent is the name of the Caddy event emitted on every change of
// a member's status flags. Its data:
//
//	balancer   name of the balancer (without balancer://)
//	member     the member's URL (httpd's worker name)
//	old, new   httpd status strings before and after, e.g. "Init Ok", "Init Err"
//	flags_old, flags_new   the flag letters before and after, e.g. "O", "OE"
//	reason     manager, api, healthcheck, connect_failure, retry,
//	           forced_recovery, failonstatus, failontimeout or restore
//
// The origin module is http.handlers.balancer.
const MemberStatusEvent = "balancer_member_status"

// onStatusChange is a balancer's OnStatusChange hook: it logs the change and
// emits the balancer_member_status event.
func (a *App) onStatusChange(name string, m *balancer.Member, old, new balancer.Status, reason string) {
	const troubled = balancer.InError | balancer.HCFail
	fields := []zap.Field{
		zap.String("balancer", name), zap.String("member", m.Name()),
		zap.String("old", strings.TrimSpace(old.String())), zap.String("new", strings.TrimSpace(new.String())),
		zap.String("reason", reason),
	}
	switch {
	case new&troubled&^old != 0:
		a.logger.Warn("balancer member in error", fields...)
	case reason == balancer.ReasonRetry || reason == balancer.ReasonForcedRecovery:
		// E lifted on examination: the member is merely tried again
		// (with retry=0, on every request), not known to be healthy.
		a.logger.Debug("balancer member retried", fields...)
	case old&troubled&^new != 0:
		a.logger.Info("balancer member recovered", fields...)
	default:
		a.logger.Info("balancer member status changed", fields...)
	}
	a.emit(MemberStatusEvent, map[string]any{
		"balancer":  name,
		"member":    m.Name(),
		"old":       strings.TrimSpace(old.String()),
		"new":       strings.TrimSpace(new.String()),
		"flags_old": old.Letters(),
		"flags_new": new.Letters(),
		"reason":    reason,
	})
}

// MemberDrainedEvent is the name of the Caddy event emitted when a draining
// member (N) has no request in flight: its last request ended, or N was set
// while it had none. It is emitted again only after the member was given
// another request (a sticky one) or N was cleared and set again. Its data:
//
//	balancer   name of the balancer (without balancer://)
//	member     the member's URL (httpd's worker name)
//	route      the member's route, "" if none
//
// The origin module is http.handlers.balancer.
const MemberDrainedEvent = "balancer_member_drained"

// onDrained is a balancer's OnDrained hook: it logs and emits the
// balancer_member_drained event.
func (a *App) onDrained(name string, m *balancer.Member) {
	a.logger.Info("balancer member drained", zap.String("balancer", name), zap.String("member", m.Name()))
	a.emit(MemberDrainedEvent, map[string]any{
		"balancer": name,
		"member":   m.Name(),
		"route":    m.Route(),
	})
}

// emit emits a Caddy event, if anyone listens.
func (a *App) emit(event string, data map[string]any) {
	a.mu.Lock()
	ctx := a.eventCtx
	a.mu.Unlock()
	if a.events == nil || ctx == nil || !a.events.ShouldEmit(event) {
		return
	}
	a.events.Emit(*ctx, event, data)
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
