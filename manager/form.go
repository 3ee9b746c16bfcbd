package manager

import (
	"strings"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// httpd's form protocol: the parameters of a manager request and what they
// change, as balancer_handler and balancer_process_balancer_worker
// (mod_proxy_balancer.c) read them (docs/behaviour.md §7.2, §7.3). Invalid
// values are ignored one by one, as httpd ignores them; what is valid becomes
// one balancer.Edit.

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

// managerString is httpd's "if (*val && strlen(val) < sizeof(field)) strcpy
// else clear" for the route and redirect fields (char[64]).
func managerString(v string) string {
	if v == "" || len(v) > balancer.MaxRouteLen {
		return ""
	}
	return v
}

// formEdit turns the change parameters of a manager request into the edit
// httpd would make: the worker fields of w (nil: none), then the balancer
// fields. The member addition (b_nwrkr with b_wyes=1) is returned apart:
// httpd applies it last, and a failed addition (400) leaves the other changes
// in place.
func formEdit(v balancer.View, w *balancer.MemberView, p map[string]string) (balancer.Edit, *balancer.MemberConfig) {
	var e balancer.Edit
	if w != nil {
		e.Members = []balancer.MemberEdit{workerEdit(w, p)}
	}
	balancerEdit(&e, v, p)
	var add *balancer.MemberConfig
	if p["b_wyes"] == "1" {
		if url, ok := p["b_nwrkr"]; ok {
			// A member added by the manager starts Disabled.
			add = &balancer.MemberConfig{URL: url, Status: balancer.Disabled}
		}
	}
	return e, add
}

// workerEdit reads the w_* fields: w_lf, w_wr, w_rr, w_status_{I,N,D,H,R,S,C},
// w_ls and the health-check fields w_hi, w_hp, w_hf, w_hm, w_hu, w_he.
func workerEdit(w *balancer.MemberView, p map[string]string) balancer.MemberEdit {
	me := balancer.MemberEdit{Name: w.Name}
	if v, ok := p["w_lf"]; ok {
		f := CAtof(v) * 100.0
		if f >= 100 && f < 10001 {
			if lf := int(f); balancer.CheckLBFactor(lf) == nil {
				me.LoadFactor = &lf
			}
		}
	}
	if v, ok := p["w_wr"]; ok {
		r := managerString(v)
		me.Route = &r
	}
	if v, ok := p["w_rr"]; ok {
		r := managerString(v)
		me.Redirect = &r
	}
	for i := 0; i < len(balancer.ManagerFlags); i++ {
		letter := balancer.ManagerFlags[i]
		if v, ok := p["w_status_"+string(letter)]; ok {
			f, _ := balancer.FlagForLetter(letter)
			if CAtoi(v) != 0 {
				me.Set, me.Clear = me.Set|f, me.Clear&^f
			} else {
				me.Set, me.Clear = me.Set&^f, me.Clear|f
			}
		}
	}
	if v, ok := p["w_ls"]; ok {
		if n := CAtoi(v); balancer.CheckLBSet(n) == nil {
			me.LBSet = &n
		}
	}
	if hc, changed := healthCheckEdit(w.HC, p); changed {
		me.HealthCheck = &hc
	}
	return me
}

// healthCheckEdit applies the w_h* fields to the member's settings.
func healthCheckEdit(cur balancer.HealthCheck, p map[string]string) (balancer.HealthCheck, bool) {
	hc := cur
	if v, ok := p["w_hi"]; ok {
		if d, ok := ParseTimeoutParameter(v, "ms"); ok && d >= balancer.MinHCInterval {
			hc.Interval = d
		}
	}
	if v, ok := p["w_hp"]; ok {
		if n := CAtoi(v); n >= 1 {
			hc.Passes = n
		}
	}
	if v, ok := p["w_hf"]; ok {
		if n := CAtoi(v); n >= 1 {
			hc.Fails = n
		}
	}
	if v, ok := p["w_hm"]; ok {
		switch u := strings.ToUpper(v); {
		case u == "NONE":
			hc.Method = ""
		case u != "" && balancer.ValidHCMethod(u):
			hc.Method = u
		}
	}
	if v, ok := p["w_hu"]; ok {
		hc.URI = managerString(v)
	}
	if v, ok := p["w_he"]; ok {
		// httpd takes the name of a ProxyHCExpr; here hcexpr is the condition
		// itself, so a valid condition is taken and anything else clears it.
		hc.Expr = ""
		if v != "" && len(v) < 256 {
			if _, err := balancer.ParseHCExpr(v); err == nil {
				hc.Expr = v
			}
		}
	}
	if m := strings.ToUpper(hc.Method); m == "" || m == "NONE" || m == "TCP" {
		hc.Expr = ""
	}
	return hc, hc != cur
}

// balancerEdit reads the b_* fields: b_lbm, b_tmo, b_max, b_sforce, b_ss.
func balancerEdit(e *balancer.Edit, v balancer.View, p map[string]string) {
	if s, ok := p["b_lbm"]; ok && len(s) < 15 && s != v.LBMethod {
		if _, err := balancer.MethodByName(s); err == nil {
			e.LBMethod = &s
		}
	}
	if s, ok := p["b_tmo"]; ok {
		if n := CAtoi(s); n >= 0 && n <= 7200 {
			d := time.Duration(n) * time.Second
			e.Timeout = &d
		}
	}
	if s, ok := p["b_max"]; ok {
		if n := CAtoi(s); balancer.CheckRuntimeMaxAttempts(n) == nil {
			e.MaxAttempts = &n
		}
	}
	if s, ok := p["b_sforce"]; ok {
		on := CAtoi(s) != 0
		e.NoFailover = &on
	}
	// b_ss: "-" removes sticky sessions; otherwise the value is both cookie
	// and URL parameter name unless it holds '|', which splits it. No white
	// space is trimmed; a value of 63 characters or more is ignored.
	if s, ok := p["b_ss"]; ok && s != "" && len(s) < 63 {
		ss := balancer.ParseStickySession(s)
		if s == "-" {
			ss = balancer.StickySession{}
		}
		e.StickySession = &ss
	}
}
