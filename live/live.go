// Package live is the balancers' live view: a page beside httpd's
// balancer-manager that shows each balancer's members with their state,
// weight, requests in flight, request rate, latency and health-check history
// over the last minutes as small charts, and buttons that drain, disable and
// enable a member or change its weight. It is not httpd's protocol (package
// manager is, and stays as httpd has it); it knows nothing of Caddy: the
// plugin serves it on the balancer_manager site route, at the manager's own
// path with ?view=live, and keeps one Sampler per balancer for its charts.
//
//	GET  <manager>?view=live                  the page (HTML; its script draws it)
//	GET  <manager>?view=live&format=json      the data the page draws (Data)
//	GET  <manager>?view=live&asset=live.js    the page's script and stylesheet (live.css)
//	POST <manager>?view=live                  a change: b, w, nonce, action [, lf]
//
// Changes are guarded as the manager's are and more: POST only, the
// balancer's nonce (which only a same-origin page can read), a refusal of any
// request a browser marks as cross-site (Sec-Fetch-Site) or whose Origin is
// another host, and a page that may not be framed. Every change is one
// balancer.Edit with ReasonManager.
package live

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

//go:embed assets
var assets embed.FS

// page is the HTML shell; the script fills it from the JSON data.
var page = template.Must(template.ParseFS(assets, "assets/live.html"))

// Options are what the live view needs from its host.
type Options struct {
	// Samplers lists the samplers of the balancers in force, sorted by
	// balancer name.
	Samplers func() []*Sampler
	// Only lists the balancers shown (names without balancer://); empty: all.
	Only []string
	// ManagerURI is the path of httpd's balancer-manager page, which the
	// live view links to (and is shown at without JavaScript).
	ManagerURI string
	// Logger receives the changes made and the requests refused.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Wants reports whether a request to the manager's path is for the live
// view: its query has view=live. httpd's manager ignores that key, and no
// httpd client sends it.
func Wants(r *http.Request) bool {
	q := r.URL.RawQuery
	return strings.Contains(q, "view=live") && r.URL.Query().Get("view") == "live"
}

// BodyLimit bounds the body of a change.
const BodyLimit = 4096

// action returns the status flags a button's action sets and clears:
//
//	drain    sets N: only sticky requests for its route reach the member
//	disable  sets D: no request reaches the member
//	enable   clears D, N and S; a member failed by its health checks (C) or
//	         in error (E) stays so until it recovers
//	weight   changes no flag; it sets the loadfactor (lf, 1 to 100)
func action(name string) (set, clear balancer.Status, ok bool) {
	switch name {
	case "drain":
		return balancer.Drain, 0, true
	case "disable":
		return balancer.Disabled, 0, true
	case "enable":
		return 0, balancer.Disabled | balancer.Drain | balancer.Stopped, true
	case "weight":
		return 0, 0, true
	}
	return 0, 0, false
}

// Serve answers a live-view request (Wants(r) is true).
func Serve(w http.ResponseWriter, r *http.Request, opt Options) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		edit(w, r, opt)
		return
	default:
		h.Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, "the live view answers GET, HEAD and POST")
		return
	}
	q := r.URL.Query()
	switch {
	case q.Has("asset"):
		serveAsset(w, r, q.Get("asset"))
	case q.Get("format") == "json":
		now := time.Now
		if opt.Now != nil {
			now = opt.Now
		}
		d := Data{IntervalSeconds: DefaultInterval.Seconds(), Balancers: []BalancerData{}}
		for _, s := range shown(opt) {
			d.IntervalSeconds = s.Interval().Seconds()
			d.Balancers = append(d.Balancers, s.Data(now()))
		}
		writeJSON(w, r, http.StatusOK, d)
	default:
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
			"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_ = page.Execute(w, struct{ ManagerURI string }{opt.ManagerURI})
		}
	}
}

// serveAsset serves the page's script or stylesheet.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	var ctype string
	switch name {
	case "live.js":
		ctype = "text/javascript; charset=utf-8"
	case "live.css":
		ctype = "text/css; charset=utf-8"
	default:
		writeError(w, http.StatusNotFound, "no such asset")
		return
	}
	body, err := assets.ReadFile("assets/" + name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such asset")
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// shown returns the samplers of the balancers the view shows.
func shown(opt Options) []*Sampler {
	if opt.Samplers == nil {
		return nil
	}
	all := opt.Samplers()
	if len(opt.Only) == 0 {
		return all
	}
	var out []*Sampler
	for _, s := range all {
		for _, n := range opt.Only {
			if n == s.Balancer().Name() {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// edit applies a change: POST with the form fields b (balancer), w (member
// URL), nonce, action (drain, disable, enable, weight) and lf (weight).
func edit(w http.ResponseWriter, r *http.Request, opt Options) {
	logger := opt.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	if why := crossSite(r); why != "" {
		logger.Warn("balancer live view: change refused", zap.String("reason", why), zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusForbidden, why)
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		writeError(w, http.StatusUnsupportedMediaType, "a change is a form: Content-Type application/x-www-form-urlencoded")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, BodyLimit+1))
	if err != nil || len(raw) > BodyLimit {
		writeError(w, http.StatusBadRequest, "the form must be at most "+strconv.Itoa(BodyLimit)+" bytes")
		return
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		writeError(w, http.StatusBadRequest, "the form cannot be read: "+err.Error())
		return
	}
	var b *balancer.Balancer
	for _, s := range shown(opt) {
		if s.Balancer().Name() == strings.ToLower(form.Get("b")) {
			b = s.Balancer()
		}
	}
	if b == nil {
		writeError(w, http.StatusNotFound, "no balancer "+strconv.Quote(form.Get("b"))+" here")
		return
	}
	nonce := b.Nonce()
	if nonce == "" {
		writeError(w, http.StatusForbidden, "balancer "+b.Name()+" is read-only (nonce None)")
		return
	}
	if subtle.ConstantTimeCompare([]byte(form.Get("nonce")), []byte(nonce)) != 1 {
		logger.Warn("balancer live view: change refused", zap.String("reason", "wrong nonce"),
			zap.String("balancer", b.Name()), zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusForbidden, "the nonce is missing or wrong: reload the page")
		return
	}
	m := b.FindMemberByName(form.Get("w"))
	if m == nil {
		writeError(w, http.StatusNotFound, "no member "+strconv.Quote(form.Get("w"))+" in balancer "+b.Name())
		return
	}
	act := form.Get("action")
	set, clear, ok := action(act)
	if !ok {
		writeError(w, http.StatusBadRequest, "action must be drain, disable, enable or weight, not "+strconv.Quote(act))
		return
	}
	me := balancer.MemberEdit{Name: m.Name(), Set: set, Clear: clear}
	if act == "weight" {
		v := strings.TrimSpace(form.Get("lf"))
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, balancer.Invalid("loadfactor", v).Error())
			return
		}
		lf, err := balancer.LoadFactor(f)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		me.LoadFactor = &lf
	}
	if _, err := b.Apply(balancer.Edit{Members: []balancer.MemberEdit{me}}, balancer.ReasonManager); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, balancer.ErrNotMember) {
			status = http.StatusNotFound // removed meanwhile
		}
		writeError(w, status, err.Error())
		return
	}
	logger.Info("balancer live view: member changed", zap.String("balancer", b.Name()),
		zap.String("member", m.Name()), zap.String("action", act), zap.String("lf", form.Get("lf")),
		zap.String("remote", r.RemoteAddr))
	st := m.State()
	writeJSON(w, r, http.StatusOK, map[string]any{
		"balancer": b.Name(), "member": st.Name, "status": strings.TrimSpace(st.Status.String()),
		"flags": st.Status.Letters(), "loadfactor": float64(st.LoadFactor) / 100,
	})
}

// crossSite returns why a change request may come from another site, or "".
// Browsers mark every request with Sec-Fetch-Site and send Origin with every
// POST; a client that sends neither (curl, a script) is not a browser that
// another site could drive, and still needs the nonce.
func crossSite(r *http.Request) string {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return "a change must come from the live view itself (Sec-Fetch-Site: " + s + ")"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(hostPort(u.Host, u.Scheme), hostPort(r.Host, u.Scheme)) {
			return "a change must come from the live view itself (Origin: " + o + ")"
		}
	}
	return ""
}

// hostPort is host with the scheme's default port made explicit, so that
// "example.com" and "example.com:443" compare equal for https.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, nil, status, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
