package balancer

import (
	"net/http"
	"testing"
)

func TestHCExprEval(t *testing.T) {
	resp := func(status int, body string, hdr ...string) *HCResponse {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Add(hdr[i], hdr[i+1])
		}
		return &HCResponse{Status: status, Body: body, Header: h}
	}
	ok200 := resp(200, "all good\n", "Content-Type", "text/plain; charset=utf-8", "X-Ready", "yes")
	maint := resp(200, "<h1>Under maintenance</h1>", "Content-Type", "text/html")
	nf := resp(404, "", "Content-Type", "text/html")
	e500 := resp(500, "oops")
	cases := []struct {
		expr string
		r    *HCResponse
		want bool
	}{
		{`%{REQUEST_STATUS} =~ /^[234]/`, nf, true},
		{`%{REQUEST_STATUS} =~ /^[234]/`, e500, false},
		{`%{REQUEST_STATUS} !~ /^5/`, e500, false},
		{`%{REQUEST_STATUS} -lt 400`, ok200, true},
		{`%{REQUEST_STATUS} -lt 400`, nf, false},
		{`%{REQUEST_STATUS} lt 400`, ok200, true},
		{`%{REQUEST_STATUS} -ge 200 && %{REQUEST_STATUS} -le 299`, ok200, true},
		{`%{REQUEST_STATUS} -eq 404`, nf, true},
		{`%{REQUEST_STATUS} -ne 404`, nf, false},
		{`%{REQUEST_STATUS} -gt 499`, e500, true},
		{`%{REQUEST_STATUS} == '200'`, ok200, true},
		{`%{REQUEST_STATUS} == "200"`, nf, false},
		{`%{REQUEST_STATUS} = 200`, ok200, true},
		{`%{REQUEST_STATUS} != 200`, ok200, false},
		{`hc('body') !~ /Under maintenance/`, ok200, true},
		{`hc('body') !~ /Under maintenance/`, maint, false},
		{`hc("BODY") =~ /under MAINTENANCE/i`, maint, true},
		{`%{HC_BODY} =~ /good/`, ok200, true},
		{`%{hc_body} =~ m#good#`, ok200, true},
		{`resp('content-type') =~ m#^text/plain#`, ok200, true},
		{`resp('X-Ready') == 'yes'`, ok200, true},
		{`-n resp('X-Ready')`, maint, false},
		{`-z resp('X-Ready')`, maint, true},
		{`%{CONTENT_TYPE} =~ /html/`, maint, true},
		{`!(%{REQUEST_STATUS} in {'500', '503'})`, e500, false},
		{`%{REQUEST_STATUS} in {'500', '503'}`, ok200, false},
		{`%{REQUEST_STATUS} -lt 400 && hc('body') !~ /maint/ || resp('X-Ready') == 'yes'`, maint, false},
		{`%{REQUEST_STATUS} -lt 400 && (hc('body') !~ /maint/ || resp('X-Ready') == 'yes')`, ok200, true},
		{`!%{REQUEST_STATUS} =~ /^5/`, ok200, true},
		{`! ! true`, ok200, true},
		{`false || true && false`, ok200, false},
		{`tolower(resp('X-Ready')) == 'yes' && toupper('a') == "A"`, ok200, true},
		{`'code ' . %{REQUEST_STATUS} == "code %{REQUEST_STATUS}"`, nf, true},
		{`"%{REQUEST_STATUS}x" == '404x'`, nf, true},
		{`hc('body') -strmatch '*good*'`, ok200, true},
		{`-T 'off'`, ok200, false},
		{`%{REQUEST_STATUS} =~ /\/|^2/`, ok200, true},
	}
	for _, c := range cases {
		e, err := ParseHCExpr(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		got, err := e.Eval(c.r)
		if err != nil {
			t.Errorf("%s: eval: %v", c.expr, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s on %d %q: %v, want %v", c.expr, c.r.Status, c.r.Body, got, c.want)
		}
		if e.String() != c.expr {
			t.Errorf("String() = %q", e.String())
		}
	}
}

func TestHCExprEvalError(t *testing.T) {
	e, err := ParseHCExpr(`hc('body') -lt 3`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(&HCResponse{Status: 200, Body: "abc"}); err == nil {
		t.Fatal("non-integer -lt operand: no error")
	}
	// nil response: status 0, no body
	e, _ = ParseHCExpr(`%{REQUEST_STATUS} == 0`)
	if ok, err := e.Eval(nil); !ok || err != nil {
		t.Fatalf("nil response: %v %v", ok, err)
	}
}

func TestHCExprParseErrors(t *testing.T) {
	for _, s := range []string{
		``,
		`   `,
		`%{REQUEST_URI} == '/'`,  // unknown variable
		`%{REQUEST_STATUS`,       // unterminated
		`req('Host') == 'x'`,     // unknown function
		`hc('status') == 'x'`,    // hc knows only body
		`%{REQUEST_STATUS} ~= 2`, // unknown operator
		`%{REQUEST_STATUS} -foo 2`,
		`-ipmatch '1.2.3.4'`,
		`%{REQUEST_STATUS} =~ /(/`,       // bad regexp
		`%{REQUEST_STATUS} =~ /^2/x`,     // unknown flag
		`%{REQUEST_STATUS} =~ /^2`,       // unterminated regexp
		`%{REQUEST_STATUS} =~ '^2'`,      // regexp expected
		`(%{REQUEST_STATUS} == 200`,      // missing )
		`%{REQUEST_STATUS} == 200)`,      // trailing )
		`%{REQUEST_STATUS} == 200 &&`,    // dangling &&
		`%{REQUEST_STATUS}`,              // no operator
		`%{REQUEST_STATUS} == 'abc`,      // unterminated string
		`status == 200`,                  // bare word
		`%{REQUEST_STATUS} in {'1' '2'}`, // missing comma
		`hc('body') =~ /(?=x)/`,          // no lookahead in Go regexp
	} {
		if _, err := ParseHCExpr(s); err == nil {
			t.Errorf("%q: no parse error", s)
		}
	}
}
