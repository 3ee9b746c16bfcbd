// Package manager is httpd 2.4's balancer-manager (balancer_handler in
// mod_proxy_balancer.c): the HTML page, its form protocol and the XML
// (?xml=1), with httpd's parameter parsing, Referer and nonce gates and
// validation ranges, so that scripts and Ansible's
// community.general.apache2_mod_proxy written for httpd work unchanged. It
// knows nothing of Caddy: the plugin mounts Serve on Caddy's admin endpoint
// and on a site route. docs/behaviour.md §7 describes the protocol.
package manager

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Options are the differences between the manager's homes.
type Options struct {
	// StrictReferer is httpd's Referer gate exactly: parameters without a
	// same-host Referer are dropped. Off (the admin endpoint), a request
	// without any Referer keeps its parameters; it still needs the nonce.
	StrictReferer bool
	// Balancers lists the live balancers, sorted by name.
	Balancers func() []*balancer.Balancer
	// Only lists the balancers shown (names without balancer://); empty: all.
	Only []string
	// URI is the manager's own path (decoded), for links and form actions.
	URI string
	// ServerVersion is the page's "Server Version:" line.
	ServerVersion string
	// Logger receives the changes made and the requests refused.
	Logger *zap.Logger
}

// BodyLimit is the single read of a POST body httpd makes (1024 bytes);
// anything after it is ignored.
const BodyLimit = 1024

// getKeys are the query-string keys httpd keeps for a GET.
var getKeys = []string{"w", "b", "nonce", "xml"}

// Serve runs httpd's balancer-manager pipeline (docs/behaviour.md §7.2):
// collect the parameters (GET: query keys b, w, nonce, xml; POST: the first
// 1024 bytes of the body, all keys), the Referer gate, resolve b and w, the
// nonce gate, apply the changes, and render XML or HTML.
func Serve(w http.ResponseWriter, r *http.Request, opt Options) {
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
	logger := opt.Logger
	if logger == nil {
		logger = zap.NewNop()
	}

	params := make(map[string]string)
	if r.Method == http.MethodPost {
		buf, err := io.ReadAll(io.LimitReader(r.Body, BodyLimit))
		if err != nil {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		push2table(string(buf), params, nil)
	} else {
		push2table(r.URL.RawQuery, params, getKeys)
	}

	var bals []*balancer.Balancer
	if opt.Balancers != nil {
		bals = opt.Balancers()
	}
	if len(opt.Only) > 0 {
		bals = only(bals, opt.Only)
	}

	// The Referer gate (httpd 2.4.41+, AH10187): it drops the parameters
	// silently, as httpd does; the log says why when they would have changed
	// something.
	if len(params) > 0 && !refererAllowed(r, opt.StrictReferer) {
		if b, _, ok := resolve(bals, params); ok && changes(b, params) {
			warnRefused(logger, r, b.Name())
		}
		clear(params)
	}

	bsel, wsel, nonceOK := resolve(bals, params)
	if nonceOK {
		if err := apply(bsel, wsel, params, r.RemoteAddr, logger); err != nil {
			writeBadRequest(w, err)
			return
		}
	}

	page := page{
		bals:    bals,
		bsel:    bsel,
		wsel:    wsel,
		uri:     opt.URI,
		host:    serverName(r),
		action:  action(r, opt.URI),
		version: opt.ServerVersion,
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

// resolve finds the balancer (b) and member (w) the parameters name, and
// whether the nonce gate lets them change it: the balancer's nonce, which
// must not be empty (nonce=None makes the manager read-only, httpd 2.4.49+).
func resolve(bals []*balancer.Balancer, params map[string]string) (*balancer.Balancer, *balancer.Member, bool) {
	var bsel *balancer.Balancer
	if name, ok := params["b"]; ok {
		name, _, _ = strings.Cut(strings.ToLower(name), "/")
		for _, b := range bals {
			if b.Name() == name {
				bsel = b
				break
			}
		}
	}
	if bsel == nil {
		return nil, nil, false
	}
	var wsel *balancer.Member
	if v, ok := params["w"]; ok {
		wsel = bsel.FindMember(v)
	}
	nonce := bsel.Nonce()
	given, ok := params["nonce"]
	return bsel, wsel, ok && nonce != "" && given == nonce
}

// changes reports whether params, past both gates, carry a change of b:
// a worker or balancer field, or a member to add. The page's own links
// (b, w and nonce only) do not.
func changes(b *balancer.Balancer, params map[string]string) bool {
	v := b.View()
	var wv *balancer.MemberView
	if w := b.FindMember(params["w"]); w != nil {
		for i := range v.Members {
			if v.Members[i].Name == w.Name() {
				wv = &v.Members[i]
			}
		}
	}
	edit, add := formEdit(v, wv, params)
	if add != nil {
		return true
	}
	for _, me := range edit.Members {
		if !reflect.DeepEqual(me, balancer.MemberEdit{Name: me.Name}) {
			return true
		}
	}
	edit.Members = nil
	return !edit.Empty()
}

// warnRefused logs a change that the Referer gate dropped: the page and
// httpd say nothing, so the operator who sees nothing change finds the
// reason and the fix here.
func warnRefused(logger *zap.Logger, r *http.Request, name string) {
	ref := r.Header.Get("Referer")
	fields := []zap.Field{zap.String("balancer", name), zap.String("remote", r.RemoteAddr), zap.String("host", r.Host)}
	if ref == "" {
		logger.Warn("balancer-manager: change ignored: the request has no Referer, and as in httpd (2.4.41+) the "+
			"manager drops the parameters of a request whose Referer does not name this host; send one "+
			"(curl -e http://"+r.Host+"/balancer-manager ...), or point scripts at the balancer-manager on "+
			"Caddy's admin endpoint, which accepts requests without a Referer", fields...)
		return
	}
	logger.Warn("balancer-manager: change ignored: the Referer does not name this host, and as in httpd the "+
		"manager drops the parameters of such a request (a cross-site request guard); send a Referer naming "+
		"the host the request is sent to", append(fields, zap.String("referer", ref))...)
}

// apply makes the changes of a request that passed both gates: the worker
// and balancer fields as one edit, then the member addition. The error is a
// failed addition, which httpd answers with 400.
func apply(b *balancer.Balancer, w *balancer.Member, params map[string]string, remote string, logger *zap.Logger) error {
	v := b.View()
	var wv *balancer.MemberView
	if w != nil {
		for i := range v.Members {
			if v.Members[i].Name == w.Name() {
				wv = &v.Members[i]
			}
		}
	}
	edit, add := formEdit(v, wv, params)
	if !edit.Empty() {
		if _, err := b.Apply(edit, balancer.ReasonManager); err != nil {
			// Only a member removed meanwhile can fail here: httpd would not
			// have found it either.
			logger.Info("balancer-manager: change not applied", zap.String("balancer", b.Name()), zap.Error(err))
		} else {
			logger.Info("balancer-manager: balancer changed",
				zap.String("balancer", b.Name()), zap.String("remote", remote))
		}
	}
	if add == nil {
		return nil
	}
	if _, err := b.Apply(balancer.Edit{Add: []balancer.MemberConfig{*add}}, balancer.ReasonManager); err != nil {
		logger.Warn("balancer-manager: adding a member failed",
			zap.String("balancer", b.Name()), zap.String("url", add.URL), zap.Error(err))
		return err
	}
	logger.Info("balancer-manager: member added",
		zap.String("balancer", b.Name()), zap.String("url", add.URL), zap.String("remote", remote))
	return nil
}

// only keeps the balancers named in names.
func only(bals []*balancer.Balancer, names []string) []*balancer.Balancer {
	var out []*balancer.Balancer
	for _, b := range bals {
		for _, n := range names {
			if n == b.Name() {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// writeBadRequest answers a failed member addition with 400, as httpd does
// (AH10163, AH10164).
func writeBadRequest(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
	w.WriteHeader(http.StatusBadRequest)
	msg := "Your browser sent a request that this server could not understand."
	switch {
	case errors.Is(err, balancer.ErrMemberExists), errors.Is(err, balancer.ErrNoFreeSlot):
		msg = "The member already exists or no member slot is free."
	case errors.Is(err, balancer.ErrMemberRefused):
		msg = "The member is not allowed as a run-time member of this balancer."
	case errors.Is(err, balancer.ErrInvalidMember):
		msg = "The member URL is invalid."
	}
	_, _ = io.WriteString(w, "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>400 Bad Request</title>\n</head><body>\n<h1>Bad Request</h1>\n<p>"+msg+"</p>\n</body></html>\n")
}

// refererAllowed is httpd's safe_referer gate: the Referer must be an
// absolute URL whose host equals (case-insensitively) the host this request
// was sent to; scheme and port are not compared. With strict off, a request
// without a Referer passes too.
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

// action is the absolute URL of the manager, the edit forms' action (httpd's
// ap_construct_url of r->uri).
func action(r *http.Request, uri string) string {
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
