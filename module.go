// Package caddybalancer is the Caddy glue of caddy-balancer: the
// `http.handlers.balancer` handler (module.go, its request path in proxy.go),
// the Caddyfile directives (caddyfile.go), the balancer-manager and JSON API
// mounts (admin.go), the lbmethods as reverse_proxy selection policies
// (policy.go), the registry of balancers across config loads (registry.go),
// the `balancer` app that puts a config load's balancers in force (app.go)
// and persistence (persist.go). The engine, httpd 2.4's mod_proxy_balancer,
// is package balancer; each further concept has its own package (config,
// manager, api, hcheck, proxypassreverse, metrics, httpdadapter).
package caddybalancer

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is an httpd `<Proxy balancer://name>` block with its ProxyPass: a
// reverse proxy whose upstreams are balancer members chosen as httpd 2.4's
// mod_proxy_balancer chooses them (lbsets, hot spares and standbys, status
// flags, sticky routes, the lbmethods, error and retry state).
//
// It embeds reverse_proxy: every reverse_proxy field (transport, headers,
// flush_interval, ...) is accepted inline, except those that choose upstreams
// (upstreams, dynamic_upstreams, load_balancing, health_checks): the balancer
// does that itself. The balancer's own fields are config.Balancer's.
type Handler struct {
	reverseproxy.Handler
	config.Balancer

	bal  *balancer.Balancer
	rmap *proxypassreverse.Mapper
	// memberHost: send the member's host as Host, as httpd does by default
	// (ProxyPreserveHost Off), unless the user sets Host with header_up.
	memberHost bool
	entry      *registryEntry
	app        *App
	logger     *zap.Logger

	// rpProvisioned: the embedded reverse_proxy's Provision was called, so
	// its Cleanup may be (it panics on an unprovisioned handler).
	rpProvisioned bool
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.balancer",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the balancer and the embedded reverse proxy. The
// balancer's definition is staged: it comes into force when Caddy runs this
// config (App), not before, so a config load that Caddy rejects changes
// nothing.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if len(h.Upstreams) > 0 || h.DynamicUpstreamsRaw != nil {
		return fmt.Errorf("balancer: upstreams come from balancer_member, not 'to' or 'dynamic'")
	}
	if h.LoadBalancing != nil && (h.LoadBalancing.SelectionPolicyRaw != nil || h.LoadBalancing.Retries != 0 ||
		h.LoadBalancing.TryDuration != 0 || h.LoadBalancing.RetryMatchRaw != nil) {
		return fmt.Errorf("balancer: load balancing is set with lbmethod, maxattempts and timeout, not lb_* options")
	}
	if h.HealthChecks != nil {
		return fmt.Errorf("balancer: health checks are set per member with hcmethod, hcuri, hcinterval ..., not health_* options")
	}
	cfg, err := h.Engine()
	if err != nil {
		return err
	}
	h.Name = cfg.Name
	app, err := appOf(ctx)
	if err != nil {
		return err
	}
	var def *definition
	if h.Defines() {
		if len(cfg.Members) == 0 {
			msg := "balancer has no members: every request it gets is answered 503; add balancer_member lines (httpd's BalancerMember)"
			if cfg.Growth > 0 {
				msg = "balancer has no members: every request it gets is answered 503 until members are added at run time (growth)"
			}
			h.logger.Warn(msg, zap.String("balancer", cfg.Name))
		}
		def = &definition{cfg: cfg, persist: h.Persist}
		if h.Persist {
			def.storage = contextStorage(ctx)
		}
	}
	entry, err := app.acquire(cfg, def)
	if err != nil {
		return err
	}
	h.app, h.entry, h.bal = app, entry, entry.bal

	h.DynamicUpstreams = memberSource{h}
	h.LoadBalancing = &reverseproxy.LoadBalancing{SelectionPolicy: pickedSelector{}}
	h.rpProvisioned = true
	if err := h.Handler.Provision(ctx); err != nil {
		entry.release(app)
		h.entry = nil // Caddy calls Cleanup after a failed Provision: release once
		return err
	}
	h.Transport = newMemberTransport(h.Transport)
	h.rmap = proxypassreverse.New(h.Name, h.ProxyPassReverse, h.ProxyPassReverseCookiePath,
		h.ProxyPassReverseCookieDomain, lookupBalancer)
	h.memberHost = !h.setsHostHeader()
	return nil
}

// setsHostHeader reports whether header_up sets the Host header.
func (h *Handler) setsHostHeader() bool {
	if h.Headers == nil || h.Headers.Request == nil {
		return false
	}
	ops := h.Headers.Request
	if ops.Set.Get("Host") != "" || ops.Add.Get("Host") != "" {
		return true
	}
	return len(ops.Replace["Host"]) > 0
}

// Cleanup releases the balancer and the embedded reverse proxy.
func (h *Handler) Cleanup() error {
	if h.entry != nil {
		h.entry.release(h.app)
		h.entry = nil
	}
	if !h.rpProvisioned {
		return nil // Provision failed before the embedded reverse_proxy was set up
	}
	return h.Handler.Cleanup()
}

// pickedSelector returns the member the balancer already chose: the upstream
// source hands reverse_proxy a pool of exactly that one member.
type pickedSelector struct{}

func (pickedSelector) Select(pool reverseproxy.UpstreamPool, _ *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	if len(pool) == 0 {
		return nil
	}
	return pool[0]
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ reverseproxy.Selector       = pickedSelector{}
	_ reverseproxy.UpstreamSource = memberSource{}
)
