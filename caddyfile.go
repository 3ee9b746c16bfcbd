package caddybalancer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/lbset/caddy-balancer/balancer"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("balancer", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("balancer", httpcaddyfile.Before, "reverse_proxy")
}

// parseCaddyfile sets up the balancer handler from Caddyfile tokens; see
// (*Handler).UnmarshalCaddyfile for the syntax.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	b := new(Handler)
	if err := b.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// handle_response blocks need the helper to be parsed as routes.
	if err := b.Handler.FinalizeUnmarshalCaddyfile(h); err != nil {
		return nil, err
	}
	return b, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	balancer [<matcher>] [<name>] {
//	    lbmethod         byrequests|bytraffic|bybusyness
//	    stickysession    <cookie>[|<url_param>]
//	    stickysessionsep <char>|off
//	    scolonpathdelim  on|off
//	    nofailover       on|off
//	    maxattempts      <n>
//	    timeout          <seconds>|<duration>
//	    forcerecovery    on|off
//	    failonstatus     <code>[,| ]<code>...
//	    failontimeout    on|off
//	    growth           <n>
//	    persist          on|off
//	    nonce            <value>|None
//	    route_cookie     [<attributes>]
//
//	    balancer_member <url> [<key>=<value>...]
//	    balancer_member <url> {
//	        <key> <value>
//	    }
//
//	    proxy_pass_reverse               [<public prefix> [<real>]]   # repeatable, tried in order
//	    # <real>: /<path after this balancer's name> | balancer://<name>[/<path>]
//	    #         | <scheme>://<url> | url <url or /path>
//	    proxy_pass_reverse_cookie_domain <internal> <public>
//	    proxy_pass_reverse_cookie_path   <internal> <public>
//
//	    # any other reverse_proxy subdirective
//	}
//
// The balancer's own subdirectives are parsed and removed from the token
// stream; what is left is handed to reverse_proxy's own unmarshaler (the
// forward_auth technique). The directive's matcher, if any, must already have
// been removed (httpcaddyfile does so for handler directives).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if !d.Next() { // the directive name
		return d.ArgErr()
	}
	// Work on a copy of this directive's tokens: we delete from it.
	rd := caddyfile.NewDispenser(d.NextSegment())
	rd.Next()
	directive := rd.Val()

	if rd.NextArg() {
		name, err := balancerName(rd.Val())
		if err != nil {
			return rd.Errf("%s: %v", directive, err)
		}
		h.Name = name
		rd.Delete()
	}
	if rd.NextArg() {
		return rd.Errf("%s: unexpected argument %q: the directive takes only a balancer name; members are set with balancer_member <url> (httpd's BalancerMember)", directive, rd.Val())
	}

	memberLines := map[string]int{} // normalized member URL → line
	for rd.NextBlock(0) {
		// Every line is consumed whole below, so at nesting 1 the current
		// token is always the first of a line: a subdirective.
		if rd.Nesting() != 1 {
			continue
		}
		key := rd.Val()
		if strings.HasPrefix(key, "@") {
			rd.NextSegment() // a response matcher: reverse_proxy's
			continue
		}
		if hint, rejected := rejectedSubdirective(key); rejected {
			return rd.Errf("%s: subdirective %q is not available in a balancer: %s", directive, key, hint)
		}
		lkey := strings.ToLower(key)
		if !isOwnSubdirective(lkey) {
			rd.NextSegment() // reverse_proxy's; left in place
			continue
		}
		seg := rd.NextSegment()
		sd := caddyfile.NewDispenser(seg)
		sd.Next()
		var err error
		switch lkey {
		case "balancer_member":
			var m Member
			m, err = unmarshalMember(sd)
			if err == nil {
				name, _, _, _, _, _, _ := balancer.NormalizeURL(m.URL)
				if line, dup := memberLines[name]; dup {
					at := caddyfile.NewDispenser(seg)
					at.Next()
					err = at.Errf("balancer_member %s: duplicate member: %s is already a member of this balancer (line %d)", m.URL, name, line)
				} else {
					memberLines[name] = seg[0].Line
					h.Members = append(h.Members, m)
				}
			}
		case "proxy_pass_reverse":
			err = h.unmarshalProxyPassReverse(sd)
		default:
			err = h.unmarshalBalancerParam(sd, lkey)
		}
		if err != nil {
			return err
		}
		rd.DeleteN(len(seg))
	}
	rd.Reset()
	if h.Name == "" && len(h.Members) == 0 {
		rd.Next()
		return rd.Errf("%s: give the balancer a name or at least one balancer_member", directive)
	}
	rd.Reset()
	return h.Handler.UnmarshalCaddyfile(rd)
}

// balancerName reads the balancer name of the directive line: NAME or
// balancer://NAME[/path] as in httpd, lower-cased.
func balancerName(arg string) (string, error) {
	name := arg
	if len(name) >= len("balancer://") && strings.EqualFold(name[:len("balancer://")], "balancer://") {
		name = name[len("balancer://"):]
		name, _, _ = strings.Cut(name, "/") // httpd ignores the path
	} else if strings.Contains(name, "://") || strings.Contains(name, ":") || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is not a balancer name (it looks like an address); members are set with balancer_member <url> (httpd's BalancerMember)", arg)
	}
	if name == "" {
		return "", fmt.Errorf("empty balancer name in %q", arg)
	}
	if len(name) > 95 {
		return "", fmt.Errorf("balancer name %q is longer than 95 characters", name)
	}
	if strings.ContainsAny(name, " \t\r\n?#") {
		return "", fmt.Errorf("invalid balancer name %q", name)
	}
	return strings.ToLower(name), nil
}

// ownSubdirectives are the balancer's subdirectives (the rest are reverse_proxy's).
var ownSubdirectives = map[string]bool{
	"lbmethod": true, "stickysession": true, "stickysessionsep": true, "scolonpathdelim": true,
	"nofailover": true, "maxattempts": true, "timeout": true, "forcerecovery": true,
	"failonstatus": true, "failontimeout": true, "growth": true, "persist": true, "nonce": true,
	"route_cookie": true, "balancer_member": true, "proxy_pass_reverse": true,
	"proxy_pass_reverse_cookie_domain": true, "proxy_pass_reverse_cookie_path": true,
}

func isOwnSubdirective(lkey string) bool { return ownSubdirectives[lkey] }

// rejectedSubdirective reports reverse_proxy subdirectives that choose or check
// upstreams, which the balancer does itself, with the Apache equivalent.
func rejectedSubdirective(key string) (hint string, rejected bool) {
	switch key {
	case "to":
		return "members are set with balancer_member <url> (httpd's BalancerMember)", true
	case "dynamic":
		return "members are set with balancer_member; set growth to add members at run time through the balancer-manager", true
	case "lb_policy":
		return "use lbmethod byrequests|bytraffic|bybusyness (httpd's lbmethod)", true
	case "lb_retries":
		return "use maxattempts (httpd's maxattempts)", true
	case "lb_try_duration":
		return "use timeout (httpd's balancer timeout: how long to wait for a usable member)", true
	case "lb_try_interval":
		return "the balancer waits for a usable member as httpd does; use timeout", true
	case "lb_retry_match":
		return "the balancer fails over after connection failures as httpd does; see maxattempts and failonstatus", true
	case "health_uri", "health_path":
		return "set hcuri (with hcmethod) on each balancer_member (mod_proxy_hcheck)", true
	case "health_method":
		return "set hcmethod on each balancer_member (mod_proxy_hcheck)", true
	case "health_interval":
		return "set hcinterval on each balancer_member (mod_proxy_hcheck)", true
	case "health_passes":
		return "set hcpasses on each balancer_member (mod_proxy_hcheck)", true
	case "health_fails":
		return "set hcfails on each balancer_member (mod_proxy_hcheck)", true
	case "health_status", "health_body", "health_headers":
		return "set hcexpr (a condition on the check response) on each balancer_member (mod_proxy_hcheck)", true
	case "health_timeout":
		return "health checks use the member's timeout (balancer_member ... timeout=<seconds>)", true
	case "health_port", "health_upstream":
		return "health checks go to the member's own URL (mod_proxy_hcheck)", true
	case "health_request_body", "health_follow_redirects":
		return "mod_proxy_hcheck has no equivalent; see hcmethod, hcuri and hcexpr on balancer_member", true
	case "max_fails", "fail_duration", "unhealthy_request_count", "unhealthy_latency":
		return "a member goes into error on a failed connection, as in httpd; set retry on the member for how long, failontimeout and failonstatus for more reasons", true
	case "unhealthy_status":
		return "use failonstatus (httpd's failonstatus)", true
	}
	return "", false
}

// lineArgs returns the arguments of the current line and fails if a block follows.
func lineArgs(d *caddyfile.Dispenser) ([]string, error) {
	key := d.Val()
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		d.Prev() // back to '{', on the key's line
		return nil, d.Errf("%s: unexpected block", key)
	}
	return args, nil
}

// oneArg returns the single argument of the current line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	key := d.Val()
	args, err := lineArgs(d)
	if err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", d.Errf("%s: want exactly one value, got %d", key, len(args))
	}
	return args[0], nil
}

// unmarshalBalancerParam parses one balancer parameter line (httpd's ProxySet
// keys and the balancer's other one-line subdirectives).
func (h *Handler) unmarshalBalancerParam(d *caddyfile.Dispenser, key string) error {
	switch key {
	case "route_cookie":
		args, err := lineArgs(d)
		if err != nil {
			return err
		}
		h.RouteCookie = &RouteCookie{Attributes: strings.Join(args, " ")}
		return nil
	case "failonstatus":
		args, err := lineArgs(d)
		if err != nil {
			return err
		}
		codes, err := parseFailOnStatus(args)
		if err != nil {
			return d.Errf("failonstatus: %v", err)
		}
		h.FailOnStatus = codes // a later occurrence replaces the list, as in httpd
		return nil
	case "proxy_pass_reverse_cookie_domain", "proxy_pass_reverse_cookie_path":
		args, err := lineArgs(d)
		if err != nil {
			return err
		}
		if len(args) != 2 {
			return d.Errf("%s: want <internal> <public>, got %d values", key, len(args))
		}
		rule := CookieRewrite{Internal: args[0], Public: args[1]}
		if key == "proxy_pass_reverse_cookie_domain" {
			h.ProxyPassReverseCookieDomain = append(h.ProxyPassReverseCookieDomain, rule)
		} else {
			h.ProxyPassReverseCookiePath = append(h.ProxyPassReverseCookiePath, rule)
		}
		return nil
	}

	val, err := oneArg(d)
	if err != nil {
		return err
	}
	if err := h.setBalancerParam(key, val); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// setBalancerParam sets one httpd balancer parameter from its value, as
// set_balancer_param reads it. The error names the key.
func (h *Handler) setBalancerParam(key, val string) error {
	switch key {
	case "lbmethod":
		m := strings.ToLower(val)
		if _, err := balancer.MethodByName(m); err != nil {
			return fmt.Errorf("lbmethod: %v", err)
		}
		h.LBMethod = m
	case "stickysession":
		cookie, param, _ := strings.Cut(val, "|")
		if cookie == "" {
			return fmt.Errorf("stickysession: empty cookie name in %q", val)
		}
		if len(cookie) > 63 || len(param) > 63 {
			return fmt.Errorf("stickysession: names must be shorter than 64 characters")
		}
		h.StickySession = val
	case "stickysessionsep":
		switch {
		case strings.EqualFold(val, "off"):
			h.StickySessionSep = "off"
		case len(val) == 1:
			h.StickySessionSep = val
		default:
			return fmt.Errorf("stickysessionsep must be a single character or Off, not %q", val)
		}
	case "scolonpathdelim":
		return setOnOff(&h.SColonPathDelim, key, val)
	case "nofailover":
		return setOnOff(&h.NoFailover, key, val)
	case "failontimeout":
		return setOnOff(&h.FailOnTimeout, key, val)
	case "persist":
		return setOnOff(&h.Persist, key, val)
	case "forcerecovery":
		var b bool
		if err := setOnOff(&b, key, val); err != nil {
			return err
		}
		h.ForceRecovery = &b
	case "maxattempts":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("maxattempts: maximum number of attempts must be a positive number, not %q", val)
		}
		h.MaxAttempts = &n
	case "timeout":
		dur, err := parseSeconds(val)
		if err != nil || dur < time.Second && isInteger(val) || dur <= 0 {
			return fmt.Errorf("timeout must be at least one second (a number of seconds or a duration such as 1500ms), not %q", val)
		}
		h.Timeout = caddy.Duration(dur)
	case "growth":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("growth must be between 1 and 100, not %q", val)
		}
		h.Growth = n
	case "nonce":
		if strings.EqualFold(val, "none") {
			val = "None"
		} else if len(val) > 36 {
			return fmt.Errorf("nonce: provided nonce is too large (at most 36 characters)")
		}
		h.Nonce = &val
	default:
		return fmt.Errorf("unknown balancer parameter %q", key)
	}
	return nil
}

// parseFailOnStatus reads httpd's failonstatus list: codes separated by
// commas and/or spaces, each 100..599.
func parseFailOnStatus(args []string) ([]int, error) {
	var codes []int
	for _, a := range args {
		for _, f := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			c, err := strconv.Atoi(f)
			if err != nil || c < 100 || c > 599 {
				return nil, fmt.Errorf("failonstatus must be one or more HTTP response codes (100..599), not %q", f)
			}
			codes = append(codes, c)
		}
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("failonstatus must be one or more HTTP response codes")
	}
	return codes, nil
}

// unmarshalProxyPassReverse parses one proxy_pass_reverse line, httpd's
// ProxyPassReverse; the line may be repeated, the rules are tried in order:
//
//	proxy_pass_reverse                                   # prefix "/", this balancer
//	proxy_pass_reverse <prefix>                          # this balancer
//	proxy_pass_reverse <prefix> </path>                  # this balancer, PART /path
//	proxy_pass_reverse <prefix> balancer://<name>[/path] # any balancer, as in httpd
//	proxy_pass_reverse <prefix> <scheme>://<url>         # a plain URL
//	proxy_pass_reverse <prefix> url <url or /path>       # a plain URL or path
//
// A second argument that starts with '/' is the path after this balancer's
// name (httpd's balancer://thisname/path), so a plain path rule (httpd's
// `ProxyPassReverse /pub /internal`) is written with the url keyword:
// `proxy_pass_reverse /pub url /internal`. The prefix is a path starting with
// '/' or an absolute URL.
func (h *Handler) unmarshalProxyPassReverse(d *caddyfile.Dispenser) error {
	args, err := lineArgs(d)
	if err != nil {
		return err
	}
	const usage = "want [<public prefix> [</path> | balancer://<name>[/path] | <scheme>://<url> | url <url or /path>]]"
	if len(args) > 3 || (len(args) == 3 && args[1] != "url") {
		return d.Errf("proxy_pass_reverse: %s, got %d values", usage, len(args))
	}
	var ppr ProxyPassReverse
	if len(args) > 0 {
		if !strings.HasPrefix(args[0], "/") && !strings.Contains(args[0], "://") {
			return d.Errf("proxy_pass_reverse: the public prefix must be a path starting with '/' or an absolute URL, not %q", args[0])
		}
		ppr.Prefix = args[0]
	}
	switch {
	case len(args) == 3:
		if args[2] == "" {
			return d.Errf("proxy_pass_reverse: url: empty URL")
		}
		ppr.URL = args[2]
	case len(args) == 2:
		p := args[1]
		switch {
		case len(p) >= len("balancer://") && strings.EqualFold(p[:len("balancer://")], "balancer://"):
			name, err := balancerName(p)
			if err != nil {
				return d.Errf("proxy_pass_reverse: %v", err)
			}
			ppr.Balancer = name
			if _, path, ok := strings.Cut(p[len("balancer://"):], "/"); ok && path != "" {
				ppr.Path = "/" + path
			}
		case strings.HasPrefix(p, "/"):
			if p != "/" {
				ppr.Path = p
			}
		case strings.Contains(p, "://"):
			ppr.URL = p
		case p == "url":
			return d.Errf("proxy_pass_reverse: url: want the URL or path after it")
		default:
			return d.Errf("proxy_pass_reverse: %q is neither a path after the balancer name (starting with '/'), balancer://<name>[/path] nor a URL; a plain path rule is written `url /path`", p)
		}
	}
	h.ProxyPassReverse = append(h.ProxyPassReverse, ppr)
	return nil
}

// unmarshalMember parses `balancer_member <url> [<key>=<value>...] [{ <key>
// <value> ... }]` with the dispenser on the balancer_member token. The block
// form also accepts key=value tokens.
func unmarshalMember(d *caddyfile.Dispenser) (Member, error) {
	var m Member
	directive := d.Val()
	if !d.NextArg() {
		return m, d.Errf("%s: missing member URL", directive)
	}
	m.URL = d.Val()
	if _, _, _, _, _, _, err := balancer.NormalizeURL(m.URL); err != nil {
		return m, d.Errf("%s: %v", directive, err)
	}
	where := directive + " " + m.URL
	for d.NextArg() {
		if err := setMemberPair(&m, d.Val()); err != nil {
			return m, d.Errf("%s: %v", where, err)
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		tok := d.Val()
		if strings.Contains(tok, "=") {
			// key=value pasted into the block form
			pairs := append([]string{tok}, d.RemainingArgs()...)
			for _, p := range pairs {
				if err := setMemberPair(&m, p); err != nil {
					return m, d.Errf("%s: %v", where, err)
				}
			}
		} else {
			key := strings.ToLower(tok)
			args := d.RemainingArgs()
			if d.NextBlock(d.Nesting()) {
				d.Prev() // back to '{', on the key's line
				return m, d.Errf("%s: %s: unexpected block", where, tok)
			}
			var val string
			switch {
			case key == "hcexpr":
				val = strings.Join(args, " ")
			case len(args) == 1:
				val = args[0]
			default:
				if _, known := memberKeys[key]; known {
					return m, d.Errf("%s: %s: want exactly one value, got %d", where, tok, len(args))
				}
			}
			if err := setMemberParam(&m, key, val); err != nil {
				return m, d.Errf("%s: %v", where, err)
			}
		}
	}
	return m, nil
}

// memberKeys are the BalancerMember keys the balancer implements.
var memberKeys = map[string]struct{}{
	"loadfactor": {}, "lbset": {}, "route": {}, "redirect": {}, "status": {}, "retry": {}, "timeout": {},
	"hcmethod": {}, "hcuri": {}, "hcinterval": {}, "hcpasses": {}, "hcfails": {}, "hcexpr": {},
}

// unsupportedMemberKeys are httpd BalancerMember keys the balancer does not
// implement, with what to use instead. They are rejected, never ignored.
var unsupportedMemberKeys = map[string]string{
	"connectiontimeout": "the connect timeout is the transport's: transport http { dial_timeout <duration> }",
	"ping":              "use transport http { expect_continue_timeout <duration> } for HTTP members",
	"acquire":           "Caddy's transport has no pool acquire timeout",
	"max":               "use transport http { max_conns_per_host <n> }",
	"smax":              "use transport http { keepalive_idle_conns_per_host <n> }",
	"min":               "Caddy's transport keeps no minimum of connections",
	"ttl":               "use transport http { keepalive <idle timeout> }",
	"keepalive":         "use transport http { keepalive_interval <duration> } for TCP keepalive probes",
	"disablereuse":      "use transport http { keepalive off } to close connections after each request",
	"enablereuse":       "connections are reused by default; use transport http { keepalive off } to disable",
	"flushpackets":      "use the flush_interval subdirective",
	"flushwait":         "use the flush_interval subdirective",
	"iobuffersize":      "use transport http { read_buffer <size> write_buffer <size> }",
	"receivebuffersize": "use transport http { read_buffer <size> }",
	"responsefieldsize": "use transport http { max_response_header <size> }",
	"addressttl":        "use transport http { resolvers ... }; Caddy resolves member names on each connection",
	"upgrade":           "Caddy proxies protocol upgrades (WebSocket) without configuration",
	"secret":            "AJP is not supported",
	"flusher":           "mod_proxy_fdpass is not supported",
	"hctemplate":        "set hcmethod, hcuri, hcinterval, hcpasses, hcfails and hcexpr on the member itself",
}

// setMemberPair applies one httpd-style key=value member parameter.
func setMemberPair(m *Member, pair string) error {
	key, val, ok := strings.Cut(pair, "=")
	if !ok || key == "" {
		return fmt.Errorf("parameter %q must be key=value", pair)
	}
	return setMemberParam(m, strings.ToLower(key), val)
}

// setMemberParam sets one BalancerMember parameter from its value, as httpd's
// set_worker_param and set_worker_hc_param read it. key is lower-case. The
// error names the key.
func setMemberParam(m *Member, key, val string) error {
	switch key {
	case "loadfactor":
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || int(f*100) < 100 || int(f*100) > 10000 {
			return fmt.Errorf("loadfactor must be a number between 1..100, not %q", val)
		}
		m.LoadFactor = f
	case "lbset":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > 99 {
			return fmt.Errorf("lbset must be between 0 and 99, not %q", val)
		}
		m.LBSet = n
	case "route":
		if len(val) > 63 {
			return fmt.Errorf("route must be shorter than 64 characters")
		}
		m.Route = val
	case "redirect":
		if len(val) > 63 {
			return fmt.Errorf("redirect must be shorter than 64 characters")
		}
		m.Redirect = val
	case "status":
		// httpd applies each status= in turn; keep the earlier ones.
		s := val
		if m.Status != "" && s != "" && s[0] != '+' && s[0] != '-' {
			s = "+" + s
		}
		s = m.Status + s
		if _, err := balancer.ParseStatus(s, 0); err != nil {
			return fmt.Errorf("status=%s: %v", val, err)
		}
		m.Status = s
	case "retry":
		dur, err := parseSeconds(val)
		if err != nil || dur < 0 {
			return fmt.Errorf("retry must be a positive value (seconds, or a duration such as 1500ms), not %q", val)
		}
		d := caddy.Duration(dur)
		m.Retry = &d
	case "timeout":
		dur, err := parseSeconds(val)
		if err != nil || dur <= 0 {
			return fmt.Errorf("timeout must be at least one second (seconds, or a duration such as 1500ms), not %q", val)
		}
		m.Timeout = caddy.Duration(dur)
	case "hcmethod":
		meth := strings.ToUpper(val)
		switch meth {
		case "NONE":
			m.HCMethod = ""
		case "TCP", "OPTIONS", "HEAD", "GET", "OPTIONS11", "HEAD11", "GET11":
			m.HCMethod = meth
		default:
			return fmt.Errorf("hcmethod: unknown health check method %q (TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11 or NONE)", val)
		}
	case "hcuri":
		if len(val) > 63 {
			return fmt.Errorf("hcuri must be shorter than 64 characters")
		}
		m.HCURI = val
	case "hcinterval":
		dur, err := parseSeconds(val)
		if err != nil || dur < 100*time.Millisecond {
			return fmt.Errorf("hcinterval must be at least 100ms (seconds, or a duration such as 500ms), not %q", val)
		}
		m.HCInterval = caddy.Duration(dur)
	case "hcpasses":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("hcpasses must be a positive value, not %q", val)
		}
		m.HCPasses = n
	case "hcfails":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("hcfails must be a positive value, not %q", val)
		}
		m.HCFails = n
	case "hcexpr":
		m.HCExpr = val
	default:
		if hint, ok := unsupportedMemberKeys[key]; ok {
			return fmt.Errorf("member parameter %q is not supported: %s", key, hint)
		}
		return fmt.Errorf("unknown member parameter %q", key)
	}
	return nil
}

// setOnOff reads httpd's On|Off, in any case.
func setOnOff(dst *bool, key, val string) error {
	switch strings.ToLower(val) {
	case "on":
		*dst = true
	case "off":
		*dst = false
	default:
		return fmt.Errorf("%s must be On|Off, not %q", key, val)
	}
	return nil
}

// isInteger reports whether s is an optionally signed decimal integer.
func isInteger(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseSeconds reads a time as httpd does, a bare integer being seconds, or as
// a Caddy duration (1500ms, 2m, 1d).
func parseSeconds(s string) (time.Duration, error) {
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	return caddy.ParseDuration(s)
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
