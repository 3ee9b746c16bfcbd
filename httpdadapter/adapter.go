// Package httpdadapter is the `httpd` config adapter: `caddy adapt --adapter httpd --config
// httpd.conf` and `caddy run --adapter httpd --config httpd.conf` turn the
// reverse-proxy part of an Apache httpd 2.4 configuration into Caddy JSON
// that uses this plugin's balancer and balancer_manager handlers.
//
// adapter.go reads the directives into a model of httpd's servers
// (the main server and the <VirtualHost>s), their ProxyPass rules, balancers,
// <Location> and <Proxy> sections; emit.go writes the model as
// Caddy JSON; parse.go reads the files. Whatever is not
// translated is reported as a warning naming file, line and directive; what
// would change how requests are proxied and cannot be expressed is an error.
package httpdadapter

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/manager"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

// Adapter adapts an Apache httpd 2.4 configuration (its reverse-proxy
// directives) to Caddy JSON.
type Adapter struct{}

// Adapt converts the httpd configuration in body to Caddy JSON. The option
// "filename" names the file (relative Include paths are relative to
// ServerRoot, by default the directory of that file).
func (Adapter) Adapt(body []byte, options map[string]any) ([]byte, []caddyconfig.Warning, error) {
	var warnings []caddyconfig.Warning
	filename, _ := options["filename"].(string)
	root, _ := os.Getwd()
	name := "httpd.conf"
	if filename != "" && filename != "-" {
		name = filename
		if abs, err := filepath.Abs(filename); err == nil {
			root = filepath.Dir(abs)
		}
	}
	r := newHdReader(root, &warnings)
	if ev := r.debianEnvvars(filepath.Join(root, filepath.Base(name))); ev != nil {
		r.env = ev.lookup
	}
	dirs, err := r.parse(name, body)
	if err != nil {
		return nil, warnings, err
	}
	c := newHdConfig(&warnings)
	c.mainFile = name
	if err := c.interpret(dirs); err != nil {
		return nil, warnings, err
	}
	out, err := c.emit()
	hdSortWarnings(warnings, r.files)
	if err != nil {
		return nil, warnings, err
	}
	if w, ok := c.summary(); ok {
		warnings = append(warnings, w)
	}
	return out, warnings, nil
}

// hdSortWarnings orders warnings as the configuration is read: by file (in
// the order the files were read), then by line.
func hdSortWarnings(ws []caddyconfig.Warning, files []string) {
	idx := map[string]int{}
	for i, f := range files {
		if _, ok := idx[f]; !ok {
			idx[f] = i
		}
	}
	sort.SliceStable(ws, func(i, j int) bool {
		fi, fj := idx[ws[i].File], idx[ws[j].File]
		if fi != fj {
			return fi < fj
		}
		return ws[i].Line < ws[j].Line
	})
}

// hdPos is where a directive is.
type hdPos struct {
	File, Directive string
	Line            int
}

func posOf(d *hdDirective) hdPos { return hdPos{File: d.File, Line: d.Line, Directive: d.display()} }

func (p hdPos) errf(format string, args ...any) error {
	return &hdError{File: p.File, Line: p.Line, Directive: p.Directive, Msg: fmt.Sprintf(format, args...)}
}

// hdConfig is the model of the configuration.
type hdConfig struct {
	warnings *[]caddyconfig.Warning
	mainFile string
	// quiet counts what is left out without effect on proxying, by
	// directive, for the summary warning (notes.go).
	quiet      map[string]int
	quietOrder []string
	main       *hdScope
	vhosts     []*hdScope
	listens    []hdListen
	// balancers in order of first mention; names are unique per scope.
	balancers []*hdBalancer
	hcExprs   map[string]string
	hcTmpls   map[string]*hdHCTemplate
	// plainWorkers holds ProxySet parameters of stand-alone workers, by URL.
	plainWorkers map[string]*hdWorkerParams
}

// hdListen is one Listen directive.
type hdListen struct {
	pos        hdPos
	host, port string
	https      bool
}

// hdScope is the main server or one <VirtualHost>.
type hdScope struct {
	vhost  bool
	pos    hdPos
	index  int      // vhost number, from 1
	addrs  []hdAddr // <VirtualHost> addresses
	names  []string // ServerName and ServerAliases
	passes []*hdPass
	// reverse rules and cookie rules outside <Location>
	reverses     []*hdReverse
	cookieDomain []hdCookieRule
	cookiePath   []hdCookieRule
	locations    []*hdLocation
	proxies      []*hdProxySect
	headers      []*hdHeaderOp
	preserveHost *bool
	addHeaders   *bool
	proxyTimeout time.Duration
	coreTimeout  time.Duration
	persist      *bool
	balInherit   *bool
	ppInherit    *bool
	balancers    map[string]*hdBalancer
	tls          *hdTLSFiles
	sslEngine    *hdPos
}

// hdAddr is one <VirtualHost> address; host "*" is any address, port "*" any port.
type hdAddr struct{ host, port string }

// hdPass is one ProxyPass or ProxyPassMatch (or ProxyPass in a <Location>).
type hdPass struct {
	pos      hdPos
	scope    *hdScope
	loc      *hdLocation // set for ProxyPass inside <Location>
	fake     string      // URL path prefix, or the regular expression
	regex    bool
	exclude  bool         // ProxyPass path !
	balName  string       // target balancer name (lower case), or ""
	realPath string       // path of the target after host or balancer name
	dyn      *hdDynTarget // a balancer known per request (balancerurl.go), or nil
	target   *url.URL
	worker   hdWorkerParams // plain worker parameters (timeout, connectiontimeout)
}

// hdWorkerParams are the parameters of a stand-alone worker that Caddy's
// reverse_proxy can take.
type hdWorkerParams struct {
	timeout, connTimeout time.Duration
}

// hdReverse is one ProxyPassReverse.
type hdReverse struct {
	pos     hdPos
	fake    string
	real    string
	balName string // real is balancer://balName[part]
	part    string
}

type hdCookieRule struct {
	pos  hdPos
	rule proxypassreverse.CookieRule
}

// hdLocation is one <Location> or <LocationMatch>.
type hdLocation struct {
	pos          hdPos
	path         string
	regex        bool
	handler      string
	handlerPos   hdPos
	access       *hdAccess
	pass         *hdPass
	reverses     []*hdReverse
	cookieDomain []hdCookieRule
	cookiePath   []hdCookieRule
	headers      []*hdHeaderOp
}

// hdProxySect is one <Proxy> or <ProxyMatch> with something besides
// BalancerMember and ProxySet: access control or headers.
type hdProxySect struct {
	pos     hdPos
	pattern string
	regex   bool
	access  *hdAccess
	headers []*hdHeaderOp
}

// hdBalancer is one balancer://name of one scope.
type hdBalancer struct {
	name      string // httpd's name, lower case
	caddyName string
	scope     *hdScope
	pos       hdPos
	h         config.Balancer // parameters and members
	memberPos map[string]hdPos
	// connTimeout is the largest member connectiontimeout.
	connTimeout       time.Duration
	connTimeoutVaries bool
	params            []hdParam // balancer parameters in order, for merging
	used              bool
	emitted           bool
	alias             *hdBalancer // a vhost reference merged into the main server's balancer
}

type hdParam struct {
	pos      hdPos
	key, val string
}

type hdHCTemplate struct {
	m config.Member // method, interval, passes, fails, uri, expr
}

type hdTLSFiles struct {
	pos       hdPos
	cert, key string
	tag       string
}

func newHdConfig(warnings *[]caddyconfig.Warning) *hdConfig {
	c := &hdConfig{
		warnings:     warnings,
		hcExprs:      map[string]string{},
		hcTmpls:      map[string]*hdHCTemplate{},
		plainWorkers: map[string]*hdWorkerParams{},
	}
	c.main = &hdScope{balancers: map[string]*hdBalancer{}}
	return c
}

func (c *hdConfig) warn(p hdPos, format string, args ...any) {
	*c.warnings = append(*c.warnings, caddyconfig.Warning{File: p.File, Line: p.Line, Directive: p.Directive, Message: fmt.Sprintf(format, args...)})
}

// interpret reads the top-level directives (the main server).
func (c *hdConfig) interpret(dirs []*hdDirective) error {
	if err := c.server(dirs, c.main); err != nil {
		return err
	}
	return c.resolveBalancers()
}

// hdReadTimeDirectives were acted on while reading; nothing more to do.
var hdReadTimeDirectives = map[string]bool{
	"define": true, "undefine": true, "serverroot": true, "loadmodule": true,
}

// server reads the directives of the main server or a <VirtualHost>.
func (c *hdConfig) server(dirs []*hdDirective, s *hdScope) error {
	for _, d := range dirs {
		if err := c.serverDirective(d, s); err != nil {
			return err
		}
	}
	return nil
}

// hdScopeFlags are the On|Off directives whose value the scope only records.
var hdScopeFlags = map[string]func(s *hdScope) **bool{
	"balancerpersist":   func(s *hdScope) **bool { return &s.persist },
	"balancerinherit":   func(s *hdScope) **bool { return &s.balInherit },
	"proxypassinherit":  func(s *hdScope) **bool { return &s.ppInherit },
	"proxypreservehost": func(s *hdScope) **bool { return &s.preserveHost },
	"proxyaddheaders":   func(s *hdScope) **bool { return &s.addHeaders },
}

func (c *hdConfig) serverDirective(d *hdDirective, s *hdScope) error {
	p := posOf(d)
	ln := d.lname()
	if field, ok := hdScopeFlags[ln]; ok && !d.Section {
		v, err := hdOnOff(d)
		if err != nil {
			return err
		}
		*field(s) = &v
		return nil
	}
	if d.Section {
		switch ln {
		case "virtualhost":
			if s.vhost {
				return p.errf("<VirtualHost> cannot occur within <VirtualHost> section")
			}
			return c.vhostSection(d)
		case "location", "locationmatch":
			return c.locationSection(d, s)
		case "proxy", "proxymatch":
			return c.proxySection(d, s)
		case "directory", "directorymatch", "files", "filesmatch":
			c.summarize(d)
			return nil
		case "if", "elseif", "else":
			if hdHasAccess(d.Body) {
				return p.errf("access control inside <%s> cannot be translated (Caddy has no equivalent of httpd's expression sections); move it out or rewrite it with Caddy matchers", d.Name)
			}
			c.warnSkippedSection(d, "expression sections are not translated")
			return nil
		default:
			c.warnSkippedSection(d, "this section is not translated")
			return nil
		}
	}
	if hdReadTimeDirectives[ln] {
		return nil
	}
	switch ln {
	case "listen":
		return c.listen(d, s)
	case "servername":
		if len(d.Args) != 1 {
			return p.errf("takes one argument")
		}
		if s.vhost {
			s.names = append([]string{hdHostOnly(d.Args[0])}, s.names...)
		}
		return nil
	case "serveralias":
		if !s.vhost {
			return p.errf("ServerAlias only used in <VirtualHost>")
		}
		for _, a := range d.Args {
			s.names = append(s.names, hdHostOnly(a))
		}
		return nil
	case "proxypass", "proxypassmatch":
		pass, err := c.parsePass(d, s, nil)
		if err != nil {
			return err
		}
		s.passes = append(s.passes, pass)
		return nil
	case "proxypassreverse":
		r, err := c.parseReverse(d, nil)
		if err != nil {
			return err
		}
		s.reverses = append(s.reverses, r)
		return nil
	case "proxypassreversecookiedomain", "proxypassreversecookiepath":
		r, err := c.parseCookieRule(d, nil)
		if err != nil {
			return err
		}
		if ln == "proxypassreversecookiedomain" {
			s.cookieDomain = append(s.cookieDomain, r)
		} else {
			s.cookiePath = append(s.cookiePath, r)
		}
		return nil
	case "balancermember":
		if len(d.Args) < 2 {
			return p.errf("BalancerMember must define balancer name when outside <Proxy > section")
		}
		return c.balancerMember(d, s, d.Args[0], d.Args[1:])
	case "proxyset":
		if len(d.Args) < 1 {
			return p.errf("takes a URL and key=value parameters")
		}
		return c.proxySet(d, s, d.Args[0], d.Args[1:], false)
	case "balancergrowth":
		if len(d.Args) != 1 {
			return p.errf("takes one number")
		}
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < 0 || n > 1000 {
			return p.errf("BalancerGrowth must be between 0 and 1000")
		}
		// Extra balancer slots in shared memory: no visible effect in httpd 2.4.
		return nil
	case "proxytimeout":
		t, err := hdSeconds(d)
		if err != nil {
			return err
		}
		s.proxyTimeout = t
		return nil
	case "timeout":
		t, err := hdSeconds(d)
		if err != nil {
			return err
		}
		s.coreTimeout = t
		return nil
	case "proxyrequests":
		v, err := hdOnOff(d)
		if err != nil {
			return err
		}
		if v {
			return p.errf("forward proxying (ProxyRequests On) cannot be translated; Caddy's reverse_proxy is a reverse proxy only")
		}
		return nil
	case "proxyremote", "proxyremotematch":
		return p.errf("forwarding to another proxy (%s) cannot be translated; Caddy's reverse_proxy has no upstream proxy chaining by URL pattern", d.Name)
	case "proxyhcexpr":
		return c.hcExpr(d)
	case "proxyhctemplate":
		return c.hcTemplate(d)
	case "header", "requestheader":
		op, err := c.parseHeader(d)
		if err != nil || op == nil {
			return err
		}
		s.headers = append(s.headers, op)
		return nil
	case "rewriterule":
		return c.rewriteRule(d)
	case "sslengine":
		v, err := hdOnOff(d)
		if err != nil {
			return err
		}
		if v {
			s.sslEngine = &p
			if s.tls == nil {
				s.tls = &hdTLSFiles{pos: p}
			}
		} else {
			s.sslEngine = nil
		}
		return nil
	case "sslcertificatefile", "sslcertificatekeyfile":
		if len(d.Args) != 1 {
			return p.errf("takes one file name")
		}
		if s.tls == nil {
			s.tls = &hdTLSFiles{pos: p}
		}
		if ln == "sslcertificatefile" {
			if s.tls.cert != "" {
				c.warn(p, "only one certificate per server is translated; this one replaces the previous one")
			}
			s.tls.cert = d.Args[0]
		} else {
			s.tls.key = d.Args[0]
		}
		return nil
	case "sslproxyengine":
		// https members work in Caddy without it.
		return nil
	case "sethandler":
		c.warn(p, "SetHandler outside <Location> is not translated")
		return nil
	case "require", "order", "allow", "deny", "satisfy":
		c.warn(p, "access control outside <Location> or <Proxy> applies to httpd's own files and is not translated")
		return nil
	}
	c.warnNotTranslated(d)
	return nil
}

// hdHasAccess reports whether a body holds access-control directives.
func hdHasAccess(body []*hdDirective) bool {
	for _, d := range body {
		switch d.lname() {
		case "require", "requireall", "requireany", "requirenone", "allow", "deny", "order", "satisfy":
			return true
		}
		if d.Section && hdHasAccess(d.Body) {
			return true
		}
	}
	return false
}

// hdHostOnly strips a scheme and port from a ServerName.
func hdHostOnly(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.Trim(s, "[]")
}

func hdOnOff(d *hdDirective) (bool, error) {
	if len(d.Args) != 1 {
		return false, posOf(d).errf("must be On or Off")
	}
	switch strings.ToLower(d.Args[0]) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, posOf(d).errf("must be On or Off, not %q", d.Args[0])
}

func hdSeconds(d *hdDirective) (time.Duration, error) {
	if len(d.Args) != 1 {
		return 0, posOf(d).errf("takes a number of seconds")
	}
	n, err := strconv.Atoi(d.Args[0])
	if err != nil || n < 1 {
		return 0, posOf(d).errf("must be a number of seconds of at least 1, not %q", d.Args[0])
	}
	return time.Duration(n) * time.Second, nil
}

// listen reads Listen [address:]port [protocol].
func (c *hdConfig) listen(d *hdDirective, s *hdScope) error {
	p := posOf(d)
	if s.vhost {
		return p.errf("Listen cannot occur within <VirtualHost> section")
	}
	if len(d.Args) < 1 || len(d.Args) > 2 {
		return p.errf("takes [address:]port and an optional protocol")
	}
	a := d.Args[0]
	host, port := "", a
	if strings.Contains(a, ":") {
		h, pt, err := net.SplitHostPort(a)
		if err != nil {
			return p.errf("invalid address %q: %v", a, err)
		}
		host, port = h, pt
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return p.errf("invalid port %q", port)
	}
	l := hdListen{pos: p, host: host, port: port}
	if len(d.Args) == 2 {
		switch strings.ToLower(d.Args[1]) {
		case "https":
			l.https = true
		case "http":
		default:
			c.warn(p, "protocol %q is not translated; the address serves HTTP", d.Args[1])
		}
	} else if port == "443" {
		l.https = true
	}
	c.listens = append(c.listens, l)
	return nil
}

// vhostSection reads a <VirtualHost addr...> section.
func (c *hdConfig) vhostSection(d *hdDirective) error {
	p := posOf(d)
	if len(d.Args) == 0 {
		return p.errf("<VirtualHost> requires at least one address")
	}
	s := &hdScope{vhost: true, pos: p, index: len(c.vhosts) + 1, balancers: map[string]*hdBalancer{}}
	for _, a := range d.Args {
		addr := hdAddr{host: a, port: "*"}
		if strings.HasPrefix(a, "[") || strings.Count(a, ":") == 1 {
			if h, pt, err := net.SplitHostPort(a); err == nil {
				addr = hdAddr{host: h, port: pt}
			} else if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
				addr = hdAddr{host: strings.Trim(a, "[]"), port: "*"}
			} else {
				return p.errf("invalid address %q", a)
			}
		}
		if addr.host == "_default_" {
			addr.host = "*"
		}
		s.addrs = append(s.addrs, addr)
	}
	c.vhosts = append(c.vhosts, s)
	return c.server(d.Body, s)
}

// locationSection reads <Location path>, <Location ~ regex> and <LocationMatch regex>.
func (c *hdConfig) locationSection(d *hdDirective, s *hdScope) error {
	p := posOf(d)
	loc := &hdLocation{pos: p}
	switch {
	case d.lname() == "locationmatch" && len(d.Args) == 1:
		loc.path, loc.regex = d.Args[0], true
	case d.lname() == "location" && len(d.Args) == 2 && d.Args[0] == "~":
		loc.path, loc.regex = d.Args[1], true
	case d.lname() == "location" && len(d.Args) == 1:
		loc.path = d.Args[0]
	default:
		return p.errf("takes one URL path (or ~ and a regular expression)")
	}
	if loc.regex {
		if _, err := regexp.Compile(loc.path); err != nil {
			return p.errf("invalid regular expression %q: %v", loc.path, err)
		}
	}
	acc := &hdAccessBuilder{c: c}
	for _, sd := range d.Body {
		sp := posOf(sd)
		ln := sd.lname()
		if acc.take(sd) {
			continue
		}
		if sd.Section {
			switch ln {
			case "limit", "limitexcept", "if", "elseif", "else":
				if hdHasAccess(sd.Body) {
					return sp.errf("access control inside <%s> cannot be translated; rewrite it with Caddy matchers (method, expression)", sd.Name)
				}
			}
			c.warnSkippedSection(sd, "this section is not translated inside <Location>")
			continue
		}
		switch ln {
		case "sethandler":
			if len(sd.Args) != 1 {
				return sp.errf("takes one handler name")
			}
			h := sd.Args[0]
			switch {
			case h == "balancer-manager":
				loc.handler, loc.handlerPos = h, sp
			case strings.EqualFold(h, "none"):
				loc.handler, loc.handlerPos = "", sp
			case strings.HasPrefix(strings.ToLower(h), "proxy:"):
				return sp.errf("proxying with SetHandler %q cannot be translated; use ProxyPass", h)
			default:
				c.summarize(sd) // httpd's own content (server-status, cgi-script, ...)
			}
		case "proxypass", "proxypassmatch":
			pass, err := c.parsePass(sd, s, loc)
			if err != nil {
				return err
			}
			loc.pass = pass
		case "proxypassreverse":
			r, err := c.parseReverse(sd, loc)
			if err != nil {
				return err
			}
			loc.reverses = append(loc.reverses, r)
		case "proxypassreversecookiedomain", "proxypassreversecookiepath":
			r, err := c.parseCookieRule(sd, loc)
			if err != nil {
				return err
			}
			if ln == "proxypassreversecookiedomain" {
				loc.cookieDomain = append(loc.cookieDomain, r)
			} else {
				loc.cookiePath = append(loc.cookiePath, r)
			}
		case "header", "requestheader":
			op, err := c.parseHeader(sd)
			if err != nil {
				return err
			}
			if op != nil {
				loc.headers = append(loc.headers, op)
			}
		case "proxypreservehost", "proxyaddheaders":
			c.warn(sp, "only translated at server or <VirtualHost> level")
		default:
			c.warnNotTranslated(sd)
		}
	}
	a, err := acc.build(p)
	if err != nil {
		return err
	}
	loc.access = a
	s.locations = append(s.locations, loc)
	return nil
}

// proxySection reads <Proxy url> and <ProxyMatch regex>.
func (c *hdConfig) proxySection(d *hdDirective, s *hdScope) error {
	p := posOf(d)
	if len(d.Args) < 1 {
		return p.errf("takes a URL")
	}
	url0 := d.Args[0]
	regex := d.lname() == "proxymatch"
	if !regex && url0 == "~" && len(d.Args) > 1 {
		regex, url0 = true, d.Args[1]
		d.Args = d.Args[1:]
	}
	isBal := !regex && hdIsBalancerURL(url0)
	if isBal {
		if _, err := c.balancerFor(s, url0, p); err != nil {
			return err
		}
		for _, kv := range d.Args[1:] {
			if err := c.setBalancerKV(s, url0, kv, p); err != nil {
				return err
			}
		}
	} else if len(d.Args) > 1 {
		c.warn(p, "parameters on a <Proxy> line of a stand-alone worker are not translated")
	}
	sect := &hdProxySect{pos: p, pattern: url0, regex: regex}
	acc := &hdAccessBuilder{c: c}
	for _, sd := range d.Body {
		sp := posOf(sd)
		if acc.take(sd) {
			continue
		}
		if sd.Section {
			if hdHasAccess(sd.Body) {
				return sp.errf("access control inside <%s> cannot be translated; rewrite it with Caddy matchers", sd.Name)
			}
			c.warnSkippedSection(sd, "this section is not translated inside <Proxy>")
			continue
		}
		switch sd.lname() {
		case "balancermember":
			if !isBal {
				return sp.errf("BalancerMember is only allowed in <Proxy balancer://...>")
			}
			if len(sd.Args) < 1 {
				return sp.errf("takes a member URL")
			}
			if err := c.balancerMember(sd, s, url0, sd.Args); err != nil {
				return err
			}
		case "proxyset":
			if regex {
				c.warn(sp, "ProxySet in <ProxyMatch> is not translated")
				continue
			}
			if err := c.proxySet(sd, s, url0, sd.Args, true); err != nil {
				return err
			}
		case "header", "requestheader":
			op, err := c.parseHeader(sd)
			if err != nil {
				return err
			}
			if op != nil {
				sect.headers = append(sect.headers, op)
			}
		default:
			c.warnNotTranslated(sd)
		}
	}
	a, err := acc.build(p)
	if err != nil {
		return err
	}
	sect.access = a
	if a != nil || len(sect.headers) > 0 {
		s.proxies = append(s.proxies, sect)
	}
	return nil
}

func hdIsBalancerURL(u string) bool {
	return len(u) >= len("balancer://") && strings.EqualFold(u[:len("balancer://")], "balancer://")
}

// hdSplitBalancerURL returns the lower-case name and the path of balancer://NAME/path.
func hdSplitBalancerURL(u string) (name, path string) {
	rest := u[len("balancer://"):]
	name, path, found := strings.Cut(rest, "/")
	if found {
		path = "/" + path
	}
	return strings.ToLower(name), path
}

// lookupBalancer finds the balancer a scope sees under name: its own, else
// the main server's (inherited).
func (c *hdConfig) lookupBalancer(s *hdScope, name string) *hdBalancer {
	if b := s.balancers[name]; b != nil {
		return b
	}
	if s.vhost && c.inherits(s) {
		return c.main.balancers[name]
	}
	return nil
}

// inherits reports whether a vhost sees the main server's balancers: unless
// both BalancerInherit and ProxyPassInherit are Off.
func (c *hdConfig) inherits(s *hdScope) bool {
	bi := s.balInherit == nil || *s.balInherit
	pi := s.ppInherit == nil || *s.ppInherit
	return bi || pi
}

// balancerFor returns the balancer of balancer://NAME in scope s, creating
// it (as httpd does on first mention) in s.
func (c *hdConfig) balancerFor(s *hdScope, u string, p hdPos) (*hdBalancer, error) {
	name, _ := hdSplitBalancerURL(u)
	if name == "" {
		return nil, p.errf("empty balancer name in %q", u)
	}
	if _, err := config.ParseName("balancer://" + name); err != nil {
		return nil, p.errf("%v", err)
	}
	if b := s.balancers[name]; b != nil {
		return b, nil
	}
	// As httpd does, a virtual host gets its own balancer even when it only
	// refers to one of the main server's: resolveBalancers merges the two.
	b := &hdBalancer{name: name, scope: s, pos: p, memberPos: map[string]hdPos{}}
	s.balancers[name] = b
	c.balancers = append(c.balancers, b)
	return b, nil
}

// hdBalancerKeys are httpd's balancer parameters (set_balancer_param).
var hdBalancerKeys = map[string]bool{
	"lbmethod": true, "stickysession": true, "stickysessionsep": true, "scolonpathdelim": true,
	"nofailover": true, "maxattempts": true, "timeout": true, "failonstatus": true,
	"failontimeout": true, "forcerecovery": true, "nonce": true, "growth": true,
}

// setBalancerKV applies one key=value balancer parameter.
func (c *hdConfig) setBalancerKV(s *hdScope, u, kv string, p hdPos) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return p.errf("invalid parameter %q: must be key=value", kv)
	}
	b, err := c.balancerFor(s, u, p)
	if err != nil {
		return err
	}
	return c.applyBalancerParam(b, hdParam{pos: p, key: strings.ToLower(key), val: val})
}

func (c *hdConfig) applyBalancerParam(b *hdBalancer, prm hdParam) error {
	key, val, p := prm.key, prm.val, prm.pos
	if !hdBalancerKeys[key] {
		return p.errf("unknown Balancer parameter %q", key)
	}
	switch key {
	case "lbmethod":
		if strings.EqualFold(val, "heartbeat") {
			return p.errf("lbmethod=heartbeat cannot be translated: it balances on mod_heartmonitor's data, which Caddy has no equivalent of; use byrequests, bytraffic or bybusyness")
		}
	case "failonstatus":
		codes, err := config.ParseFailOnStatus([]string{val})
		if err != nil {
			return p.errf("%v", err)
		}
		b.h.FailOnStatus = codes
		b.params = append(b.params, prm)
		return nil
	}
	if err := b.h.SetParam(key, val); err != nil {
		return p.errf("%v", err)
	}
	b.params = append(b.params, prm)
	return nil
}

// balancerMember reads BalancerMember's member URL and parameters.
func (c *hdConfig) balancerMember(d *hdDirective, s *hdScope, balURL string, args []string) error {
	p := posOf(d)
	if !hdIsBalancerURL(balURL) {
		return p.errf("BalancerMember must define remote proxy server; %q is not a balancer:// URL", balURL)
	}
	b, err := c.balancerFor(s, balURL, p)
	if err != nil {
		return err
	}
	raw := args[0]
	if u, err := url.Parse(raw); err == nil {
		switch strings.ToLower(u.Scheme) {
		case "ajp", "fcgi", "scgi", "uwsgi", "ftp", "unix":
			return p.errf("member %s: the %s scheme cannot be translated; Caddy's balancer proxies HTTP(S) members", raw, u.Scheme)
		}
	}
	norm, _, _, _, _, _, err := balancer.NormalizeURL(raw)
	if err != nil {
		return p.errf("%v", err)
	}
	if prev, dup := b.memberPos[norm]; dup {
		c.warn(p, "%s is already a member of balancer://%s (%s:%d); httpd keeps the first and ignores this line's parameters (AH01150)", raw, b.name, prev.File, prev.Line)
		return nil
	}
	m := config.Member{URL: raw}
	var connTimeout time.Duration
	for _, kv := range args[1:] {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return p.errf("invalid parameter %q: must be key=value", kv)
		}
		key = strings.ToLower(key)
		switch key {
		case "hcexpr":
			expr, ok := c.hcExprs[strings.ToLower(val)]
			if !ok {
				return p.errf("hcexpr=%s: unknown health check condition expr (define it with ProxyHCExpr before the member)", val)
			}
			m.HCExpr = expr
		case "hctemplate":
			t, ok := c.hcTmpls[strings.ToLower(val)]
			if !ok {
				return p.errf("hctemplate=%s: unknown ProxyHCTemplate", val)
			}
			m.HCMethod, m.HCInterval, m.HCPasses, m.HCFails, m.HCURI, m.HCExpr =
				t.m.HCMethod, t.m.HCInterval, t.m.HCPasses, t.m.HCFails, t.m.HCURI, t.m.HCExpr
		case "connectiontimeout":
			t, err := hdTimeoutParam(val)
			if err != nil {
				return p.errf("connectiontimeout: %v", err)
			}
			connTimeout = t
		default:
			if _, ok := config.MemberKeys[key]; ok {
				if err := m.SetParam(key, val); err != nil {
					return p.errf("%v", err)
				}
				continue
			}
			if hint, ok := config.UnsupportedMemberKeys[key]; ok {
				c.warn(p, "member %s: %s=%s is not translated (it tunes httpd's connection pool or protocol handling): %s", raw, key, val, hint)
				continue
			}
			return p.errf("unknown Worker parameter %q", key)
		}
	}
	b.memberPos[norm] = p
	b.h.Members = append(b.h.Members, m)
	if connTimeout > 0 {
		if b.connTimeout != 0 && b.connTimeout != connTimeout {
			b.connTimeoutVaries = true
		}
		if connTimeout > b.connTimeout {
			b.connTimeout = connTimeout
		}
	}
	return nil
}

// hdTimeoutParam reads a time as ap_timeout_parameter_parse does (a number
// with an optional unit ms, s, mi or h; a bare number is seconds); it must
// be at least 1ms.
func hdTimeoutParam(val string) (time.Duration, error) {
	d, ok := manager.ParseTimeoutParameter(val, "s")
	if !ok {
		return 0, fmt.Errorf("invalid time %q", val)
	}
	if d < time.Millisecond {
		return 0, fmt.Errorf("must be at least 1ms, not %q", val)
	}
	return d, nil
}

// proxySet reads ProxySet [url] key=value...; inside a <Proxy> the URL is
// the section's.
func (c *hdConfig) proxySet(d *hdDirective, s *hdScope, u string, args []string, inSection bool) error {
	p := posOf(d)
	if !inSection {
		args = args[1:]
	}
	if hdIsBalancerURL(u) {
		name, _ := hdSplitBalancerURL(u)
		if !inSection && c.lookupBalancer(s, name) == nil {
			return p.errf("ProxySet can not find '%s' Balancer", "balancer://"+name)
		}
		for _, kv := range args {
			if err := c.setBalancerKV(s, u, kv, p); err != nil {
				return err
			}
		}
		return nil
	}
	if u == "*" || strings.ContainsAny(u, "*?[") {
		c.warn(p, "ProxySet on a wildcard <Proxy %s> is not translated", u)
		return nil
	}
	// A stand-alone worker: its parameters apply to ProxyPass rules to that URL.
	wp := c.plainWorkers[hdWorkerKey(u)]
	if wp == nil {
		wp = &hdWorkerParams{}
		c.plainWorkers[hdWorkerKey(u)] = wp
	}
	for _, kv := range args {
		if err := c.workerParam(p, wp, kv, u); err != nil {
			return err
		}
	}
	return nil
}

func hdWorkerKey(u string) string { return strings.TrimSuffix(strings.ToLower(u), "/") }

// workerParam applies one parameter of a stand-alone worker (ProxyPass to a
// URL, or ProxySet on it).
func (c *hdConfig) workerParam(p hdPos, wp *hdWorkerParams, kv, u string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return p.errf("invalid parameter %q: must be key=value", kv)
	}
	key = strings.ToLower(key)
	switch key {
	case "timeout":
		// The same rule as a member's timeout (the wait for the response
		// headers), which it becomes in Caddy.
		var m config.Member
		if err := m.SetParam(key, val); err != nil {
			return p.errf("%v", err)
		}
		wp.timeout = time.Duration(m.Timeout)
	case "connectiontimeout":
		t, err := hdTimeoutParam(val)
		if err != nil {
			return p.errf("connectiontimeout: %v", err)
		}
		wp.connTimeout = t
	default:
		if _, ok := config.MemberKeys[key]; ok {
			var m config.Member
			if err := m.SetParam(key, val); err != nil {
				return p.errf("%v", err)
			}
			c.warn(p, "%s=%s on the stand-alone worker %s is not translated: Caddy's reverse_proxy has no per-upstream %s", key, val, u, key)
			return nil
		}
		if hint, ok := config.UnsupportedMemberKeys[key]; ok {
			c.warn(p, "%s=%s on %s is not translated: %s", key, val, u, hint)
			return nil
		}
		return p.errf("unknown Worker parameter %q", key)
	}
	return nil
}

// parsePass reads ProxyPass/ProxyPassMatch, at server level or (loc != nil)
// inside a <Location>, where the path is the section's.
func (c *hdConfig) parsePass(d *hdDirective, s *hdScope, loc *hdLocation) (*hdPass, error) {
	p := posOf(d)
	args := d.Args
	pass := &hdPass{pos: p, scope: s, loc: loc, regex: d.lname() == "proxypassmatch"}
	if loc != nil {
		pass.fake, pass.regex = loc.path, loc.regex
		if d.lname() == "proxypassmatch" && !loc.regex {
			return nil, p.errf("ProxyPassMatch inside <Location> needs <LocationMatch>")
		}
	} else {
		if len(args) < 2 {
			return nil, p.errf("takes a path and a URL (or !)")
		}
		pass.fake = args[0]
		args = args[1:]
		if strings.HasPrefix(pass.fake, "~") && !pass.regex {
			return nil, p.errf("a regular expression path needs ProxyPassMatch")
		}
	}
	if len(args) < 1 {
		return nil, p.errf("takes a URL (or !)")
	}
	if pass.regex {
		if _, err := regexp.Compile(pass.fake); err != nil {
			return nil, p.errf("invalid regular expression %q: %v", pass.fake, err)
		}
	} else if !strings.HasPrefix(pass.fake, "/") {
		return nil, p.errf("the path must start with '/', not %q", pass.fake)
	}
	real := args[0]
	params := args[1:]
	if real == "!" {
		pass.exclude = true
		if len(params) > 0 {
			c.warn(p, "parameters of an exclusion (!) have no effect")
		}
		return pass, nil
	}
	var kvs []string
	for _, prm := range params {
		switch strings.ToLower(prm) {
		case "noquery":
			// Only for SCRIPT_FILENAME of fcgi backends: httpd 2.4.71 still
			// sends the query string to http(s) backends and balancers.
			continue
		case "nocanon":
			c.warn(p, "nocanon: Caddy forwards the request path as it received it (nocanon-like); nothing to translate")
			continue
		case "interpolate":
			return nil, p.errf("interpolate (environment variables in ProxyPass) cannot be translated")
		}
		if strings.HasPrefix(strings.ToLower(prm), "mapping=") {
			c.warn(p, "%s is not translated (Caddy matches the decoded path)", prm)
			continue
		}
		kvs = append(kvs, prm)
	}
	if hdIsBalancerURL(real) {
		if dyn := hdDynamicTarget(pass.regex, pass.fake, real); dyn != nil {
			return c.parseDynamicPass(pass, dyn, real, kvs)
		}
		_, path := hdSplitBalancerURL(real)
		b, err := c.balancerFor(s, real, p)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			if err := c.passBalancerParam(b, p, kv); err != nil {
				return nil, err
			}
		}
		pass.balName, pass.realPath = b.name, path
		return pass, nil
	}
	u, err := url.Parse(real)
	if err != nil || u.Host == "" {
		return nil, p.errf("invalid URL %q", real)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "ws", "wss":
		c.warn(p, "%s: Caddy proxies WebSocket upgrades over http/https; translated as %s", real, map[string]string{"ws": "http", "wss": "https"}[strings.ToLower(u.Scheme)])
		if strings.ToLower(u.Scheme) == "ws" {
			u.Scheme = "http"
		} else {
			u.Scheme = "https"
		}
	default:
		return nil, p.errf("the %s scheme cannot be translated; Caddy's reverse_proxy is translated for http(s) backends only", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, p.errf("a query string or fragment in the target URL cannot be translated")
	}
	pass.target = u
	pass.realPath = u.EscapedPath()
	for _, kv := range kvs {
		if err := c.workerParam(p, &pass.worker, kv, real); err != nil {
			return nil, err
		}
	}
	return pass, nil
}

// parseReverse reads ProxyPassReverse [path] url.
func (c *hdConfig) parseReverse(d *hdDirective, loc *hdLocation) (*hdReverse, error) {
	p := posOf(d)
	args := d.Args
	r := &hdReverse{pos: p}
	if loc != nil {
		if len(args) < 1 {
			return nil, p.errf("takes a URL")
		}
		if loc.regex {
			return nil, p.errf("ProxyPassReverse in a regular-expression location cannot be translated")
		}
		r.fake, r.real = loc.path, args[0]
		args = args[1:]
	} else {
		if len(args) < 2 {
			return nil, p.errf("takes a path and a URL")
		}
		r.fake, r.real = args[0], args[1]
		args = args[2:]
	}
	if len(args) > 0 {
		if strings.EqualFold(args[0], "interpolate") {
			return nil, p.errf("interpolate cannot be translated")
		}
		return nil, p.errf("unexpected argument %q", args[0])
	}
	if hdIsBalancerURL(r.real) {
		r.balName, r.part = hdSplitBalancerURL(r.real)
		if r.part == "/" {
			r.part = ""
		}
	}
	return r, nil
}

// parseCookieRule reads ProxyPassReverseCookieDomain/Path internal public.
func (c *hdConfig) parseCookieRule(d *hdDirective, loc *hdLocation) (hdCookieRule, error) {
	p := posOf(d)
	args := d.Args
	if len(args) > 2 && strings.EqualFold(args[len(args)-1], "interpolate") {
		return hdCookieRule{}, p.errf("interpolate cannot be translated")
	}
	if len(args) != 2 {
		return hdCookieRule{}, p.errf("takes the internal and the public %s", map[bool]string{true: "domain", false: "path"}[d.lname() == "proxypassreversecookiedomain"])
	}
	return hdCookieRule{pos: p, rule: proxypassreverse.CookieRule{Internal: args[0], Public: args[1]}}, nil
}

// hcExpr reads ProxyHCExpr name {expression}.
func (c *hdConfig) hcExpr(d *hdDirective) error {
	p := posOf(d)
	name, rest := hdCutWord(d.Raw)
	rest = strings.TrimSpace(rest)
	if name == "" || rest == "" {
		return p.errf("takes a name and an {expression}")
	}
	if len(name) > 15 {
		return p.errf("condition name %q is longer than 15 characters", name)
	}
	if strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "}") {
		rest = strings.TrimSpace(rest[1 : len(rest)-1])
	} else if w := hdWords(rest); len(w) == 1 {
		rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(w[0], "{"), "}"))
	}
	if _, err := balancer.ParseHCExpr(rest); err != nil {
		return p.errf("%v", err)
	}
	c.hcExprs[strings.ToLower(name)] = rest
	return nil
}

// hcTemplate reads ProxyHCTemplate name key=value...
func (c *hdConfig) hcTemplate(d *hdDirective) error {
	p := posOf(d)
	if len(d.Args) < 1 {
		return p.errf("takes a name and key=value parameters")
	}
	t := &hdHCTemplate{m: config.Member{HCMethod: "TCP"}}
	for _, kv := range d.Args[1:] {
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			return p.errf("invalid parameter %q: must be key=value", kv)
		}
		key = strings.ToLower(key)
		switch key {
		case "hcmethod", "hcuri", "hcinterval", "hcpasses", "hcfails":
			if err := t.m.SetParam(key, val); err != nil {
				return p.errf("%v", err)
			}
		case "hcexpr":
			expr, ok := c.hcExprs[strings.ToLower(val)]
			if !ok {
				return p.errf("hcexpr=%s: unknown health check condition expr", val)
			}
			t.m.HCExpr = expr
		default:
			return p.errf("unknown ProxyHCTemplate parameter %q", key)
		}
	}
	c.hcTmpls[strings.ToLower(d.Args[0])] = t
	return nil
}

// rewriteRule: a proxying rule ([P]) is an error, any other is not translated.
func (c *hdConfig) rewriteRule(d *hdDirective) error {
	p := posOf(d)
	if len(d.Args) >= 3 {
		flags := strings.ToLower(strings.Trim(d.Args[2], "[]"))
		for _, f := range strings.Split(flags, ",") {
			f = strings.TrimSpace(f)
			if f == "p" || f == "proxy" {
				return p.errf("RewriteRule with the [P] flag proxies requests and cannot be translated; write it as ProxyPass/ProxyPassMatch, or use Caddy's rewrite and reverse_proxy")
			}
		}
	}
	c.warn(p, "not translated: mod_rewrite is not translated (use Caddy's rewrite and redir handlers)")
	return nil
}

// resolveBalancers merges vhost balancers that only refer to a main-server
// balancer into it (httpd's merge_balancers), gives every balancer its Caddy
// name, and checks them.
func (c *hdConfig) resolveBalancers() error {
	taken := map[string]*hdBalancer{}
	for _, b := range c.balancers {
		if b.scope.vhost && len(b.h.Members) == 0 && c.inherits(b.scope) {
			if mb := c.main.balancers[b.name]; mb != nil {
				// The vhost named the balancer (ProxyPass, ProxySet) before or
				// without defining it: httpd merges it with the main server's,
				// the vhost's parameters winning.
				for _, prm := range b.params {
					if err := c.applyBalancerParam(mb, prm); err != nil {
						return err
					}
				}
				if len(b.params) > 0 {
					c.warn(b.params[0].pos, "balancer://%s: in Caddy the parameters set in this virtual host apply to the main server's balancer of that name too (httpd keeps a copy per virtual host)", b.name)
				}
				b.alias = mb
				continue
			}
		}
	}
	// Main-server balancers keep their names; vhost balancers that clash
	// are renamed (Caddy's balancers are global by name).
	order := make([]*hdBalancer, 0, len(c.balancers))
	for _, b := range c.balancers {
		if !b.scope.vhost {
			order = append(order, b)
		}
	}
	for _, b := range c.balancers {
		if b.scope.vhost && b.alias == nil {
			order = append(order, b)
		}
	}
	for _, b := range order {
		name := b.name
		if prev := taken[name]; prev != nil {
			suffix := fmt.Sprintf("vhost%d", b.scope.index)
			if len(b.scope.names) > 0 {
				suffix = b.scope.names[0]
			}
			name = b.name + "." + suffix
			for i := 2; taken[name] != nil; i++ {
				name = fmt.Sprintf("%s.%s.%d", b.name, suffix, i)
			}
			c.warn(b.pos, "balancer://%s is also defined at %s:%d; Caddy's balancers are global by name, so this one is named %q (its balancer-manager name changes accordingly)", b.name, prev.pos.File, prev.pos.Line, name)
		}
		if len(name) > 95 {
			return b.pos.errf("balancer name %q is too long", name)
		}
		taken[name] = b
		b.caddyName = name
		b.h.Name = name
		if s := b.scope.persist; s != nil && *s {
			b.h.Persist = true
		}
		if _, err := b.h.Engine(); err != nil {
			return b.pos.errf("balancer://%s: %v", b.name, err)
		}
	}
	return nil
}

// effective resolves a balancer reference to the balancer that is written out.
func (b *hdBalancer) effective() *hdBalancer {
	if b.alias != nil {
		return b.alias
	}
	return b
}
