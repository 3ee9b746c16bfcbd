package balancer

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultRetry is PROXY_WORKER_DEFAULT_RETRY: how long a member stays in error
// (E) before it is tried again.
const DefaultRetry = 60 * time.Second

// MemberConfig is one BalancerMember as configured.
type MemberConfig struct {
	// URL of the member: scheme://host[:port][/path].
	URL string
	// LoadFactor ×100 (httpd's lbfactor): 100 (loadfactor=1) … 10000. 0 means 100.
	LoadFactor int
	// LBSet is the member's tier, 0…99; lower sets are tried first.
	LBSet int
	// Route is the sticky-session route of the member.
	Route string
	// Redirect is the route to use for sticky requests when this member is unusable.
	Redirect string
	// Status holds the flags given with `status=`, applied to Initialized.
	Status Status
	// StatusClear holds flags cleared with `status=-X` (only Initialized matters: httpd
	// overrides it at init, so it is ignored).
	StatusClear Status
	// Retry is how long E lasts before the member is retried; nil means 60s.
	Retry *time.Duration
	// Timeout is the member's read timeout (httpd `timeout`); 0 means none of our own.
	Timeout time.Duration
	// HealthCheck holds the mod_proxy_hcheck settings.
	HealthCheck HealthCheck
	// SlowStart is the member's own slow-start window (slowstart.go); nil
	// means the balancer's (Config.SlowStart), 0 turns it off for the member.
	SlowStart *time.Duration
}

// HealthCheck is a member's mod_proxy_hcheck configuration.
type HealthCheck struct {
	Method   string        `json:"hcmethod,omitempty"`
	URI      string        `json:"hcuri,omitempty"`
	Interval time.Duration `json:"hcinterval,omitempty"`
	Passes   int           `json:"hcpasses,omitempty"`
	Fails    int           `json:"hcfails,omitempty"`
	Expr     string        `json:"hcexpr,omitempty"`
}

// Member is a balancer member (httpd's proxy_worker). Fields without a
// comment are guarded by the balancer's mutex; counters that are read on the
// hot path without the lock are atomics.
type Member struct {
	// The fields the chooser and the sticky lookup read for every member come
	// first, so that one selection touches few cache lines per member.
	status   Status
	draining atomic.Bool // status&Drain, for Release without the lock (drain.go)
	lbset    int
	lbfactor int
	lbstatus int64
	busy     atomic.Int64
	routeKey uint64       // routeKeyOf(route), set with route by setRoute
	transfer atomic.Int64 // bytes sent to the member
	read     atomic.Int64 // bytes read from the member
	// trafficBias is added to the member's traffic by bytraffic: 0 unless
	// the member went through a slow start; rampWeight is its weight while
	// it ramps up, 0 otherwise (slowstart.go).
	trafficBias int64
	rampWeight  int
	route       string

	b *Balancer

	// name is the normalized URL, httpd's worker name.
	name     string
	scheme   string
	hostname string
	port     string
	path     string
	pathDec  string
	hostHdr  string
	dial     string

	cfg     MemberConfig // as configured; compared on reload
	dynamic bool         // added at run time

	redirect string
	retry    time.Duration
	timeout  time.Duration
	hc       HealthCheck
	pcount   int
	fcount   int
	hcs      hcState // health-check bookkeeping (hcheck.go)

	index     int          // position in the balancer's members when last looked up (Index)
	errorTime atomic.Int64 // unix nanoseconds, 0 = never
	retries   atomic.Int64
	elected   atomic.Int64

	// attachment is what the balancer's owner keeps with the member
	// (Attach): the plugin's per-member metrics recorder.
	attachment atomic.Value
	ramp       rampState // slow start (slowstart.go)
	// drainCh is closed when the draining member empties; drainSeen is
	// elected+1 when that was last reported (drain.go).
	drainCh   chan struct{}
	drainSeen int64
}

// NormalizeURL returns httpd's worker name for a member URL and its parts: the
// scheme and host lower-cased, the scheme's default port dropped, the path kept
// as written (ap_proxy_define_worker_ex). It returns the dial address host:port.
func NormalizeURL(raw string) (name, scheme, host, port, path, dial string, err error) {
	fail := func(why string) (string, string, string, string, string, string, error) {
		return "", "", "", "", "", "", fmt.Errorf("%w %q: %s", ErrInvalidMember, raw, why)
	}
	if !strings.Contains(raw, "://") {
		return fail("it has no scheme; write http://" + raw + " (or https://)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail(err.Error())
	}
	scheme = strings.ToLower(u.Scheme)
	var defPort string
	switch scheme {
	case "http":
		defPort = "80"
	case "https":
		defPort = "443"
	default:
		return fail("the scheme must be http or https")
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || u.RawQuery != "" || u.Opaque != "" {
		return fail("want scheme://host[:port][/path]")
	}
	host = strings.ToLower(u.Hostname())
	if host == "" {
		return fail("no host")
	}
	port = u.Port()
	if port == "" {
		port = defPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail("the port must be a number from 1 to 65535")
	}
	hostport := host
	if strings.Contains(host, ":") {
		hostport = "[" + host + "]"
	}
	name = scheme + "://" + hostport
	if port != defPort {
		name += ":" + port
	}
	path = u.EscapedPath()
	name += path
	dial = net.JoinHostPort(host, port)
	return name, scheme, host, port, path, dial, nil
}

func newMember(b *Balancer, mc MemberConfig) (*Member, error) {
	name, scheme, host, port, path, dial, err := NormalizeURL(mc.URL)
	if err != nil {
		return nil, err
	}
	if err := mc.validate(); err != nil {
		return nil, err
	}
	m := &Member{b: b, name: name, scheme: scheme, hostname: host, port: port, path: path, dial: dial}
	m.pathDec, _ = url.PathUnescape(path)
	m.hostHdr = strings.TrimPrefix(name[:len(name)-len(path)], scheme+"://")
	m.applyConfig(mc)
	return m, nil
}

// applyConfig (re)sets the configured parameters and the flags.
func (m *Member) applyConfig(mc MemberConfig) {
	m.cfg = mc
	m.lbfactor = mc.LoadFactor
	if m.lbfactor == 0 {
		m.lbfactor = 100
	}
	m.lbset = mc.LBSet
	m.setRoute(mc.Route)
	m.redirect = mc.Redirect
	m.status = Initialized | mc.Status
	m.draining.Store(m.status&Drain != 0)
	m.retry = DefaultRetry
	if mc.Retry != nil {
		m.retry = *mc.Retry
	}
	m.timeout = mc.Timeout
	m.hc = mc.HealthCheck
}

// Name is the normalized member URL (httpd's worker name).
func (m *Member) Name() string { return m.name }

// Dial is the member's host:port.
func (m *Member) Dial() string { return m.dial }

// Scheme is http or https.
func (m *Member) Scheme() string { return m.scheme }

// Path is the URL path of the member, prefixed to every proxied path; may be empty.
func (m *Member) Path() string { return m.path }

// HostHeader is the Host header httpd sends to the member (ProxyPreserveHost
// Off): its host, with the port unless it is the scheme's default.
func (m *Member) HostHeader() string { return m.hostHdr }

// DecodedPath is Path with its %-escapes decoded.
func (m *Member) DecodedPath() string { return m.pathDec }

// Timeout is the member's own read timeout, 0 if none.
func (m *Member) Timeout() time.Duration { return m.timeout }

// Balancer returns the member's balancer.
func (m *Member) Balancer() *Balancer { return m.b }

// Attachment returns the value attached to the member with Attach, nil if
// none. It is one atomic load: the request path reads it for every attempt.
func (m *Member) Attachment() any { return m.attachment.Load() }

// Attach attaches v to the member unless a value is attached already, and
// returns the value attached (v, or the one that was there). The engine never
// reads it: it lets the balancer's owner keep per-member data with the member,
// so that it lives and goes with the member (added, removed, replaced by a
// reload that changed its configuration) and is found without a look-up. All
// values attached to members must have the same concrete type.
func (m *Member) Attach(v any) any {
	if m.attachment.CompareAndSwap(nil, v) {
		return v
	}
	return m.attachment.Load()
}

// AddTraffic counts bytes sent to (to) and read from (from) the member, for
// bytraffic and the manager's To/From columns.
func (m *Member) AddTraffic(to, from int64) {
	if to != 0 {
		m.transfer.Add(to)
	}
	if from != 0 {
		m.read.Add(from)
	}
}

func (m *Member) isUsable() bool { return m.status.Usable() }

// retryWorker is ap_proxy_retry_worker: lift E when the member is examined, if
// it is not stopped and either ignores errors or its retry period has passed
// (strictly). Caller holds the lock.
func (m *Member) retryWorker(now *clock) {
	if m.status&InError == 0 || m.status&Stopped != 0 {
		return
	}
	if m.status&IgnoreErrors != 0 || now.unixNano() > m.errorTime.Load()+int64(m.retry) {
		old := m.status
		m.status &^= InError
		m.retries.Add(1)
		m.b.noteChange(m, old, ReasonRetry)
	}
}

// setRoute sets the member's route and its key. Caller holds the lock (or
// owns the member).
func (m *Member) setRoute(r string) {
	m.route, m.routeKey = r, routeKeyOf(r)
}

// routeKeyOf packs a route's length and its last seven bytes (where routes
// such as node1, node2 differ) into a number kept next to the member's other
// hot fields: findRouteWorker compares the keys and reads the route's bytes,
// which are elsewhere in memory, only when they are equal.
func routeKeyOf(r string) uint64 {
	k := uint64(len(r)) << 56
	for i := 0; i < 7 && i < len(r); i++ {
		k |= uint64(r[len(r)-1-i]) << (8 * i)
	}
	return k
}

// clock is the time of one selection, read from Balancer.Now at most once and
// only when a member in error is examined: a healthy balancer's selection does
// not read the clock at all (time.Now costs as much as the rest of a
// selection on some virtual machines).
type clock struct {
	b   *Balancer
	ns  int64
	set bool
}

func (c *clock) unixNano() int64 {
	if !c.set {
		c.ns, c.set = c.b.Now().UnixNano(), true
	}
	return c.ns
}
