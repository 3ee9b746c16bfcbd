package caddybalancer

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// This file is the balancer-manager protocol (httpd 2.4's balancer_handler,
// mod_proxy_balancer.c), shared by the admin API route (admin.go) and the
// site handler `http.handlers.balancer_manager` below.

func init() {
	caddy.RegisterModule(ManagerHandler{})
	httpcaddyfile.RegisterHandlerDirective("balancer_manager", parseManagerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("balancer_manager", httpcaddyfile.Before, "reverse_proxy")
}

// ManagerHandler serves httpd's balancer-manager page on a site route, as
// `<Location /balancer-manager> SetHandler balancer-manager` does: the HTML
// page, the edit forms (POST) and `?xml=1`. Protect the route with Caddy's own
// access control (basic_auth, remote_ip, forward_auth ...), as httpd's manual
// asks for `Require`; the nonce and the same-host Referer check are defence in
// depth only. The handler answers every request itself.
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

// ServeHTTP serves the manager; it never calls the next handler.
func (h *ManagerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	uri := r.URL.Path
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		uri = or.URL.Path
	}
	serveManager(w, r, managerOptions{
		strictReferer: true,
		only:          h.Balancers,
		uri:           uri,
		logger:        h.logger,
	})
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	balancer_manager [<matcher>] [<balancer names...>]
func (h *ManagerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Balancers = append(h.Balancers, d.RemainingArgs()...)
	if d.NextBlock(0) {
		return d.Errf("balancer_manager takes no block, only balancer names")
	}
	return nil
}

func parseManagerCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ManagerHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// managerOptions are the differences between the manager's two homes.
type managerOptions struct {
	// strictReferer is httpd's Referer gate exactly: parameters without a
	// same-host Referer are dropped. Off (the admin endpoint), a request
	// without any Referer keeps its parameters; see serveAdminManager.
	strictReferer bool
	// only lists the balancers shown; empty: all.
	only []string
	// uri is the manager's own path (decoded), for links and form actions.
	uri    string
	logger *zap.Logger
}

// managerBodyLimit is the single read of a POST body httpd makes (1024 bytes);
// anything after it is ignored.
const managerBodyLimit = 1024

// serveManager runs httpd's balancer-manager pipeline (spec §7.2): collect
// the parameters (GET: query keys b, w, nonce, xml; POST: the first 1024
// bytes of the body, all keys), the Referer gate, resolve b and w, the nonce
// gate, apply the changes, and render XML or HTML.
func serveManager(w http.ResponseWriter, r *http.Request, opt managerOptions) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	case http.MethodOptions:
		w.Header().Set("Allow", "GET,POST,OPTIONS,HEAD")
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "GET,POST,OPTIONS,HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	logger := opt.logger
	if logger == nil {
		logger = zap.NewNop()
	}

	params := make(map[string]string)
	if r.Method == http.MethodPost {
		buf, err := io.ReadAll(io.LimitReader(r.Body, managerBodyLimit))
		if err != nil {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		push2table(string(buf), params, nil)
	} else {
		push2table(r.URL.RawQuery, params, managerGetKeys)
	}

	// The Referer gate (httpd 2.4.41+, AH10187).
	if len(params) > 0 && !refererAllowed(r, opt.strictReferer) {
		logger.Debug("balancer-manager: parameters dropped, the Referer does not name this host",
			zap.String("referer", r.Header.Get("Referer")), zap.String("host", r.Host))
		clear(params)
	}

	entries := listBalancers(opt.only)
	var bsel *registryEntry
	if name, ok := params["b"]; ok {
		name, _, _ = strings.Cut(strings.ToLower(name), "/")
		for _, e := range entries {
			if e.name == name {
				bsel = e
				break
			}
		}
	}
	var wsel *balancer.Member
	if v, ok := params["w"]; ok && bsel != nil {
		wsel = bsel.bal.FindMember(v)
	}

	// The nonce gate: changes need the balancer's nonce, which must not be
	// empty (nonce=None makes the manager read-only, httpd 2.4.49+).
	if bsel != nil {
		nonce := bsel.bal.Nonce()
		if given, ok := params["nonce"]; ok && nonce != "" && given == nonce {
			res, err := bsel.bal.ApplyManagerForm(wsel, params)
			if res.Changed {
				persistBalancer(bsel.bal)
				logger.Info("balancer-manager: balancer changed",
					zap.String("balancer", bsel.name), zap.String("remote", r.RemoteAddr))
			}
			if err != nil {
				logger.Warn("balancer-manager: adding a member failed",
					zap.String("balancer", bsel.name), zap.String("url", params["b_nwrkr"]), zap.Error(err))
				writeManagerBadRequest(w, err)
				return
			}
		}
	}

	page := managerPage{
		entries: entries,
		bsel:    bsel,
		wsel:    wsel,
		uri:     opt.uri,
		host:    serverName(r),
		action:  managerAction(r, opt.uri),
	}
	if _, ok := params["xml"]; ok {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, page.xml())
		}
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=ISO-8859-1")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, page.html())
	}
}

// managerGetKeys are the query-string keys httpd keeps for a GET.
var managerGetKeys = []string{"w", "b", "nonce", "xml"}

// writeManagerBadRequest answers a failed member addition with 400, as httpd
// does (AH10163, AH10164).
func writeManagerBadRequest(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
	w.WriteHeader(http.StatusBadRequest)
	msg := "Your browser sent a request that this server could not understand."
	if errors.Is(err, balancer.ErrMemberExists) || errors.Is(err, balancer.ErrNoFreeSlot) {
		msg = "The member already exists or no member slot is free."
	} else if errors.Is(err, balancer.ErrInvalidMember) {
		msg = "The member URL is invalid."
	}
	_, _ = io.WriteString(w, "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>400 Bad Request</title>\n</head><body>\n<h1>Bad Request</h1>\n<p>"+msg+"</p>\n</body></html>\n")
}

// push2table is httpd's push2table: split on '&' (empty pieces skipped),
// split each piece at the first '=' (none: empty value), %-decode the key once
// and the value twice; '+' stays '+'. A later duplicate key wins. With allowed
// set, other keys are dropped. The input is a C string in httpd: it ends at
// the first NUL byte (a POST body's bytes after one are ignored).
func push2table(input string, params map[string]string, allowed []string) {
	if i := strings.IndexByte(input, 0); i >= 0 {
		input = input[:i]
	}
	for _, piece := range strings.Split(input, "&") {
		if piece == "" {
			continue
		}
		key, val, _ := strings.Cut(piece, "=")
		key = unescapeURL(key)
		val = unescapeURL(unescapeURL(val))
		if allowed != nil {
			ok := false
			for _, a := range allowed {
				if a == key {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		params[key] = val
	}
}

// unescapeURL is ap_unescape_url: every %XX with two hex digits is decoded
// (a bad escape is kept as is); the result ends at a decoded NUL, as a C
// string does.
func unescapeURL(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		if c == 0 {
			break
		}
		out = append(out, c)
	}
	return string(out)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// refererAllowed is httpd's safe_referer gate: the Referer must be an
// absolute URL whose host equals (case-insensitively) the host this request
// was sent to; scheme and port are not compared. With strict off, a request
// without a Referer passes too (see serveAdminManager for why).
func refererAllowed(r *http.Request, strict bool) bool {
	ref := r.Header.Get("Referer")
	if ref == "" {
		return !strict
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return false
	}
	return strings.EqualFold(u.Hostname(), serverName(r))
}

// serverName is ap_get_server_name with UseCanonicalName Off: the host of
// the request's Host header, without the port, lower-cased as httpd stores
// it (the page's heading shows "localhost" for "Host: LOCALHOST").
func serverName(r *http.Request) string {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// managerAction is the absolute URL of the manager, the edit forms' action
// (httpd's ap_construct_url of r->uri).
func managerAction(r *http.Request, uri string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// ap_construct_url: the lower-cased host, and the port unless it is the
	// scheme's default.
	host := strings.ToLower(r.Host)
	if h, p, err := net.SplitHostPort(host); err == nil && ((scheme == "http" && p == "80") || (scheme == "https" && p == "443")) {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme + "://" + host + uri
}

// listBalancers returns the live balancers, sorted by name; with only given,
// just those.
func listBalancers(only []string) []*registryEntry {
	var out []*registryEntry
	balancers.Range(func(k, v any) bool {
		e, ok := v.(*registryEntry)
		if !ok || e.bal == nil {
			return true
		}
		if len(only) > 0 {
			found := false
			for _, n := range only {
				if n == e.name {
					found = true
					break
				}
			}
			if !found {
				return true
			}
		}
		out = append(out, e)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ManagerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ManagerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ManagerHandler)(nil)
)
