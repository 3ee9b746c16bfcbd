package caddybalancer

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/lbset/caddy-balancer/balancer"
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
}

var statePool = sync.Pool{New: func() any { return new(requestState) }}

// ServeHTTP proxies the request to a member, failing over to another member
// after a failed connection as httpd's proxy_handler does: it goes on while
// the member it tried is no longer usable and fewer than maxattempts further
// attempts were made.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := statePool.Get().(*requestState)
	st.h = h
	if h.rmap != nil {
		st.frontScheme, st.frontHost = "http", r.Host
		if r.TLS != nil {
			st.frontScheme = "https"
		}
	}
	caddyhttp.SetVar(r.Context(), stateVarKey, st)
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
	}
	for i, m := range st.picked {
		if i == len(st.picked)-1 && st.respBody != nil {
			st.respBody.release()
			continue
		}
		m.Release()
	}
	caddyhttp.SetVar(r.Context(), stateVarKey, nil)
	*st = requestState{picked: st.picked[:0]}
	statePool.Put(st)
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
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if err != nil {
		// httpd answers 503 (nofailover, no usable member) before it sets
		// any BALANCER_* variable: an earlier attempt's values remain, a
		// first attempt leaves none (spec §3.1 steps 5, 6 and 8; §3.5).
		st.member = nil
		return nil, nil
	}
	st.member, st.pick = pick.Member, pick
	st.picked = append(st.picked, pick.Member)
	if repl != nil {
		setPlaceholders(repl, b, pick)
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

// setPlaceholders sets {http.balancer.*}, httpd's BALANCER_* variables.
func setPlaceholders(repl *caddy.Replacer, b *balancer.Balancer, p balancer.Pick) {
	repl.Set("http.balancer.name", "balancer://"+b.Name())
	repl.Set("http.balancer.worker_name", p.Member.Name())
	repl.Set("http.balancer.worker_route", p.WorkerRoute)
	if p.RouteChanged {
		repl.Set("http.balancer.route_changed", "1")
	} else {
		repl.Delete("http.balancer.route_changed")
	}
	if p.HasRoute {
		repl.Set("http.balancer.session_sticky", p.StickyName)
		repl.Set("http.balancer.session_route", p.Route)
	}
}

// memberTransport wraps the reverse_proxy transport: it sends each attempt to
// its member's scheme and path, applies the member's timeout, counts bytes and
// records connection failures and the response status for the balancer.
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
	resp, err := t.inner.RoundTrip(req)
	if timer != nil && !timer.stop() {
		st.timedOut = true
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
			m.ConnectFailed()
		}
		return nil, err
	}
	m.ConnectOK()
	st.status = resp.StatusCode
	h := st.h
	if h.RouteCookie != nil && st.pick.RouteChanged {
		if c := routeCookie(h.RouteCookie, h.bal.StickyCookie(), st.pick.WorkerRoute); c != "" {
			resp.Header.Add("Set-Cookie", c)
		}
	}
	if h.rmap != nil {
		h.rmap.apply(resp, h.bal, st.frontScheme, st.frontHost)
	}
	m.AddTraffic(sent, int64(len(resp.Proto)+1+len(resp.Status)))
	cb := &countingBody{ReadCloser: resp.Body, m: m, done: timer}
	st.respBody = cb
	resp.Body = cb
	return resp, nil
}

// requestHeadSize estimates the request line and header bytes sent.
func requestHeadSize(req *http.Request) int64 {
	n := len(req.Method) + 1 + len(req.URL.RequestURI()) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(req.Host) + 2
	for k, vs := range req.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return int64(n)
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

// Interface guards
var _ http.RoundTripper = (*memberTransport)(nil)
