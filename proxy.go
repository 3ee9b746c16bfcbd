package caddybalancer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/metrics"
)

// stateVarKey is the request variable that carries a request's balancer state
// from ServeHTTP to the upstream source and the transport.
const stateVarKey = "balancer.request_state"

// requestState is one client request's passage through the balancer: every
// member it was given (each holds a busy count until the request ends) and
// what happened on the last attempt.
type requestState struct {
	h      *Handler
	member *balancer.Member
	picked []*balancer.Member
	pick   balancer.Pick

	origPath, origRawPath string
	pathSaved             bool

	frontScheme, frontHost string

	// respBody is the last answer's body; closing it ends the member's part.
	respBody *countingBody

	connectFailed bool
	timedOut      bool
	status        int

	// vars holds the request's {http.balancer.*} placeholders. They are not
	// part of the pooled state: the access log may read them after the
	// request.
	vars *balancerVars
	// repl is the request's replacer, where reverse_proxy leaves the
	// attempt's latencies.
	repl *caddy.Replacer

	// Room for the first attempt's upstream and its pool, and for the list
	// of members picked, so that the common request, one attempt, costs no
	// allocation for them; a further attempt gets a fresh upstream. The
	// upstream may be reused by a later request once this state is back in
	// the pool: Caddy keeps no pointer to it after the attempt (a dial that
	// lost the race to a pooled connection only holds copies of its address).
	// The counting bodies are allocated: net/http may close a request body
	// after the request has ended.
	up        reverseproxy.Upstream
	pool      [1]*reverseproxy.Upstream
	pickedBuf [1]*balancer.Member
	upUsed    bool
}

var statePool = sync.Pool{New: func() any { return new(requestState) }}

// ServeHTTP proxies the request to a member, failing over to another member
// after a failed connection as httpd's proxy_handler does: it goes on while
// the member it tried is no longer usable and fewer than maxattempts further
// attempts were made.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := statePool.Get().(*requestState)
	st.h = h
	st.picked = st.pickedBuf[:0]
	if h.rmap != nil {
		st.frontScheme, st.frontHost = "http", r.Host
		if r.TLS != nil {
			st.frontScheme = "https"
		}
	}
	// caddyhttp.SetVar, with one look-up of the vars map for the state and
	// the placeholders (each look-up walks the request's context chain).
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	st.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	st.vars = requestVars(st.repl, vars)
	if vars != nil {
		vars[stateVarKey] = st
	}
	defer h.finish(st, r)

	var err error
	for attempts := 0; ; attempts++ {
		st.connectFailed, st.timedOut, st.status = false, false, 0
		err = h.Handler.ServeHTTP(w, r, next)
		if err == nil || !st.connectFailed {
			break
		}
		// The connection failed. httpd fails over only if that put the member
		// in error (not with status I) and attempts remain.
		if st.member.Usable() || attempts >= h.bal.MaxAttempts() {
			break
		}
		r = withOwnVars(r)
	}
	if err != nil && st.connectFailed {
		// httpd answers a request whose members could not be reached with 503;
		// reverse_proxy made it a 502, which caddyhttp.Error would keep.
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			he.StatusCode = http.StatusServiceUnavailable
			return he
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	return err
}

// finish runs post-request for the last member and ends every member's part in
// the request.
func (h *Handler) finish(st *requestState, r *http.Request) {
	if st.member != nil && !st.connectFailed {
		st.member.PostRequest(st.status, st.timedOut)
		if st.status != 0 && st.repl != nil {
			observeLatency(st.member, st.repl)
		}
	}
	for i, m := range st.picked {
		if i == len(st.picked)-1 && st.respBody != nil {
			st.respBody.release()
			continue
		}
		m.Release()
	}
	// The request's vars map is not written here (no SetVar(nil)): a dial
	// that net/http started for this request and that lost the race to a
	// pooled connection may still be running, and Caddy's dialer reads
	// that map (reverse_proxy.proxy). The stale entry is never read: only
	// this request's GetUpstreams and RoundTrip look it up.
	*st = requestState{}
	statePool.Put(st)
}

// withOwnVars gives a failover attempt its own copy of the request's vars map.
// reverse_proxy writes to that map each time its ServeHTTP runs
// (prepareRequest), while a dial that net/http started for the previous
// attempt may still be running in the background and reading it (Caddy's
// dialer): with a copy, nothing writes the map those goroutines read. Only the
// failover path pays for the copy.
func withOwnVars(r *http.Request) *http.Request {
	old, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if old == nil {
		return r
	}
	vars := make(map[string]any, len(old)+2)
	for k, v := range old {
		vars[k] = v
	}
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
}

// memberSource is the reverse_proxy upstream source of a balancer: for each
// attempt it asks the balancer for a member and offers reverse_proxy a pool of
// just that member, so the per-request cost on Caddy's side does not grow with
// the number of members.
type memberSource struct{ h *Handler }

// GetUpstreams implements reverseproxy.UpstreamSource.
func (s memberSource) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	st, _ := caddyhttp.GetVar(r.Context(), stateVarKey).(*requestState)
	if st == nil {
		return nil, nil
	}
	b := s.h.bal
	var req *balancer.Request
	if b.Sticky() {
		req = &balancer.Request{URL: stickyURL(b.Name(), r), Cookie: strings.Join(r.Header.Values("Cookie"), ", ")}
	}
	pick, err := b.Pick(r.Context(), req)
	if err != nil {
		// httpd answers 503 (nofailover, no usable member) before it sets
		// any BALANCER_* variable: an earlier attempt's values remain, a
		// first attempt leaves none (docs/behaviour.md §3.1 steps 5, 6 and 8; §3.5).
		st.member = nil
		return nil, nil
	}
	st.member, st.pick = pick.Member, pick
	st.picked = append(st.picked, pick.Member)
	st.vars.set(b, pick)
	// reverse_proxy provisions the upstreams it is given (it writes to
	// them), so each attempt gets its own: the state's for the first.
	if !st.upUsed {
		st.upUsed = true
		st.up.Dial = pick.Member.Dial()
		st.pool[0] = &st.up
		return st.pool[:], nil
	}
	return []*reverseproxy.Upstream{{Dial: pick.Member.Dial()}}, nil
}

// stickyURL is the string httpd searches for the URL session parameter: the
// balancer URL with the %-decoded path and the raw query.
func stickyURL(name string, r *http.Request) string {
	var sb strings.Builder
	sb.Grow(len("balancer://") + len(name) + len(r.URL.Path) + 1 + len(r.URL.RawQuery))
	sb.WriteString("balancer://")
	sb.WriteString(name)
	sb.WriteString(r.URL.Path)
	if r.URL.RawQuery != "" {
		sb.WriteByte('?')
		sb.WriteString(r.URL.RawQuery)
	}
	return sb.String()
}

// balancerVars are a request's {http.balancer.*} placeholders, httpd's
// BALANCER_* variables, as the last pick left them. The replacer reads them
// through one provider registered per request (requestVars) instead of a
// map assignment and an allocation for each value at every pick; the values
// are turned into strings only if a placeholder is used.
type balancerVars struct {
	b            *balancer.Balancer // nil until a member was picked
	workerName   string
	workerRoute  string
	routeChanged bool
	hasSession   bool
	sticky       string
	route        string
}

// varsVarKey is the request variable holding the request's balancerVars, so
// that a request that passes through several balancer handlers has one set of
// placeholders, the last pick's, as with repl.Set.
const varsVarKey = "balancer.placeholders"

// requestVars returns the request's placeholders, registering new ones with
// the request's replacer if the request has none yet. vars is the request's
// vars map.
func requestVars(repl *caddy.Replacer, vars map[string]any) *balancerVars {
	if v, ok := vars[varsVarKey].(*balancerVars); ok {
		return v
	}
	buf := new(balancerVars)
	if repl != nil && vars != nil {
		repl.Map(buf.placeholder)
		vars[varsVarKey] = buf
	}
	return buf
}

// set records a pick: name, worker_name, worker_route, route_changed (set or
// removed) and, if the request has a route, session_sticky and session_route.
func (v *balancerVars) set(b *balancer.Balancer, p balancer.Pick) {
	v.b, v.workerName, v.workerRoute, v.routeChanged = b, p.Member.Name(), p.WorkerRoute, p.RouteChanged
	if p.HasRoute {
		v.hasSession, v.sticky, v.route = true, p.StickyName, p.Route
	}
}

// placeholder is the replacer's provider for {http.balancer.*}.
func (v *balancerVars) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "http.balancer.")
	if !ok {
		return nil, false
	}
	switch {
	case v.b != nil && name == "name":
		return "balancer://" + v.b.Name(), true
	case v.b != nil && name == "worker_name":
		return v.workerName, true
	case v.b != nil && name == "worker_route":
		return v.workerRoute, true
	case v.b != nil && name == "route_changed" && v.routeChanged:
		return "1", true
	case v.hasSession && name == "session_sticky":
		return v.sticky, true
	case v.hasSession && name == "session_route":
		return v.route, true
	}
	return nil, false
}

// memberTransport wraps the reverse_proxy transport: it sends each attempt to
// its member's scheme and path, applies the member's timeout, counts bytes,
// records connection failures and the response status for the balancer, and
// the attempt's outcome and latencies for the metrics (metrics.Recorder).
type memberTransport struct {
	inner http.RoundTripper
}

func newMemberTransport(inner http.RoundTripper) http.RoundTripper {
	return &memberTransport{inner: inner}
}

// errMemberTimeout is returned when a member's timeout passes before its
// response headers arrive; the client gets 502, as from httpd.
var errMemberTimeout = errors.New("member timed out")

// RoundTrip implements http.RoundTripper.
func (t *memberTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := caddyhttp.GetVar(req.Context(), stateVarKey).(*requestState)
	if st == nil || st.member == nil {
		return t.inner.RoundTrip(req)
	}
	m := st.member
	req.URL.Scheme = m.Scheme()
	if st.h.memberHost {
		req.Host = m.HostHeader()
	}
	if p := m.Path(); p != "" {
		if !st.pathSaved {
			st.origPath, st.origRawPath, st.pathSaved = req.URL.Path, req.URL.RawPath, true
		}
		req.URL.Path = m.DecodedPath() + st.origPath
		if st.origRawPath != "" {
			req.URL.RawPath = p + st.origRawPath
		} else {
			req.URL.RawPath = ""
		}
	}
	req, timer := withMemberTimeout(req, m.Timeout(), st)
	var sent int64 = requestHeadSize(req)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &countingBody{ReadCloser: req.Body, m: m, to: true}
	}
	rec := metrics.For(m)
	resp, err := t.inner.RoundTrip(req)
	if timer != nil && !timer.stop() {
		st.timedOut = true
		rec.Outcome(metrics.OutcomeTimeout)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		m.AddTraffic(sent, 0)
		return nil, errMemberTimeout
	}
	if err != nil {
		if timer != nil {
			timer.cancel()
		}
		var de reverseproxy.DialError
		if errors.As(err, &de) {
			st.connectFailed = true
			rec.Outcome(metrics.OutcomeConnectFailure)
			m.ConnectFailed()
		} else {
			rec.Outcome(failureOutcome(req, err))
		}
		return nil, err
	}
	rec.Outcome(metrics.StatusOutcome(resp.StatusCode))
	m.ConnectOK()
	st.status = resp.StatusCode
	h := st.h
	if h.RouteCookie != nil && st.pick.RouteChanged {
		if c := routeCookie(h.RouteCookie, h.bal.StickyCookie(), st.pick.WorkerRoute); c != "" {
			resp.Header.Add("Set-Cookie", c)
		}
	}
	if h.rmap != nil {
		h.rmap.Apply(resp, h.bal, st.frontScheme, st.frontHost)
	}
	m.AddTraffic(sent, int64(len(resp.Proto)+1+len(resp.Status)))
	if conn, ok := resp.Body.(io.ReadWriteCloser); ok {
		// 101 Switching Protocols: the body is the member's upgraded
		// connection, which reverse_proxy needs writable.
		ub := &upgradedBody{countingBody: countingBody{ReadCloser: resp.Body, m: m, done: timer}, conn: conn}
		st.respBody = &ub.countingBody
		resp.Body = ub
		return resp, nil
	}
	cb := &countingBody{ReadCloser: resp.Body, m: m, done: timer}
	st.respBody = cb
	resp.Body = cb
	return resp, nil
}

// requestHeadSize estimates the request line and header bytes sent.
func requestHeadSize(req *http.Request) int64 {
	n := len(req.Method) + 1 + requestURILen(req.URL) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(req.Host) + 2
	for k, vs := range req.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return int64(n)
}

// requestURILen is len(u.RequestURI()) without building the string (which
// allocates) for the usual request URI, path and query.
func requestURILen(u *url.URL) int {
	if u.Opaque != "" {
		return len(u.RequestURI())
	}
	n := len(u.EscapedPath())
	if n == 0 {
		n = 1 // "/"
	}
	if u.ForceQuery || u.RawQuery != "" {
		n += 1 + len(u.RawQuery)
	}
	return n
}

// observeLatency records the latencies of the attempt that got m's answer,
// as reverse_proxy measured them around its call of the transport: the time to
// the response headers ({http.reverse_proxy.upstream.latency}) and to the end
// of the answer passed on to the client ({http.reverse_proxy.upstream.duration},
// not set for an upgraded connection or an answer handled by handle_response).
// Taking Caddy's figures costs two replacer look-ups instead of three clock
// reads, the dearer on virtual machines.
func observeLatency(m *balancer.Member, repl *caddy.Replacer) {
	rec := metrics.For(m)
	if v, ok := repl.Get("http.reverse_proxy.upstream.latency"); ok {
		if d, ok := v.(time.Duration); ok {
			rec.Headers(d)
		}
	}
	if v, ok := repl.Get("http.reverse_proxy.upstream.duration"); ok {
		if d, ok := v.(time.Duration); ok {
			rec.Exchange(d)
		}
	}
}

// failureOutcome classifies an attempt that connected (or never had to) but
// got no answer: the client went away, a timeout, or another error.
func failureOutcome(req *http.Request, err error) metrics.Outcome {
	if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
		return metrics.OutcomeCanceled
	}
	var ne interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return metrics.OutcomeTimeout
	}
	return metrics.OutcomeError
}

// countingBody counts the bytes of a request or response body.
type countingBody struct {
	io.ReadCloser
	m    *balancer.Member
	to   bool
	done *headerTimer
	// released: the member's busy count was decremented for this answer.
	released atomic.Bool
}

// release ends the member's part in the request, once. It runs when the
// answer's body is closed, before the response is flushed to the client, so a
// client's next request sees the member idle again (bybusyness).
func (c *countingBody) release() {
	if c.released.CompareAndSwap(false, true) {
		c.m.Release()
	}
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		if c.to {
			c.m.AddTraffic(int64(n), 0)
		} else {
			c.m.AddTraffic(0, int64(n))
		}
	}
	return n, err
}

func (c *countingBody) Close() error {
	err := c.ReadCloser.Close()
	if !c.to {
		c.release()
	}
	if c.done != nil {
		c.done.cancel()
	}
	return err
}

// headerTimer cancels an attempt whose member has not sent its response
// headers within the member's timeout (httpd's worker `timeout`).
type headerTimer struct {
	t      *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

// stop reports whether the timer was stopped before it fired.
func (h *headerTimer) stop() bool {
	h.t.Stop()
	return !h.fired.Load()
}

func withMemberTimeout(req *http.Request, d time.Duration, st *requestState) (*http.Request, *headerTimer) {
	if d <= 0 {
		return req, nil
	}
	ctx, cancel := context.WithCancel(req.Context())
	ht := &headerTimer{cancel: cancel}
	ht.t = time.AfterFunc(d, func() {
		ht.fired.Store(true)
		cancel()
	})
	return req.WithContext(ctx), ht
}

// routeCookie returns the Set-Cookie value for the route cookie, or "".
func routeCookie(rc *config.RouteCookie, cookieName, route string) string {
	if rc == nil || cookieName == "" || route == "" {
		return ""
	}
	attrs := rc.Attributes
	if attrs == "" {
		attrs = "path=/"
	}
	return cookieName + "=." + route + "; " + attrs
}

// upgradedBody is the body of a 101 Switching Protocols answer (WebSocket or
// any other HTTP Upgrade): the member's upgraded connection, which
// reverse_proxy uses as the member's end of the tunnel. reverse_proxy needs it
// to be an io.ReadWriteCloser, and half-closes it with CloseWrite when the
// client ends its direction, so both are kept.
//
// What it counts is what httpd 2.4 counts: the upgrade request's head and the
// 101 status line, as for any request and answer, and none of the bytes of
// the upgraded protocol. httpd's tunnel (ap_proxy_tunnel_run, for
// mod_proxy_http and mod_proxy_wstunnel) keeps per-connection counts but adds
// nothing to the worker's transferred and read (checked against httpd
// 2.4.71: a 100 kB WebSocket echo left To and From as they were after the
// upgrade), so bytraffic and the manager's To/From agree with httpd's.
//
// The member stays busy (bybusyness, the manager's Busy column) while the
// tunnel is open, as in httpd. Its busy count is released once: when reverse_proxy closes
// the connection at the end of the tunnel, or when the balancer handler
// returns if that comes first, which it does only after both directions of
// the tunnel have ended (reverse_proxy returns after its copies finish and
// closes the member's connection in the background).
type upgradedBody struct {
	countingBody // Close releases the member once
	conn         io.ReadWriteCloser
}

// Read reads from the member's connection; tunnelled bytes are not counted.
func (u *upgradedBody) Read(p []byte) (int, error) { return u.conn.Read(p) }

// Write writes to the member's connection; tunnelled bytes are not counted.
func (u *upgradedBody) Write(p []byte) (int, error) { return u.conn.Write(p) }

// CloseWrite half-closes the member's connection, as net/http's body for a
// 101 answer does; reverse_proxy calls it when the client has sent its last
// byte.
func (u *upgradedBody) CloseWrite() error {
	if cw, ok := u.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return http.ErrNotSupported
}

// Interface guards
var (
	_ http.RoundTripper               = (*memberTransport)(nil)
	_ io.ReadWriteCloser              = (*upgradedBody)(nil)
	_ interface{ CloseWrite() error } = (*upgradedBody)(nil)
)
