package caddybalancer

import (
	"context"
	"net/http"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/api"
	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/fleet"
	"github.com/lbset/caddy-balancer/live"
	"github.com/lbset/caddy-balancer/manager"
)

// The balancer-manager (package manager) and the JSON API (package api),
// mounted on Caddy's admin endpoint (admin.api.balancer_manager) and, for
// people with a browser, the manager and the live view (package live) on a
// site route (http.handlers.balancer_manager).

func init() {
	caddy.RegisterModule(AdminManager{})
	caddy.RegisterModule(ManagerHandler{})
}

// AdminManager is the admin API module `admin.api.balancer_manager`. On
// Caddy's admin endpoint it serves
//
//   - /balancer-manager (and below): httpd 2.4's balancer-manager, the HTML
//     page, its POST form protocol and ?xml=1, for existing automation
//     (Ansible's community.general.apache2_mod_proxy, curl scripts). Caddy's
//     admin origin check refuses a browser that opens the URL directly, so
//     people use the balancer_manager site handler;
//   - /balancers: the JSON API over the same balancers.
//
// It lists every live balancer of the running config.
type AdminManager struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminManager) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.balancer_manager",
		New: func() caddy.Module { return new(AdminManager) },
	}
}

// Provision sets up the module.
func (a *AdminManager) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	return nil
}

// Routes returns the admin routes.
func (a *AdminManager) Routes() []caddy.AdminRoute {
	apiHandler := api.Handler{Balancers: liveBalancers, Logger: a.logger, Node: nodeName(), Peers: fleetPeers}
	serveAPI := caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		apiHandler.ServeHTTP(w, r)
		return nil
	})
	return []caddy.AdminRoute{
		{Pattern: "/balancer-manager", Handler: caddy.AdminHandlerFunc(a.serveManager)},
		{Pattern: "/balancer-manager/", Handler: caddy.AdminHandlerFunc(a.serveManager)},
		{Pattern: api.Prefix, Handler: serveAPI},
		{Pattern: api.Prefix + "/", Handler: serveAPI},
	}
}

// serveManager serves httpd's balancer-manager on the admin endpoint.
//
// The Referer gate differs from httpd's in one point: a request that carries
// no Referer at all keeps its parameters (it still needs the balancer's
// nonce to change anything). httpd 2.4.41+ drops them, as a CSRF defence for a
// page that any site's browser tab could post to. On Caddy's admin endpoint
// that defence is already there: the admin server rejects requests whose Host
// is not the admin address, and any browser request that carries Origin or
// Sec-Fetch-Mode (all current browsers send one of them on cross-site
// requests) from an origin other than the admin endpoint itself. What is
// left without a Referer are non-browser clients: curl/wget scripts and the
// Ansible module community.general.apache2_mod_proxy, which send none and so
// are broken against httpd >= 2.4.41. A Referer that names another host still
// drops all parameters, as in httpd. The site handler (balancer_manager
// directive) follows httpd exactly.
func (a *AdminManager) serveManager(w http.ResponseWriter, r *http.Request) error {
	manager.Serve(w, r, manager.Options{
		StrictReferer: false,
		Balancers:     liveBalancers,
		URI:           r.URL.Path,
		ServerVersion: serverVersion(),
		Logger:        a.logger,
	})
	return nil
}

// nodeName names this Caddy in the API's per-node answers: the host name.
func nodeName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "local"
}

// fleetPeers is the JSON API's view of the fleet for a drain: this node's ID
// and the other nodes' reports on the member, if b is shared with a fleet.
func fleetPeers(ctx context.Context, b *balancer.Balancer, member string) (string, []api.DrainNode, error) {
	var n *fleet.Node
	balancers.Range(func(_, v any) bool {
		if e := v.(*registryEntry); e.bal == b {
			e.mu.Lock()
			n = e.fleet
			e.mu.Unlock()
			return false
		}
		return true
	})
	if n == nil {
		return "", nil, nil
	}
	ps, err := n.Peers(ctx, b.Name(), member)
	if err != nil {
		return n.ID(), nil, err
	}
	out := make([]api.DrainNode, len(ps))
	for i, p := range ps {
		seen := p.Seen.UTC()
		out[i] = api.DrainNode{Node: p.Node, InFlight: p.InFlight, Draining: p.Draining,
			Drained: p.Draining && p.InFlight == 0, Stale: p.Stale, LastSeen: &seen}
	}
	return n.ID(), out, nil
}

// serverVersion is the manager page's "Server Version:" line.
func serverVersion() string {
	v, _ := caddy.Version()
	if v == "" || v == "unknown" || v == "(devel)" {
		v = "v2"
	}
	return manager.ServerVersion("caddy-balancer on Caddy " + v)
}

// ManagerHandler serves httpd's balancer-manager page on a site route, as
// `<Location /balancer-manager> SetHandler balancer-manager` does: the HTML
// page, the edit forms (POST) and `?xml=1`; and beside it, at the same path
// with `?view=live`, the live view (package live): charts of each member's
// requests, latency and health checks, and buttons to drain, disable, enable
// and weigh members. Protect the route with Caddy's own access control
// (basic_auth, remote_ip, forward_auth ...), as httpd's manual asks for
// `Require`; the nonce and the same-host Referer (live view: Origin and
// Sec-Fetch-Site) checks are defence in depth only. The handler answers
// every request itself.
type ManagerHandler struct {
	// Balancers limits the page to these balancers (names without
	// "balancer://"). Default: every balancer.
	Balancers []string `json:"balancers,omitempty"`

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (ManagerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.balancer_manager",
		New: func() caddy.Module { return new(ManagerHandler) },
	}
}

// Provision sets up the handler.
func (h *ManagerHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	for i, n := range h.Balancers {
		h.Balancers[i] = strings.ToLower(strings.TrimPrefix(n, "balancer://"))
	}
	return nil
}

// ServeHTTP serves the manager, or the live view for ?view=live; it never
// calls the next handler.
func (h *ManagerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	uri := r.URL.Path
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		uri = or.URL.Path
	}
	if live.Wants(r) {
		live.Serve(w, r, live.Options{
			Samplers:   liveSamplers,
			Only:       h.Balancers,
			ManagerURI: uri,
			Logger:     h.logger,
		})
		return nil
	}
	manager.Serve(w, r, manager.Options{
		StrictReferer: true,
		Balancers:     liveBalancers,
		Only:          h.Balancers,
		URI:           uri,
		ServerVersion: serverVersion(),
		Logger:        h.logger,
	})
	return nil
}

// Interface guards
var (
	_ caddy.AdminRouter           = (*AdminManager)(nil)
	_ caddy.Provisioner           = (*AdminManager)(nil)
	_ caddy.Provisioner           = (*ManagerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ManagerHandler)(nil)
)
