package balancer

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// Fuzz targets of the engine's parsers of untrusted input: the status=
// syntax, the sticky-session extraction from URLs and Cookie headers, a whole
// Pick with a hostile request, the manager form values and the member URL.
// Plain `go test` runs the seeds (f.Add and testdata/fuzz/<Target>/); CI runs
// each target for a few seconds with
//
//	go test -run '^$' -fuzz '^FuzzPathParam$' -fuzztime 10s ./balancer/
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

// FuzzPick runs a whole selection with a hostile URL and Cookie header on a
// sticky balancer whose members carry routes, redirects (with a cycle) and
// assorted flags: no panic, a member or one of the two 503 errors, busy
// back to zero after Release, and a route-found member is the route's or a
// redirect's.
func FuzzPick(f *testing.F) {
	f.Add("balancer://fz/a;jsessionid=abc.r1", "JSESSIONID=x.r2", byte('.'), false, false, uint8(0))
	f.Add("balancer://fz/a?jsessionid=abc.r3", "", byte('.'), true, true, uint8(1))
	f.Add("balancer://fz/", "JSESSIONID=.r4", byte(0), false, true, uint8(2))
	f.Add("balancer://fz/x?jsessionid=r5", "JSESSIONID=r2", byte(0), false, false, uint8(3))
	f.Add("", "JSESSIONID=a.r9, JSESSIONID=b.r1", byte('.'), false, true, uint8(4))
	f.Fuzz(func(t *testing.T, url, cookie string, sep byte, scolon, nofailover bool, variant uint8) {
		methods := []string{"byrequests", "bybusyness", "bytraffic"}
		st := func(s string) Status {
			v, err := ParseStatus(s, 0)
			if err != nil {
				t.Fatal(err)
			}
			return v
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
		if variant&4 != 0 {
			cfg.Members[1].Status = st("E")
		}
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		clock := testEpoch
		b.Now = func() time.Time { return clock }
		for i := 0; i < 2; i++ {
			p, err := b.Pick(context.Background(), &Request{URL: url, Cookie: cookie})
			if err != nil {
				if err != ErrNoMember && err != ErrNoFailover {
					t.Fatalf("Pick: unexpected error %v", err)
				}
				if p.Member != nil {
					t.Fatalf("Pick failed but returned a member")
				}
				continue
			}
			if p.Member == nil {
				t.Fatal("Pick: no member and no error")
			}
			if p.HasRoute && !p.RouteChanged && p.Member.Route() != p.Route {
				t.Fatalf("route %q kept but member %s has route %q", p.Route, p.Member.Name(), p.Member.Route())
			}
			if p.WorkerRoute != p.Member.Route() {
				t.Fatalf("WorkerRoute %q, member route %q", p.WorkerRoute, p.Member.Route())
			}
			p.Member.ConnectFailed() // the next iteration sees an E member
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
