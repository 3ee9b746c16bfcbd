package balancer

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fuzz targets of the engine's parsers of untrusted input: the status=
// syntax, the sticky-session extraction from URLs and Cookie headers, a whole
// Pick with a hostile request, the manager form values and the member URL.
// Plain `go test` runs the seeds (f.Add and testdata/fuzz/<Target>/); CI
// (.ci/fuzz.sh) runs each target for a fixed number of executions, e.g.
//
//	go test -run '^$' -fuzz '^FuzzPathParam$' -fuzztime 200000x ./balancer/
//
// Where httpd's C code is simple enough, the property is differential: the
// result must equal a literal re-statement of the C function's pointer walk
// (cStrstr, cStrtok below), written from docs/behaviour.md, §4.2/§4.3.

// allFlags are the twelve defined status bits.
const allFlags = Initialized | IgnoreErrors | Drain | Generic | InShutdown | Disabled | Stopped |
	InError | HotStandby | Free | HCFail | HotSpare

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"", "+H", "D", "-I+E", "+R-I", "hR", "+", "-", "+-H", "X", "+h-h+h", "ONGUDSEHFCRI", "-O"} {
		f.Add(s, uint16(Initialized))
	}
	f.Add("+E", uint16(0xffff))
	f.Fuzz(func(t *testing.T, value string, cur16 uint16) {
		cur := Status(cur16)
		out, err := ParseStatus(value, cur)
		if err != nil {
			// The value is a configuration error; the status returned with
			// it is not used by any caller.
			return
		}
		// Only flags named in the value may change.
		var named Status
		for i := 0; i < len(value); i++ {
			if value[i] == '+' || value[i] == '-' {
				continue
			}
			fl, ok := FlagForLetter(value[i])
			if !ok {
				t.Fatalf("ParseStatus(%q) accepted the unknown letter %q", value, value[i])
			}
			named |= fl
		}
		if (out^cur)&^named != 0 {
			t.Fatalf("ParseStatus(%q): %#x -> %#x changes flags not named in the value", value, uint16(cur), uint16(out))
		}
		if len(value) > 0 && (value[len(value)-1] == '+' || value[len(value)-1] == '-') {
			t.Fatalf("ParseStatus(%q) accepted a trailing sign", value)
		}
		// Applying the same change twice is the same as once.
		again, err := ParseStatus(value, out)
		if err != nil || again != out {
			t.Fatalf("ParseStatus(%q) not idempotent: %#x then %#x (%v)", value, uint16(out), uint16(again), err)
		}
		// The rendered letters parse back to the same defined flags.
		def := out & allFlags
		back, err := ParseStatus(def.Letters(), 0)
		if err != nil || back != def {
			t.Fatalf("Letters %q of %#x parse back to %#x (%v)", def.Letters(), uint16(def), uint16(back), err)
		}
		if s := out.String(); !strings.HasSuffix(s, " ") {
			t.Fatalf("status string %q does not end with a space", s)
		}
		// The run-time variant accepts a subset and never touches E or O.
		set, clear, err := ParseStatusChange(value)
		if err == nil && (set|clear)&(InError|Initialized) != 0 {
			t.Fatalf("ParseStatusChange(%q) changes E or O: set %s clear %s", value, set.Letters(), clear.Letters())
		}
	})
}

// cStrstr is C's strstr on the NUL-terminated string s starting at from: the
// index of the first occurrence of name at or after from, -1 if none. from
// beyond the terminator is undefined behaviour in C; it is reported as "none"
// (ok false) so that the caller can stop.
func cStrstr(s string, from int, name string) (idx int, ok bool) {
	if from > len(s) {
		return -1, false
	}
	i := strings.Index(s[from:], name)
	if i < 0 {
		return -1, true
	}
	return from + i, true
}

// cStrtok is apr_strtok's first call: skip leading delimiters, then the token
// up to the next delimiter; nil (ok false) when only delimiters remain.
func cStrtok(s, delims string) (string, bool) {
	i := 0
	for i < len(s) && strings.IndexByte(delims, s[i]) >= 0 {
		i++
	}
	if i == len(s) {
		return "", false
	}
	s = s[i:]
	if e := strings.IndexAny(s, delims); e >= 0 {
		s = s[:e]
	}
	return s, true
}

// refPathParam restates get_path_param (mod_proxy_balancer.c): the loop
// `for (path = strstr(url, name); path; path = strstr(path + 1, name))`, whose
// body has already advanced path past the name (and past '=' if there was
// one), so the next search starts one character after that.
func refPathParam(url, name string, scolon bool) (string, bool) {
	delims := "?&"
	if scolon {
		delims = ";?&"
	}
	p, ok := cStrstr(url, 0, name)
	for ok && p >= 0 {
		p += len(name)
		if p < len(url) && url[p] == '=' {
			p++
			if p < len(url) {
				return cStrtok(url[p:], delims)
			}
		}
		p, ok = cStrstr(url, p+1, name)
	}
	return "", false
}

// refCookieParam restates get_cookie_param: an occurrence counts at the start
// of the header or after ';', ',' or isspace(); then white space, a '=' that
// is consumed whether or not it matches (`*start_cookie++ == '='`), and at
// least one more character. The next search starts one after the pointer.
func refCookieParam(h, name string) (string, bool) {
	p, ok := cStrstr(h, 0, name)
	for ok && p >= 0 {
		if p == 0 || h[p-1] == ';' || h[p-1] == ',' || isSpace(h[p-1]) {
			p += len(name)
			for p < len(h) && isSpace(h[p]) {
				p++
			}
			var c byte // the NUL terminator when p == len(h)
			if p < len(h) {
				c = h[p]
			}
			p++
			if c == '=' && p < len(h) {
				v := h[p:]
				if e := strings.IndexByte(v, ';'); e >= 0 {
					v = v[:e]
				}
				if e := strings.IndexByte(v, ','); e >= 0 {
					v = v[:e]
				}
				return v, true
			}
		}
		p, ok = cStrstr(h, p+1, name)
	}
	return "", false
}

func FuzzPathParam(f *testing.F) {
	for _, s := range []string{
		"balancer://st/a;jsessionid=abc.r3",
		"balancer://st/a;jsessionid=abc.r3;foo=bar",
		"balancer://st/a?x=1&jsessionid=abc.r3&y=2",
		"balancer://st/a?jsessionid=&jsessionid=x.r3",
		"balancer://st/a?jsessionid=",
		"balancer://st/ajsessionidjsessionid=abc.r3",
		"balancer://st/a?jsessionid&jsessionid=x.r1",
		"balancer://st/a?foo=xjsessionid=abc.r3",
		"jsessionid=&&&",
	} {
		f.Add(s, "jsessionid", false)
		f.Add(s, "jsessionid", true)
	}
	f.Add("aa=x", "a", false)
	f.Add("a=b", "", false)
	f.Fuzz(func(t *testing.T, url, name string, scolon bool) {
		v, ok := PathParam(url, name, scolon)
		if !ok {
			if v != "" {
				t.Fatalf("not found but value %q", v)
			}
		} else {
			if v == "" || !strings.Contains(url, v) {
				t.Fatalf("PathParam(%q, %q) = %q: empty or not part of the URL", url, name, v)
			}
			delims := "?&"
			if scolon {
				delims += ";"
			}
			if strings.ContainsAny(v, delims) {
				t.Fatalf("PathParam(%q, %q) = %q contains a delimiter", url, name, v)
			}
		}
		// Differential: httpd's get_path_param. Names are never empty in
		// a balancer (a sticky name is required), and C strings end at NUL.
		if name == "" || strings.IndexByte(url, 0) >= 0 || strings.IndexByte(name, 0) >= 0 {
			return
		}
		rv, rok := refPathParam(url, name, scolon)
		if rv != v || rok != ok {
			t.Fatalf("PathParam(%q, %q, %v) = %q, %v; httpd's get_path_param gives %q, %v", url, name, scolon, v, ok, rv, rok)
		}
	})
}

func FuzzCookieParam(f *testing.F) {
	for _, s := range []string{
		"JSESSIONID=abc.r2", "x=1; JSESSIONID = abc.r3", "xJSESSIONID=abc.r3", "a=1, JSESSIONID=x.r2",
		"JSESSIONID=\"x.r2\"", "JSESSIONID=x.r2 ; b=1", "JSESSIONID;JSESSIONID=.r1", "JSESSIONID", "JSESSIONID=",
		"JSESSIONID JSESSIONID=.r1", "JSESSIONID=;a",
	} {
		f.Add(s, "JSESSIONID")
	}
	f.Add("a a=.r1", "a")
	f.Add("aa=1", "a")
	f.Fuzz(func(t *testing.T, header, name string) {
		v, ok := CookieParam(header, name)
		if !ok {
			if v != "" {
				t.Fatalf("not found but value %q", v)
			}
		} else if strings.ContainsAny(v, ";,") || !strings.Contains(header, v) {
			t.Fatalf("CookieParam(%q, %q) = %q", header, name, v)
		}
		if name == "" || strings.IndexByte(header, 0) >= 0 || strings.IndexByte(name, 0) >= 0 {
			return
		}
		rv, rok := refCookieParam(header, name)
		if rv != v || rok != ok {
			t.Fatalf("CookieParam(%q, %q) = %q, %v; httpd's get_cookie_param gives %q, %v", header, name, v, ok, rv, rok)
		}
	})
}

func FuzzRouteFromValue(f *testing.F) {
	for _, s := range []string{"abc.r2", "abc", ".r3", "abc.", "x.r2.x", "x!r2", ""} {
		f.Add(s, byte('.'))
		f.Add(s, byte(0))
		f.Add(s, byte('!'))
	}
	f.Fuzz(func(t *testing.T, value string, sep byte) {
		r, ok := RouteFromValue(value, sep)
		switch {
		case sep == 0:
			if !ok || r != value {
				t.Fatalf("sep Off: %q -> %q, %v", value, r, ok)
			}
		case ok:
			// find_session_route: everything after the first separator.
			i := strings.IndexByte(value, sep)
			if i < 0 || r != value[i+1:] {
				t.Fatalf("RouteFromValue(%q, %q) = %q", value, sep, r)
			}
		default:
			if strings.IndexByte(value, sep) >= 0 || r != "" {
				t.Fatalf("RouteFromValue(%q, %q): no route but separator present or value %q", value, sep, r)
			}
		}
	})
}

// FuzzPick runs whole selections with a hostile URL and Cookie header on a
// sticky balancer whose members carry routes, redirects (with a cycle) and
// assorted flags, each picked member then failing its connection: no panic,
// busy back to zero after Release, and the member picked is the one the
// test's own model of the members (pickModel, written from
// proxy_balancer_pre_request, find_route_worker and the lbmethods' tiers)
// allows: the route's member when it is usable, else the member a chain of
// redirects leads to, else (or without a route) a member of the first tier
// that a balanced pick draws from, with BALANCER_ROUTE_CHANGED set; or one of
// the two 503 errors exactly when the model has no member to give.
func FuzzPick(f *testing.F) {
	f.Add("balancer://fz/a;jsessionid=abc.r1", "JSESSIONID=x.r2", byte('.'), false, false, uint8(0))
	f.Add("balancer://fz/a?jsessionid=abc.r3", "", byte('.'), true, true, uint8(1))
	f.Add("balancer://fz/", "JSESSIONID=.r4", byte(0), false, true, uint8(2))
	f.Add("balancer://fz/x?jsessionid=r5", "JSESSIONID=r2", byte(0), false, false, uint8(3))
	f.Add("", "JSESSIONID=a.r9, JSESSIONID=b.r1", byte('.'), false, true, uint8(4))
	f.Add("/x?jsessionid=.r1", "", byte('.'), false, false, uint8(16+4))
	f.Fuzz(func(t *testing.T, url, cookie string, sep byte, scolon, nofailover bool, variant uint8) {
		methods := []string{"byrequests", "bybusyness", "bytraffic"}
		st := func(s string) Status {
			v, err := ParseStatus(s, 0)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		retry := time.Minute
		if variant&16 != 0 {
			retry = 500 * time.Millisecond // a failed member is retried by the next request
		}
		cfg := Config{
			Name: "fz", LBMethod: methods[int(variant)%3], StickySession: "JSESSIONID", StickyPath: "jsessionid",
			StickySeparator: sep, SColonPathDelim: scolon, NoFailover: nofailover, ForceRecovery: variant&8 == 0,
			Members: []MemberConfig{
				{URL: "http://127.0.0.1:1", Route: "r1", Redirect: "r2", Status: st("D")},
				{URL: "http://127.0.0.1:2", Route: "r2", Redirect: "r1", LBSet: 1},
				{URL: "http://127.0.0.1:3", Route: "r3", Status: st("N")},
				{URL: "http://127.0.0.1:4", Route: "r4", Status: st("H")},
				{URL: "http://127.0.0.1:5", Route: "r5", Status: st("R")},
			},
		}
		model := &pickModel{retry: retry, forceRecovery: cfg.ForceRecovery, members: []*modelMember{
			{route: "r1", redirect: "r2", disabled: true},
			{route: "r2", redirect: "r1", lbset: 1},
			{route: "r3", drain: true},
			{route: "r4", standby: true},
			{route: "r5", spare: true},
		}}
		if variant&4 != 0 {
			cfg.Members[1].Status = st("E")
			model.members[1].inError = true // error time 0: retried at the first look
		}
		for i := range cfg.Members {
			cfg.Members[i].Retry = &retry
		}
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		index := map[*Member]int{}
		for i, m := range b.Members() {
			index[m] = i
		}
		clock := testEpoch
		b.Now = func() time.Time { return clock }

		// The session route, from the reference re-statements of
		// get_path_param and get_cookie_param (C strings: not with NUL).
		var wantRoute string
		var wantHasRoute, checkRoute bool
		if strings.IndexByte(url, 0) < 0 && strings.IndexByte(cookie, 0) < 0 {
			checkRoute = true
			value, found := refPathParam(url, "jsessionid", scolon)
			if !found {
				value, found = refCookieParam(cookie, "JSESSIONID")
			}
			if found {
				if sep == 0 {
					wantRoute, wantHasRoute = value, true
				} else if i := strings.IndexByte(value, sep); i >= 0 {
					wantRoute, wantHasRoute = value[i+1:], true
				}
			}
		}

		for i := 0; i < 2; i++ {
			p, err := b.Pick(context.Background(), &Request{URL: url, Cookie: cookie})
			if checkRoute && (p.HasRoute != wantHasRoute || p.Route != wantRoute) {
				t.Fatalf("session route %q (found %v); get_path_param/get_cookie_param give %q (found %v)",
					p.Route, p.HasRoute, wantRoute, wantHasRoute)
			}
			want := model.pick(clock, p.HasRoute, p.Route, nofailover)
			if err != nil {
				if err != ErrNoMember && err != ErrNoFailover {
					t.Fatalf("Pick %d: unexpected error %v", i, err)
				}
				if p.Member != nil {
					t.Fatalf("Pick %d failed (%v) but returned a member", i, err)
				}
				if err != want.err {
					t.Fatalf("Pick %d (route %q, found %v): %v; the model expects %s", i, p.Route, p.HasRoute, err, want)
				}
				continue
			}
			if p.Member == nil {
				t.Fatalf("Pick %d: no member and no error", i)
			}
			got, ok := index[p.Member]
			if !ok {
				t.Fatalf("Pick %d: member %s is not one of the balancer's", i, p.Member.Name())
			}
			if want.err != nil || !want.allows(got) || p.RouteChanged != want.routeChanged {
				t.Fatalf("Pick %d (route %q, found %v): member %d (%s, route %q), route changed %v; the model expects %s\nmembers: %s",
					i, p.Route, p.HasRoute, got+1, p.Member.Name(), p.Member.Route(), p.RouteChanged, want, model)
			}
			if p.WorkerRoute != p.Member.Route() {
				t.Fatalf("WorkerRoute %q, member route %q", p.WorkerRoute, p.Member.Route())
			}
			p.Member.ConnectFailed() // the next iteration sees an E member
			model.failed(got, clock)
			p.Member.Release()
			clock = clock.Add(time.Second)
		}
		for _, s := range b.States() {
			if s.Busy != 0 || s.Elected < 0 || s.LBStatus < -math.MaxInt32 {
				t.Fatalf("member %s: busy %d elected %d lbstatus %d after every request ended", s.Name, s.Busy, s.Elected, s.LBStatus)
			}
		}
	})
}

// modelMember is FuzzPick's record of one member: what its configuration
// says, and when the test last made its connection fail.
type modelMember struct {
	route, redirect                 string
	lbset                           int
	disabled, drain, standby, spare bool
	inError                         bool
	failedAt                        time.Time // zero: E from the configuration (error time 0)
}

// pickModel is FuzzPick's expectation of a selection, from httpd's rules
// rather than from the engine's code.
type pickModel struct {
	members       []*modelMember
	retry         time.Duration
	forceRecovery bool
}

// errorOver reports whether the member is out of error once
// ap_proxy_retry_worker has looked at it: not in error, or its retry period
// has passed (the error time is the Unix epoch for a configured E).
func (pm *pickModel) errorOver(m *modelMember, now time.Time) bool {
	if !m.inError {
		return true
	}
	at := m.failedAt
	if at.IsZero() {
		at = time.Unix(0, 0)
	}
	return now.Sub(at) > pm.retry
}

// usable is PROXY_WORKER_IS_USABLE after the retry rule: not disabled and
// out of error.
func (pm *pickModel) usable(m *modelMember, now time.Time) bool {
	return !m.disabled && pm.errorOver(m, now)
}

func (pm *pickModel) failed(i int, now time.Time) {
	pm.members[i].inError, pm.members[i].failedAt = true, now
}

// pickWant is the set of outcomes the model allows.
type pickWant struct {
	err          error
	members      []int // any one of these
	routeChanged bool
}

func (w pickWant) allows(i int) bool {
	for _, m := range w.members {
		if m == i {
			return true
		}
	}
	return false
}

func (w pickWant) String() string {
	if w.err != nil {
		return fmt.Sprintf("error %q", w.err)
	}
	var ms []string
	for _, m := range w.members {
		ms = append(ms, strconv.Itoa(m+1))
	}
	return fmt.Sprintf("one of members [%s], route changed %v", strings.Join(ms, " "), w.routeChanged)
}

func (pm *pickModel) String() string {
	var out []string
	for i, m := range pm.members {
		flags := ""
		for _, f := range []struct {
			on     bool
			letter string
		}{{m.disabled, "D"}, {m.drain, "N"}, {m.standby, "H"}, {m.spare, "R"}, {m.inError, "E"}} {
			if f.on {
				flags += f.letter
			}
		}
		e := ""
		if m.inError && !m.failedAt.IsZero() {
			e = " since " + m.failedAt.Format(time.TimeOnly)
		}
		out = append(out, fmt.Sprintf("%d: route %q redirect %q lbset %d flags %q%s", i+1, m.route, m.redirect, m.lbset, flags, e))
	}
	return strings.Join(out, "; ")
}

// pick is proxy_balancer_pre_request with the model's members at time now.
func (pm *pickModel) pick(now time.Time, hasRoute bool, route string, nofailover bool) pickWant {
	// force_recovery: when every member is still in error once the retry
	// rule has been applied, forcerecovery lifts E on all of them.
	allInError := true
	for _, m := range pm.members {
		if pm.errorOver(m, now) {
			allInError = false
			break
		}
	}
	if allInError && pm.forceRecovery {
		for _, m := range pm.members {
			m.inError = false
		}
	}
	if hasRoute && route != "" {
		// find_route_worker: the member with the route if usable, else
		// follow its redirect, to a depth below the member count. (The
		// model's routes are unique, so the standby pass does not matter.)
		byRoute := map[string]int{}
		for i, m := range pm.members {
			byRoute[m.route] = i
		}
		r := route
		for depth := 1; depth <= len(pm.members); depth++ {
			i, ok := byRoute[r]
			if !ok {
				break
			}
			if pm.usable(pm.members[i], now) {
				return pickWant{members: []int{i}, routeChanged: pm.members[i].route != route}
			}
			if pm.members[i].redirect == "" {
				break
			}
			r = pm.members[i].redirect
		}
		if _, ok := byRoute[route]; ok && nofailover {
			return pickWant{err: ErrNoFailover}
		}
	}
	// A balanced pick: the lowest lbset that has a candidate; in it the
	// usable regular members (not draining, not spares, not standbys), plus
	// as many usable spares, in order, as there are regular members out of
	// use (draining or unusable); if that is none, the usable standbys.
	maxSet := 0
	for _, m := range pm.members {
		maxSet = max(maxSet, m.lbset)
	}
	for set := 0; set <= maxSet; set++ {
		var regular, spares, standbys []int
		out := 0
		for i, m := range pm.members {
			if m.lbset != set {
				continue
			}
			ok := pm.usable(m, now) && !m.drain
			switch {
			case m.spare:
				if ok {
					spares = append(spares, i)
				}
			case m.standby:
				if ok {
					standbys = append(standbys, i)
				}
			case ok:
				regular = append(regular, i)
			default:
				out++
			}
		}
		cands := append(regular, spares[:min(out, len(spares))]...)
		if len(cands) == 0 {
			cands = standbys
		}
		if len(cands) > 0 {
			return pickWant{members: cands, routeChanged: true}
		}
	}
	return pickWant{err: ErrNoMember}
}

// FuzzMemberURL: member URLs (configuration, the manager's b_nwrkr and w, the
// JSON API) never panic the normalizer or the longest-prefix lookup, and a
// valid URL's member is found again by its own name.
func FuzzMemberURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "HTTP://Example.COM:80/app", "https://[::1]:443/x%20y",
		"ajp://h:8009", "http://", "http://u@h", "http://h?q", "http://h/#f", "http://h:99999", "http:/x",
		"javascript:alert(1)", "http://h/<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		b, err := New(Config{Name: "u", Growth: 1, Members: []MemberConfig{{URL: "http://127.0.0.1:1"}}})
		if err != nil {
			t.Fatal(err)
		}
		_ = b.FindMember(raw)
		name, _, _, _, _, _, err := NormalizeURL(raw)
		m, aerr := addMember(b, raw)
		if err != nil {
			if aerr == nil {
				t.Fatalf("add accepted %q that NormalizeURL rejects (%v)", raw, err)
			}
			return
		}
		if aerr != nil {
			return // exists already, or a name too long
		}
		if m.Name() != name || b.FindMemberByName(name) != m || b.FindMember(name) != m {
			t.Fatalf("member %q (name %q) not found again", raw, name)
		}
		if err := removeMember(b, m.Name()); err != nil {
			t.Fatalf("remove: %v", err)
		}
	})
}
