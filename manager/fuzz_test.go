package manager

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/internal/balancertest"
)

// Fuzz targets of the manager's parsers of untrusted input: the request
// pipeline (push2table, the Referer and nonce gates, the form, the HTML/XML
// rendering), httpd's form semantics and C numerics. Plain `go test` runs
// the seeds (f.Add and testdata/fuzz/<Target>/); CI fuzzes one target per
// invocation. Properties: no panic; no 5xx whatever the input; pages carry
// no markup but their own (no injection); the engine's fields stay within
// httpd's ranges.

// fuzzBalancer is a fresh balancer for one fuzz iteration.
func fuzzBalancer(t *testing.T, name string) *balancer.Balancer {
	t.Helper()
	b, err := balancer.New(balancertest.FuzzConfig(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var fuzzMethods = []string{"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "TRACE"}

// FuzzManagerRequest sends one hostile request through the whole
// balancer-manager pipeline of either home (strict: the site handler's
// Referer gate; lax: the admin endpoint's) with a same-host Referer, so that
// changes made with the nonce "n" are applied.
func FuzzManagerRequest(f *testing.F) {
	seeds := []struct {
		method uint8
		query  string
		body   string
	}{
		{0, "", ""},
		{0, "b=fz&w=http://127.0.0.1:2/app/x&nonce=n", ""},
		{0, "b=FZ/x&xml=1", ""},
		{2, "", "b=fz&nonce=n&w=http%3A%2F%2F127.0.0.1%3A1&w_lf=2.5&w_ls=3&w_wr=%3Cscript%3E&w_rr=r2&w_status_D=1"},
		{2, "", "b=fz&nonce=n&b_lbm=bybusyness&b_tmo=5&b_max=2&b_sforce=1&b_ss=A%7Cb&b_nwrkr=http%3A%2F%2F127.0.0.1%3A9&b_wyes=1"},
		{2, "", "b=fz&nonce=n&b_nwrkr=ajp%3A%2F%2F%5B%3A%3A1%5D%3A8080&b_wyes=1"},
		{2, "", "b=fz&nonce=n&w=http://127.0.0.1:1&w_hm=GET&w_hi=100&w_hp=2&w_hf=3&w_hu=%2F%22%3E%3Ci%3E&w_he=%25%7BREQUEST_STATUS%7D+%3D%3D+200&xml"},
		{2, "", "b=fz&nonce=n&w=http%253A%252F%252F127.0.0.1%253A1&w_wr=a%2500b&w_lf=1e400"},
		{2, "", "b=fz&nonce=n&b_ss=%22%3E%3Cu%3E%7C%3Cq%3E&w=http://127.0.0.1:2/app&w_wr=" + strings.Repeat("%3C", 30)},
		{3, "b=fz&nonce=n", "b=fz&nonce=n&w_status_D=1"},
		{6, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.query, s.body, true)
		f.Add(s.method, s.query, s.body, false)
	}
	f.Fuzz(func(t *testing.T, method uint8, query, body string, strict bool) {
		b := fuzzBalancer(t, "fz")
		list := func() []*balancer.Balancer { return []*balancer.Balancer{b} }
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req, err := http.NewRequest(m, "http://127.0.0.1/balancer-manager", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.RawQuery = query
		req.Header.Set("Referer", "http://127.0.0.1/balancer-manager")
		rec := httptest.NewRecorder()
		Serve(rec, req, Options{StrictReferer: strict, Balancers: list, Only: []string{"fz"}, URI: "/balancer-manager"})
		switch rec.Code {
		case 200, 400, 405:
		default:
			t.Fatalf("%s ?%q body %q: status %d", m, query, body, rec.Code)
		}
		page := rec.Body.String()
		switch {
		case rec.Code != 200 || m == "HEAD" || m == "OPTIONS":
		case strings.HasPrefix(page, "<?xml"):
			balancertest.CheckMarkup(t, "XML", page, balancertest.XMLTag)
		default:
			balancertest.CheckMarkup(t, "HTML", page, balancertest.HTMLTag)
		}
		balancertest.CheckRanges(t, b)
		// And the page after the change.
		req = httptest.NewRequest("GET", "http://127.0.0.1/balancer-manager?b=fz&w=http://127.0.0.1:1", nil)
		req.Header.Set("Referer", "http://127.0.0.1/")
		rec = httptest.NewRecorder()
		Serve(rec, req, Options{StrictReferer: true, Balancers: list, Only: []string{"fz"}, URI: "/balancer-manager"})
		balancertest.CheckMarkup(t, "HTML after the change", rec.Body.String(), balancertest.HTMLTag)
	})
}

// FuzzPush2Table: httpd's form parsing never panics, decodes values twice
// and keys once, and stops a decoded string at NUL; the GET key filter only
// drops keys.
func FuzzPush2Table(f *testing.F) {
	for _, s := range []string{"", "a=b", "b=x&b=y", "w=a%252Fb", "k", "&&=&", "x=%00y", "%41=%2541", "a=%zz&%=%%", "w_wr=x+y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		all := map[string]string{}
		push2table(input, all, nil)
		some := map[string]string{}
		push2table(input, some, getKeys)
		for k, v := range some {
			if all[k] != v {
				t.Fatalf("filtered %q=%q differs from unfiltered %q", k, v, all[k])
			}
		}
		for k, v := range all {
			if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("NUL survived decoding: %q=%q", k, v)
			}
		}
		if u := unescapeURL(input); len(u) > len(input) || (!strings.Contains(input, "%") && u != input) {
			t.Fatalf("unescapeURL(%q) = %q", input, u)
		}
		if i := strings.IndexByte(input, 0); i >= 0 {
			// A C string: nothing after the NUL counts.
			cut := map[string]string{}
			push2table(input[:i], cut, nil)
			if len(cut) != len(all) {
				t.Fatalf("%q: %d parameters, %d before the NUL", input, len(all), len(cut))
			}
		} else if !strings.Contains(input, "%") {
			for _, piece := range strings.Split(input, "&") {
				if piece == "" {
					continue
				}
				k, _, _ := strings.Cut(piece, "=")
				if _, ok := all[k]; !ok {
					t.Fatalf("key %q of %q lost", k, input)
				}
			}
		}
	})
}

// FuzzManagerForm applies a hostile balancer-manager form (already past the
// Referer and nonce gates) to a balancer: whatever the values, every field
// stays within httpd's ranges, E and O are never touched, and the member
// count stays within the slots.
func FuzzManagerForm(f *testing.F) {
	f.Add("w_lf=2.5&w_ls=3&w_wr=n1&w_rr=n2&w_status_D=1&w_status_N=0")
	f.Add("b_lbm=bybusyness&b_tmo=7200&b_max=99&b_sforce=1&b_ss=A|b")
	f.Add("b_ss=-&b_nwrkr=http://127.0.0.1:9&b_wyes=1")
	f.Add("b_nwrkr=ajp://[::1]:8009&b_wyes=1")
	f.Add("w_lf=1e309&w_ls=-1&w_status_E=0&w_status_I=abc&w_hi=50&w_hm=GET&w_he=%{REQUEST_STATUS} =~ /200/&w_hu=/x")
	f.Add("w_lf=100.001&w_hi=99999999999999999999h&w_hp=-3&w_hf=2147483648&w_hm=tcp&w_he=x")
	f.Add("w_wr=" + strings.Repeat("r", 64) + "&w_rr=&b_tmo=7201&b_max=100&b_lbm=heartbeat")
	f.Fuzz(func(t *testing.T, form string) {
		b, err := balancer.New(balancer.Config{
			Name: "form", Growth: 2, ForceRecovery: true,
			Members: []balancer.MemberConfig{
				{URL: "http://127.0.0.1:1", Route: "r1"},
				{URL: "http://127.0.0.1:2", Route: "r2", Status: balancer.InError},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		p := map[string]string{}
		for _, piece := range strings.Split(form, "&") {
			k, v, _ := strings.Cut(piece, "=")
			p[k] = v
		}
		ms := b.Members()
		before := map[*balancer.Member]balancer.Status{}
		for _, m := range ms {
			before[m] = m.State().Status
		}
		for _, w := range []*balancer.Member{ms[0], ms[1], nil} {
			err := apply(b, w, p, "fuzz", zap.NewNop())
			if err != nil && !errors.Is(err, balancer.ErrMemberExists) && !errors.Is(err, balancer.ErrNoFreeSlot) &&
				!errors.Is(err, balancer.ErrInvalidMember) {
				t.Fatalf("form: unexpected error %v", err)
			}
		}
		v := b.View()
		if len(v.Members) > 4 {
			t.Fatalf("%d members in 4 slots", len(v.Members))
		}
		if _, err := balancer.MethodByName(v.LBMethod); err != nil {
			t.Fatalf("lbmethod %q", v.LBMethod)
		}
		if v.Timeout < 0 || v.Timeout > 7200*time.Second || v.MaxAttempts < 0 || v.MaxAttempts > 99 ||
			len(v.StickySession) >= 63 || len(v.StickyPath) >= 63 {
			t.Fatalf("balancer parameters out of range: %+v", v)
		}
		for _, m := range v.Members {
			if m.LoadFactor < 100 || m.LoadFactor > 10000 || m.LBSet < 0 || m.LBSet > 99 ||
				len(m.Route) >= 64 || len(m.Redirect) >= 64 || len(m.HC.URI) >= 64 {
				t.Fatalf("member %s out of range: %+v", m.Name, m.MemberState)
			}
			if err := m.HC.Validate(); err != nil {
				t.Fatalf("member %s: invalid health check %+v: %v", m.Name, m.HC, err)
			}
		}
		for m, old := range before {
			now := m.State().Status
			if (now^old)&(balancer.InError|balancer.Initialized) != 0 {
				t.Fatalf("member %s: E or O changed by the form: %q -> %q", m.Name(), old, now)
			}
		}
	})
}

// FuzzCNumbers: the C number parsers behind the manager's values never panic
// and keep their documented ranges.
func FuzzCNumbers(f *testing.F) {
	for _, s := range []string{"", "12", " -7x", "+3", "99999999999999999999", "1.5e3", "0x10", "nan", "inf", "100.001",
		"10ms", "5", "2h", "3mi", "-1s", "7 s", "1e", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := CAtoi(s)
		if n > math.MaxInt32 || n < -math.MaxInt32-1 {
			t.Fatalf("CAtoi(%q) = %d outside int32", s, n)
		}
		if x := CAtof(s); math.IsNaN(x) {
			t.Fatalf("CAtof(%q) is NaN", s)
		}
		for _, unit := range []string{"ms", "s"} {
			if d, ok := ParseTimeoutParameter(s, unit); ok && d < 0 {
				t.Fatalf("ParseTimeoutParameter(%q) = %v", s, d)
			}
		}
	})
}
