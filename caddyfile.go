package caddybalancer

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
	"github.com/lbset/caddy-balancer/fleet"
	"github.com/lbset/caddy-balancer/proxypassreverse"
)

// The Caddyfile directives: balancer, balancer_manager, and the balancer_member
// lines of lb_policy byrequests|bybusyness|bytraffic. Parameter values are
// read by package config, as the httpd adapter reads them; the rules are
// the engine's.

func init() {
	httpcaddyfile.RegisterHandlerDirective("balancer", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("balancer", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("balancer_manager", parseManagerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("balancer_manager", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterGlobalOption("balancer_fleet", parseFleetOption)
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
//	    growth_allow     <host|IP|CIDR>...
//	    slowstart        <seconds>|<duration>
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
		name, err := config.ParseName(rd.Val())
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
			var m config.Member
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

// ownSubdirectives are the balancer's subdirectives (the rest are reverse_proxy's).
var ownSubdirectives = map[string]bool{
	"lbmethod": true, "stickysession": true, "stickysessionsep": true, "scolonpathdelim": true,
	"nofailover": true, "maxattempts": true, "timeout": true, "forcerecovery": true,
	"failonstatus": true, "failontimeout": true, "growth": true, "growth_allow": true, "slowstart": true, "persist": true, "nonce": true,
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
		h.RouteCookie = &config.RouteCookie{Attributes: strings.Join(args, " ")}
		return nil
	case "growth_allow":
		args, err := lineArgs(d)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			return d.Errf("growth_allow: want host names, IP addresses or CIDR ranges")
		}
		if err := balancer.CheckGrowthAllow(args); err != nil {
			return d.Errf("%v", err)
		}
		h.GrowthAllow = append(h.GrowthAllow, args...)
		return nil
	case "failonstatus":
		args, err := lineArgs(d)
		if err != nil {
			return err
		}
		codes, err := config.ParseFailOnStatus(args)
		if err != nil {
			return d.Errf("%v", err)
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
		rule := proxypassreverse.CookieRule{Internal: args[0], Public: args[1]}
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
	if err := h.SetParam(key, val); err != nil {
		return d.Errf("%v", err)
	}
	return nil
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
	var ppr proxypassreverse.Rule
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
			name, err := config.ParseName(p)
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
func unmarshalMember(d *caddyfile.Dispenser) (config.Member, error) {
	var m config.Member
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
		if err := m.SetPair(d.Val()); err != nil {
			return m, d.Errf("%s: %v", where, err)
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		tok := d.Val()
		if strings.Contains(tok, "=") {
			// key=value pasted into the block form
			pairs := append([]string{tok}, d.RemainingArgs()...)
			for _, p := range pairs {
				if err := m.SetPair(p); err != nil {
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
				_, known := config.MemberKeys[key]
				if _, ext := config.ExtensionMemberKeys[key]; known || ext {
					return m, d.Errf("%s: %s: want exactly one value, got %d", where, tok, len(args))
				}
			}
			if err := m.SetParam(key, val); err != nil {
				return m, d.Errf("%s: %v", where, err)
			}
		}
	}
	return m, nil
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

// parseFleetOption reads the global option that makes the balancers of this
// Caddy part of a fleet (App.Fleet):
//
//	balancer_fleet {
//	    redis <host:port>... {          # or: storage { poll_interval <duration> }
//	        username          <name>
//	        password          <password>   # e.g. {env.REDIS_PASSWORD}
//	        db                <n>
//	        master_name       <name>       # Sentinel: the addresses are Sentinels
//	        sentinel_password <password>
//	        cluster                        # Redis Cluster with one address
//	        tls               [insecure_skip_verify]
//	        timeout           <duration>
//	    }
//	    key_prefix      <prefix>
//	    balancers       <name>...
//	    node            <id>
//	    resync_interval <duration>
//	}
func parseFleetOption(d *caddyfile.Dispenser, _ any) (any, error) {
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var cfg fleet.Config
	dur := func(dst *caddy.Duration) error {
		key := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		v, err := caddy.ParseDuration(d.Val())
		if err != nil || v <= 0 {
			return d.Errf("%s: want a positive duration such as 2s, not %q", key, d.Val())
		}
		*dst = caddy.Duration(v)
		return nil
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "redis":
			cfg.Redis = &fleet.RedisConfig{Addresses: d.RemainingArgs()}
			if len(cfg.Redis.Addresses) == 0 {
				return nil, d.Errf("redis: want the server's host:port")
			}
			err = parseFleetRedis(d, cfg.Redis, dur)
		case "storage":
			cfg.Storage = &fleet.StorageConfig{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if d.Val() != "poll_interval" {
					return nil, d.Errf("storage: unknown option %q (poll_interval)", d.Val())
				}
				err = dur(&cfg.Storage.PollInterval)
			}
		case "key_prefix":
			err = oneArgInto(d, &cfg.KeyPrefix)
		case "node":
			err = oneArgInto(d, &cfg.Node)
		case "balancers":
			cfg.Balancers = d.RemainingArgs()
			for i, n := range cfg.Balancers {
				if cfg.Balancers[i], err = config.ParseName(n); err != nil {
					return nil, d.Errf("balancers: %v", err)
				}
			}
		case "resync_interval":
			err = dur(&cfg.ResyncInterval)
		default:
			return nil, d.Errf("balancer_fleet: unknown option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, d.Errf("balancer_fleet: %v", err)
	}
	return httpcaddyfile.App{Name: "balancer", Value: caddyconfig.JSON(App{Fleet: &cfg}, nil)}, nil
}

// parseFleetRedis reads the block of the fleet's redis option.
func parseFleetRedis(d *caddyfile.Dispenser, r *fleet.RedisConfig, dur func(*caddy.Duration) error) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "username":
			err = oneArgInto(d, &r.Username)
		case "password":
			err = oneArgInto(d, &r.Password)
		case "sentinel_password":
			err = oneArgInto(d, &r.SentinelPassword)
		case "master_name":
			err = oneArgInto(d, &r.MasterName)
		case "db":
			var s string
			if err = oneArgInto(d, &s); err == nil {
				if r.DB, err = strconv.Atoi(s); err != nil || r.DB < 0 {
					err = d.Errf("db: want a database number, not %q", s)
				}
			}
		case "cluster":
			r.Cluster = true
		case "tls":
			r.TLS = &fleet.RedisTLS{}
			for _, a := range d.RemainingArgs() {
				if a != "insecure_skip_verify" {
					return d.Errf("tls: unknown option %q (insecure_skip_verify)", a)
				}
				r.TLS.InsecureSkipVerify = true
			}
		case "timeout":
			err = dur(&r.Timeout)
		default:
			return d.Errf("redis: unknown option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// oneArgInto reads the single argument of the current line into dst.
func oneArgInto(d *caddyfile.Dispenser, dst *string) error {
	key := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: want a value", key)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: want one value", key)
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*ManagerHandler)(nil)
)
