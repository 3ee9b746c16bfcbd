package caddybalancer

import (
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// MemberStatusEvent is the name of the Caddy event emitted on every change of
// a member's status flags. Its data:
//
//	balancer   name of the balancer (without balancer://)
//	member     the member's URL (httpd's worker name)
//	old, new   httpd status strings before and after, e.g. "Init Ok", "Init Err"
//	flags_old, flags_new   the flag letters before and after, e.g. "O", "OE"
//	reason     manager, api, healthcheck, connect_failure, retry,
//	           forced_recovery, failonstatus or failontimeout
//
// The origin module is http.handlers.balancer.
const MemberStatusEvent = "balancer_member_status"

// entryRuntime is what a balancer in the pool runs besides the engine: its
// health checker and the outlets of its status changes (events and logs). It
// lives as long as the pool entry, across config reloads, so a reload never
// starts a second checker for the same balancer.
type entryRuntime struct {
	mu sync.Mutex
	// sinks are the config loads that use the balancer, oldest first; the
	// newest whose context is not done receives events and logs.
	sinks     []*loadSink
	hooked    bool
	destroyed bool
	checker   *hcChecker // running checker, nil if none
}

// loadSink is one config load's way out: its events app and logger.
type loadSink struct {
	ctx    caddy.Context
	done   <-chan struct{}
	events *caddyevents.App
	logger *zap.Logger
}

// attach makes the balancer report to this config load (its events app and
// logger) and starts the health checker if it is not running.
func (e *registryEntry) attach(ctx caddy.Context, logger *zap.Logger) {
	s := &loadSink{ctx: ctx, done: ctx.Done(), logger: logger}
	if app, err := ctx.App("events"); err == nil {
		s.events, _ = app.(*caddyevents.App)
	}
	rt := &e.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.destroyed {
		return
	}
	rt.pruneLocked()
	rt.sinks = append(rt.sinks, s)
	if !rt.hooked {
		rt.hooked = true
		e.bal.SetOnStatusChange(e.onStatusChange)
	}
	if rt.checker == nil {
		rt.checker = startChecker(e)
	}
}

// pruneLocked drops the sinks of config loads that have ended.
func (rt *entryRuntime) pruneLocked() {
	live := rt.sinks[:0]
	for _, s := range rt.sinks {
		select {
		case <-s.done:
		default:
			live = append(live, s)
		}
	}
	clear(rt.sinks[len(live):])
	rt.sinks = live
}

// sink returns the newest live sink, or nil.
func (rt *entryRuntime) sink() *loadSink {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.pruneLocked()
	if len(rt.sinks) == 0 {
		return nil
	}
	return rt.sinks[len(rt.sinks)-1]
}

// logger returns the newest live sink's logger, or a no-op logger.
func (rt *entryRuntime) logger() *zap.Logger {
	if s := rt.sink(); s != nil && s.logger != nil {
		return s.logger
	}
	return zap.NewNop()
}

// destroy stops the checker and the reporting; called when the balancer
// leaves the pool.
func (e *registryEntry) destroy() {
	rt := &e.rt
	rt.mu.Lock()
	rt.destroyed = true
	c := rt.checker
	rt.checker = nil
	rt.sinks = nil
	rt.mu.Unlock()
	if c != nil {
		c.stop()
	}
	if e.bal != nil {
		e.bal.SetOnStatusChange(nil)
	}
}

// onStatusChange is the balancer's OnStatusChange hook: it logs the change
// and emits the balancer_member_status event.
func (e *registryEntry) onStatusChange(m *balancer.Member, old, new balancer.Status, reason string) {
	s := e.rt.sink()
	if s == nil {
		return
	}
	if s.logger != nil {
		const troubled = balancer.InError | balancer.HCFail
		fields := []zap.Field{
			zap.String("balancer", e.name), zap.String("member", m.Name()),
			zap.String("old", strings.TrimSpace(old.String())), zap.String("new", strings.TrimSpace(new.String())),
			zap.String("reason", reason),
		}
		switch {
		case new&troubled&^old != 0:
			s.logger.Warn("balancer member in error", fields...)
		case reason == balancer.ReasonRetry || reason == balancer.ReasonForcedRecovery:
			// E lifted on examination: the member is merely tried again
			// (with retry=0, on every request), not known to be healthy.
			s.logger.Debug("balancer member retried", fields...)
		case old&troubled&^new != 0:
			s.logger.Info("balancer member recovered", fields...)
		default:
			s.logger.Info("balancer member status changed", fields...)
		}
	}
	if s.events == nil || !s.events.ShouldEmit(MemberStatusEvent) {
		return
	}
	s.events.Emit(s.ctx, MemberStatusEvent, map[string]any{
		"balancer":  e.name,
		"member":    m.Name(),
		"old":       strings.TrimSpace(old.String()),
		"new":       strings.TrimSpace(new.String()),
		"flags_old": old.Letters(),
		"flags_new": new.Letters(),
		"reason":    reason,
	})
}
