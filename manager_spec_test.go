package caddybalancer

// Spec §7 (balancer-manager) and §10 (its security history): every
// observable rule and [OBSERVED] item, and the test that covers it.
//
// ORACLE = TestSpec7ManagerOracle (this file): the same request sequence
// (spec7Steps; the step's item tag in brackets) is sent to real httpd 2.4.71,
// to the balancer_manager site handler and, from a fresh start, to the admin
// endpoint's manager; every answer is checked against docs/behaviour.md and ours
// against httpd's (status, Allow, Content-Type, the whole normalized HTML or
// XML page). VHOSTS = TestSpec7SharedAcrossVhosts (httpd oracle too), NONCE =
// TestSpec7NonceRestart. Other names are existing tests. "DEVIATION" marks
// where we differ from httpd on purpose; "(doc)" when README/INTERFACE or the
// code documents it.
//
// §7.1 Enabling and scope
//   sub-paths are the manager ............ ORACLE [7.1 sub-path]; TestManagerHTTPDTestsReplay
//   lists the receiving vhost's balancers  VHOSTS (with `balancer_manager sh`); TestManagerCaddyfile.
//                                          DEVIATION (doc, ManagerHandler.Balancers): without
//                                          names the site handler lists every balancer
//   GET, POST; HEAD as GET ................ ORACLE [7.1 HEAD], [7.1 HEAD with a query]; TestSecurityMethods
//   PUT/DELETE 405 with Allow ............. ORACLE [7.1 PUT 405], [7.1 DELETE 405]; TestSecurityMethods.
//                                          DEVIATION: Allow lacks TRACE and TRACE is 405 (httpd's
//                                          core echoes it): ORACLE, TRACE check
//   OPTIONS 200 ........................... ORACLE [7.1 OPTIONS 200]
//   always 200, but 400 for a failed add
//   or an unreadable body ................. ORACLE (every step's status), [7.1 unreadable POST body 400]
// §7.2 Pipeline
//   1 sync of other processes' members .... not observable in one process (n/a)
//   2 GET keeps only b, w, nonce, xml ..... ORACLE [7.2 GET keeps b w nonce xml only], [7.2 GET change
//                                          keys dropped, form shown]; TestManagerParameterParsing;
//                                          TestSecuritySiteManagerCSRF
//     POST: body only, query ignored ...... ORACLE [7.2 POST query ignored]; TestManagerParameterParsing
//     one read of 1024 bytes, rest ignored  ORACLE [7.2 POST 1024-byte read]; TestSecurityBodyLimit
//     push2table: split on '&' (empty
//     pieces skipped), first '=' ......... ORACLE [7.2 push2table first =, duplicates, empty pieces]
//     no '=' is an empty value ............ ORACLE [7.2 push2table no = is an empty value]
//     key decoded once .................... ORACLE [7.2 push2table key decoded once], [... not decoded twice]
//     value decoded twice, '+' kept ....... ORACLE [7.2 push2table value decoded twice, + kept];
//                                          TestManagerParameterParsing
//     duplicates: last wins ............... ORACLE [7.2 push2table first =, duplicates, ...]
//   3 Referer gate: none, relative, no
//     host, no scheme, other host, look-
//     alike host: all parameters dropped .. ORACLE [7.2 Referer missing|relative|without host|without
//                                          scheme|other host|look-alike host], [7.2 nothing changed by
//                                          dropped parameters]; TestSecuritySiteManagerCSRF.
//                                          DEVIATION (doc, README): the admin endpoint keeps the
//                                          parameters of a request without Referer (those steps are
//                                          left out there): TestManagerAdminAnsible
//     host case-insensitive, port and
//     scheme not compared, server name
//     from Host (LOCALHOST:8080 + https://
//     localhost:9999/x accepted) ......... ORACLE [7.2 Referer host case-insensitive, port and scheme
//                                          ignored], [7.2 Referer host in other case], [7.2 server name
//                                          from Host, h1], [7.5 form action from Host]
//     ?xml=1 without Referer is HTML ...... ORACLE [7.2 ?xml=1 without Referer is HTML]
//   4 b: lower-cased, after '/' ignored,
//     unknown selects nothing (200) ....... ORACLE [7.2 b lower-cased], [7.2 b: after / ignored], [7.2 b
//                                          unknown: 200, nothing selected], [7.2 b with balancer://
//                                          selects nothing]
//     w: longest prefix, scheme://host:port
//     lower-cased, must cover it .......... ORACLE [7.2 w scheme lower-cased], [7.2 w longest prefix],
//                                          [... with a path], [7.2 w shorter than the member], [7.2 w
//                                          must cover host:port], [7.2 w without b selects nothing];
//                                          TestManageFindMemberLongestPrefix
//   5 nonce gate (selected b, non-empty,
//     exactly equal) ...................... ORACLE [7.2 nonce wrong|missing|empty|other case|right];
//                                          TestSecuritySiteManagerCSRF; TestSecurityAdminManagerCSRF
//     nonce=None: read-only ............... ORACLE [7.2 nonce None: read-only (empty nonce|None)], [7.4
//                                          nonce None form]; TestManagerNonceNoneReadOnly;
//                                          TestSecurityNonceNone
//   6 order: worker fields, balancer
//     fields, then the addition ........... ORACLE [7.2 order: worker fields before balancer fields],
//                                          [7.2 order: the reset came last], [7.2 order: worker fields
//                                          before the addition]
//   7 XML when xml survived (any value) ... ORACLE [7.2 ?xml=1 with Referer is XML], [7.2 xml with an
//                                          empty value], [7.2 xml without =], [7.2 xml=0]
//     edit forms without / with a wrong
//     nonce; none without the Referer ..... ORACLE [7.2 worker form without nonce], [7.2 worker form
//                                          with a wrong nonce], [7.2 forms need the Referer]
// §7.3 Worker fields
//   w_lf int(atof*100) in 100..10000
//   (0.5, abc, 101 ignored; 100.001) ...... ORACLE [7.3 w_lf ...]; TestManageFormWorkerFields
//   then every lbstatus := its lbfactor ... ORACLE [7.3 w_lf 2.5, lbstatus recalculated], [7.3 lbstatus
//                                          of the others := their lbfactor]; TestManageLoadFactorRecalc
//   single member forced to 1.00 .......... ORACLE [7.3 w_lf on a single member forced to 1.00; ...]
//   w_ls atoi 0..99 ....................... ORACLE [7.3 w_ls ...]; TestManageFormWorkerFields
//   w_wr/w_rr: < 64 set, empty or >= 64
//   clears ................................ ORACLE [7.3 w_wr w_rr ...]; TestManageFormWorkerFields
//   w_status_X: atoi != 0 sets, else
//   clears (x, 0x1 clear; +1, 5 set) ...... ORACLE [7.3 w_status ...]; TestManageFormWorkerFields
//   no w_status_E, E not clearable ........ ORACLE [7.3 no w_status_E], [7.3 E cannot be cleared]
//   setting I lifts E at the next
//   examination ........................... ORACLE [7.3 I set, E stays until examined], [7.3 the next
//                                          examination], [7.3 setting I lifted E], [2.5 I: no failover]
//   w_hm (case-insensitive, unknown
//   ignored), w_hi (ms, >= 100 ms, units),
//   w_hp/w_hf (>= 1), w_hu (empty clears) . ORACLE [7.3 w_hm w_hi w_hp w_hf w_hu], [7.3 hc values out of
//                                          range ignored], [7.3 w_hi ...], [7.3 w_hm TCP|none];
//                                          TestManageFormHealthCheckFields
//   w_he (unknown name clears) ............ ORACLE [7.3 w_hu empty clears, unknown w_he clears].
//                                          DEVIATION (doc, README hcexpr): takes the expression;
//                                          TestManageFormHealthCheckFields
//   NONE/TCP drop hcexpr .................. TestManageFormHealthCheckFields (httpd needs ProxyHCExpr)
//   unusable -> usable requests a reset ... ORACLE [7.3 reset: ...]: 2.4.71 shows no effect at the next
//                                          addition or request; neither do we
// §7.3 Balancer fields
//   b_lbm: < 15 chars, other, registered
//   (case-sensitive) ...................... ORACLE [7.3 b_lbm ...]; TestManageFormBalancerFields
//   the new method's reset (byrequests/
//   bybusyness: lbstatus 0; bytraffic:
//   transferred/read 0, lbstatus kept) .... ORACLE [7.3 bytraffic's reset leaves lbstatus], [7.3
//                                          bybusyness's reset: lbstatus 0], [7.3 bytraffic's reset: read
//                                          0]. DEVIATION: httpd runs it at the next sync, so the page
//                                          answering the POST still shows the old values; we reset at
//                                          once (only lbstatus/read/busy of that page differ)
//   b_tmo atoi 0..7200 .................... ORACLE [7.3 b_tmo ...]
//   b_max 0..99, not marked set ........... ORACLE [7.3 b_max ...], [7.3 b_max shown], [7.3 b_max still
//                                          not set]; TestManageMaxAttemptsNotMarkedSet
//   b_sforce atoi ......................... ORACLE [7.3 b_sforce 1], [7.3 b_sforce x = Off]
//   b_ss: empty and >= 63 ignored, '-'
//   clears, '|' split, no trimming ........ ORACLE [7.3 b_ss ...], [7.5 sticky cell ...]
//   b_nwrkr only with b_wyes exactly 1 .... ORACLE [7.3 b_wyes must be 1: on|11], [7.3 unknown keys
//                                          ignored; b_nwrkr without b_wyes]
//   existing (prefix rule) or no slot: 400  ORACLE [7.3 add: prefix duplicate 400], [... exact duplicate
//                                          400], [... no free slot 400]; TestManagerHTTPDTestsReplay
//   invalid URL: 400 ...................... ORACLE [7.3 add: invalid URL 400 ...]. DEVIATION: a
//                                          non-HTTP scheme (ajp://) is 400 here, a member in httpd:
//                                          ORACLE, ajp check
//   the new member is Disabled ............ ORACLE [7.3 add: new member Disabled], [7.3 the added member
//                                          is disabled]; TestManagerHTTPDTestsReplay
//   server-level defaults copied, other
//   processes pick it up .................. n/a (no ProxyTimeout level; one process)
//   unknown keys ignored; nothing echoed .. ORACLE (every POST answer compared whole)
// §7.4 Nonce
//   36-char lower-case UUID unless set .... ORACLE (balancer rnd, in every run); NONCE; VHOSTS
//   new at every start unless persist ..... NONCE; TestPersistAcrossRestart. DEVIATION (doc, README
//                                          "State"): a config reload keeps it, as all run-time state
//   in links, hidden fields, <httpd:nonce>  ORACLE [7.1 page, 7.5 HTML], the form and XML steps;
//                                          TestManagerHTTPDTestsReplay (scraped as httpd-tests does)
// §7.5 HTML (ORACLE compares every page whole)
//   Content-Type, doctype, title, CSS, h1,
//   dl lines .............................. ORACLE [7.1 page, 7.5 HTML]. Normalized: "Server Version"
//                                          and "Built" (Caddy names itself; Ansible's regex still
//                                          matches: TestManagerAdminAnsible); the two "inherited" lines
//                                          (always NOT here: no main server; cosmetic)
//   h3 link and [SNAME] ................... ORACLE; the p<hash> is normalized (another hash function)
//   balancer table ........................ ORACLE; Path cell normalized: DEVIATION, a Caddy route has
//                                          no ProxyPass path ("/")
//   member table, HC columns, &amp; links,
//   Factor %.2f, status string ............ ORACLE [7.1 page, 7.5 HTML]
//   To/From strfsize ("600 ", "1.8K",
//   " 47K") ............................... ORACLE [7.5 From 600|1.8K|47K] ("To" normalized: Caddy's
//                                          request headers differ from httpd's)
//   HC expressions table .................. DEVIATION (doc, hcexpr): not shown
//   worker form fields, radios, hc block .. ORACLE [7.2 worker form ...], [7.3 worker form shows the
//                                          values]; TestManagerParameterParsing
//   balancer form, b_nwrkr only with a
//   free slot ............................. ORACLE [7.5 balancer form with|without a free slot], [7.5
//                                          balancer form sticky value]; lbmethod option order is
//                                          normalized (httpd's is random); no heartbeat (doc)
//   signature, </body></html> ............. ORACLE [7.5 final page] (suffix)
// §7.6 XML
//   element order, optional elements,
//   timeout without newline, maxattempts
//   only when set or defaulted, min/smax/
//   max/ttl, timeout/retry when set,
//   error_time RFC 822 only when set, no
//   trailing newline ...................... ORACLE [7.6 XML x], [7.6 XML no sticky, maxattempts
//                                          defaulted to members-1], [7.6 XML one member: no
//                                          maxattempts], [7.6 XML head], [7.3 E set by the failure],
//                                          [7.6 final XML]; TestManagerAdminAnsible
//   route, redirect, sticky escaped ....... TestSecurityEscaping. DEVIATION (doc, manager_xml.go):
//                                          names are escaped too
//   pool keys (acquire, keepalive, ...) ... DEVIATION (doc, README): not configurable
// §7.7
//   changes visible everywhere at once .... VHOSTS (the other vhost and the admin endpoint)
//   vhosts sharing a balancer ............. VHOSTS: member state shared as in httpd. DEVIATION (doc,
//                                          INTERFACE: one balancer per name): httpd 2.4.71 keeps the
//                                          nonce and balancer parameters per vhost there; we share them
// §10
//   CSRF: nonce, POST form, Referer gate .. ORACLE; TestSecuritySiteManagerCSRF; TestSecurityAdminManagerCSRF
//   XSS: escaping (routes, names, sticky,
//   hcuri, server name); PR 56532 ........ TestSecurityEscaping
//   invalid b selects nothing ............. ORACLE [7.2 b unknown ...]; TestSecurityEscaping
//   PR 63688 case-insensitive host ........ ORACLE [7.2 Referer host in other case]
//   hidden fields quoted (w, b in "", nonce
//   in '' as 2.4.71) ...................... ORACLE (fixed: nonce was in "")
//   CVE-2019-10092 (mod_proxy error pages)  not the manager: outside §7 (no test here)
//   CVE-2026-34356 cookie rewriting ....... TestOracleReverse (§9.3)

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lbset/caddy-balancer/manager"
)

// spec7Send sends one request exactly as given (method, request target,
// header lines in order, body) in a single write, so that Host, Referer and
// the body reach the front end as written, and returns the answer. Host
// defaults to addr.
func spec7Send(t testing.TB, addr, method, target string, headers []string, body string) result {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, addr, target, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	hasHost := false
	for _, h := range headers {
		if k, _, _ := strings.Cut(h, ":"); strings.EqualFold(strings.TrimSpace(k), "Host") {
			hasHost = true
		}
	}
	if !hasHost {
		fmt.Fprintf(&b, "Host: %s\r\n", addr)
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	chunked := false
	for _, h := range headers {
		chunked = chunked || strings.HasPrefix(strings.ToLower(h), "transfer-encoding:")
	}
	if body != "" || method == http.MethodPost {
		b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
		if !chunked {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("%s %s%s: %v", method, addr, target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s%s: reading the answer: %v", method, addr, target, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return result{Status: resp.StatusCode, Backend: resp.Header.Get("X-Backend"), Body: string(rb), Header: resp.Header}
}

// spec7Step is one request of the §7 run, sent to httpd and to Caddy.
type spec7Step struct {
	item    string // the checklist item it covers
	method  string // default GET
	target  string // default /balancer-manager
	body    string
	headers []string // "{REF}" in a line is the front end's own manager URL
	status  int      // docs/behaviour.md's status; default 200
	// want and wantNot are substrings docs/behaviour.md requires of (and forbids in)
	// the normalized answer, checked on httpd's answer and on ours; with bal
	// (and member) set, in that balancer's (member's) part of the page only.
	want, wantNot []string
	bal, member   string
	suffix        string // the answer must end so
	// proxied: a request through a balancer (not to the manager); only the
	// status and the answering backend are compared.
	proxied bool
	// deviation: the answer's body is not compared with httpd's, for this
	// documented reason (the status and docs/behaviour.md checks still are).
	deviation string
}

// spec7Setup is the §7 test bed: four real backends, one dead address, and
// the same balancers in httpd and in Caddy.
type spec7Setup struct {
	bs   []*backend
	dead string
	vars *strings.Replacer
}

func newSpec7Setup(t *testing.T) *spec7Setup {
	s := &spec7Setup{bs: startBackends(t, 4), dead: deadURL(t)}
	// b4 answers /size/N with N bytes: "From" (read) counts the status line
	// and the body, so the manager's strfsize column can be driven exactly.
	s.bs[3].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/size/%d", &n); err != nil {
			n = 1
		}
		w.Header().Set("Content-Length", fmt.Sprint(n))
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	})
	pairs := []string{"{DEAD}", s.dead}
	for i, b := range s.bs {
		pairs = append(pairs, fmt.Sprintf("{B%d}", i+1), b.URL, fmt.Sprintf("{P%d}", i+1), fmt.Sprint(b.Port))
	}
	s.vars = strings.NewReplacer(pairs...)
	return s
}

// spec7Balancers are the balancers of both front ends, in name order (httpd
// lists them in configuration order, Caddy by name). name, httpd's
// <Proxy> body, Caddy's balancer block body.
var spec7Balancers = []struct{ name, httpd, caddy string }{
	{"add",
		"BalancerMember {B1}\nProxySet nonce=nd growth=1",
		"nonce nd\ngrowth 1\nbalancer_member {B1}"},
	{"bf",
		"BalancerMember {B1}\nBalancerMember {B2}\nProxySet nonce=nb",
		"nonce nb\nbalancer_member {B1}\nbalancer_member {B2}"},
	{"err",
		"BalancerMember {DEAD} retry=300\nBalancerMember {B2}\nProxySet nonce=ne",
		"nonce ne\nbalancer_member {DEAD} retry=300\nbalancer_member {B2}"},
	{"none",
		"BalancerMember {B1}\nProxySet nonce=None",
		"nonce None\nbalancer_member {B1}"},
	{"one",
		"BalancerMember {B1}\nProxySet nonce=no growth=1",
		"nonce no\ngrowth 1\nbalancer_member {B1}"},
	{"rnd",
		"BalancerMember {B1}",
		"balancer_member {B1}"},
	{"rs",
		"BalancerMember {B1}\nProxySet nonce=nr growth=2",
		"nonce nr\ngrowth 2\nbalancer_member {B1}"},
	{"tr",
		"BalancerMember {B4}\nProxySet nonce=nt",
		"nonce nt\nbalancer_member {B4}"},
	{"w",
		"BalancerMember {B1} route=r1\nBalancerMember {B2}/app\nBalancerMember {B3}\nProxySet nonce=nw",
		"nonce nw\nbalancer_member {B1} route=r1\nbalancer_member {B2}/app\nbalancer_member {B3}"},
	{"x",
		"BalancerMember {B1} route=1 redirect=2 lbset=2 loadfactor=42.5 timeout=7 retry=30\nBalancerMember {B2}\n" +
			"ProxySet nonce=nx stickysession=ROUTEID nofailover=On timeout=3 maxattempts=4 lbmethod=bytraffic scolonpathdelim=On",
		"nonce nx\nstickysession ROUTEID\nnofailover on\ntimeout 3\nmaxattempts 4\nlbmethod bytraffic\nscolonpathdelim on\n" +
			"balancer_member {B1} route=1 redirect=2 lbset=2 loadfactor=42.5 timeout=7 retry=30\nbalancer_member {B2}"},
	{"zadd",
		"BalancerMember {B1}\nProxySet nonce=nz growth=1",
		"nonce nz\ngrowth 1\nbalancer_member {B1}"},
}

func (s *spec7Setup) httpdConf() string {
	var b strings.Builder
	// mod_proxy_hcheck adds the HC columns and the health-check block of
	// the worker form, as the Caddy manager always shows them.
	b.WriteString("LoadModule proxy_hcheck_module /usr/lib/apache2/modules/mod_proxy_hcheck.so\n")
	for _, bal := range spec7Balancers {
		fmt.Fprintf(&b, "<Proxy balancer://%s>\n%s\n</Proxy>\nProxyPass /%s balancer://%s\n", bal.name, s.vars.Replace(bal.httpd), bal.name, bal.name)
	}
	b.WriteString("<Location /balancer-manager>\n\tSetHandler balancer-manager\n</Location>\n")
	return b.String()
}

func (s *spec7Setup) caddyfile(port, aport int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n}\nhttp://:%d {\n\tbind 127.0.0.1\n", aport, port)
	b.WriteString("\thandle /balancer-manager* {\n\t\tbalancer_manager\n\t}\n")
	for _, bal := range spec7Balancers {
		fmt.Fprintf(&b, "\thandle_path /%s/* {\n\t\tbalancer %s {\n\t\t\t%s\n\t\t}\n\t}\n", bal.name, bal.name,
			strings.ReplaceAll(s.vars.Replace(bal.caddy), "\n", "\n\t\t\t"))
	}
	b.WriteString("}\n")
	return b.String()
}

var (
	reSpec7SName   = regexp.MustCompile(`</a> \[p[0-9a-f]+_`)
	reSpec7Version = regexp.MustCompile(`<dt>Server Version: [^<]*</dt>\n<dt>Server Built: [^<]*</dt>`)
	reSpec7Inherit = regexp.MustCompile(`<dt>Balancers are (NOT )?inherited from main server.</dt><dt>ProxyPass settings are (NOT )?inherited from main server.</dt>`)
	reSpec7Path    = regexp.MustCompile(`<td>[^<]*</td>\n<td>(Yes|No)</td>`)
	reSpec7To      = regexp.MustCompile(`(<td>\d+</td><td>\d+</td><td>-?\d+</td><td>)([^<]*)(</td><td>)`)
	reSpec7Xfer    = regexp.MustCompile(`<httpd:transferred>\d+</httpd:transferred>`)
	reSpec7ErrTime = regexp.MustCompile(`<httpd:error_time>([^<]*)</httpd:error_time>`)
	reSpec7LBM     = regexp.MustCompile(`(<select name='b_lbm' id='b_lbm'>)((?:<option [^\n]*\n)*)(</select>)`)
	reSpec7Reset   = regexp.MustCompile(`<httpd:(lbstatus|read|busy)>-?\d+<`)
	reSpec7UUID    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// spec7Normalize makes a manager answer of one front end comparable with
// the other's: its own address, the random nonce of balancer rnd, and the
// parts that differ by design (each named in the checklist):
//   - the server version and build lines (Caddy names itself);
//   - the internal balancer name's hash ([pHASH_name]);
//   - the "inherited" lines and the Path cell (a Caddy route has no
//     ProxyPass path or main server);
//   - "To" / transferred: the request headers Caddy sends differ from
//     httpd's (From / read, status line + body, are compared exactly);
//   - error_time's value (its RFC 822 form is checked).
func spec7Normalize(t *testing.T, body, addr, rndNonce string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	body = strings.ReplaceAll(body, addr, "{FRONT}")
	body = strings.ReplaceAll(body, "localhost:"+port, "localhost:{PORT}")
	if rndNonce != "" {
		body = strings.ReplaceAll(body, rndNonce, "{RNDNONCE}")
	}
	body = reSpec7SName.ReplaceAllString(body, "</a> [pHASH_")
	// httpd lists the lbmethods in the order of a randomly seeded hash.
	body = reSpec7LBM.ReplaceAllStringFunc(body, func(sel string) string {
		m := reSpec7LBM.FindStringSubmatch(sel)
		opts := strings.SplitAfter(m[2], "\n")
		sort.Strings(opts)
		return m[1] + strings.Join(opts, "") + m[3]
	})
	body = reSpec7Version.ReplaceAllString(body, "<dt>{VERSION}</dt>")
	body = reSpec7Inherit.ReplaceAllString(body, "<dt>{INHERIT}</dt>")
	body = reSpec7Path.ReplaceAllString(body, "<td>{PATH}</td>\n<td>$1</td>")
	body = reSpec7To.ReplaceAllString(body, "${1}{TO}${3}")
	body = reSpec7Xfer.ReplaceAllString(body, "<httpd:transferred>{T}</httpd:transferred>")
	for _, m := range reSpec7ErrTime.FindAllStringSubmatch(body, -1) {
		if _, err := time.Parse(time.RFC1123, m[1]); err != nil || !strings.HasSuffix(m[1], " GMT") {
			t.Errorf("error_time %q is not an RFC 822 date in GMT", m[1])
		}
	}
	body = reSpec7ErrTime.ReplaceAllString(body, "<httpd:error_time>{DATE}</httpd:error_time>")
	return body
}

// spec7Nonce reads balancer name's nonce from a front end's XML.
func spec7Nonce(t *testing.T, addr, name string) string {
	t.Helper()
	r := spec7Send(t, addr, "GET", "/balancer-manager?xml=1", []string{"Referer: http://" + addr + "/"}, "")
	_, rest, ok := strings.Cut(r.Body, "<httpd:name>balancer://"+name+"</httpd:name>\n      <httpd:nonce>")
	if !ok {
		t.Fatalf("%s: no nonce for %s in\n%s", addr, name, r.Body)
	}
	n, _, _ := strings.Cut(rest, "<")
	return n
}

// reSpec7Busy is a member's busy count in the manager's XML.
var reSpec7Busy = regexp.MustCompile(`<httpd:busy>(-?\d+)</httpd:busy>`)

// spec7AwaitIdle waits until the front end's manager (its XML) shows no
// member busy, and fails the test if one still is after five seconds.
func spec7AwaitIdle(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := spec7Send(t, addr, "GET", "/balancer-manager?xml=1", []string{"Referer: http://" + addr + "/"}, "")
		counts := reSpec7Busy.FindAllStringSubmatch(r.Body, -1)
		if r.Status != http.StatusOK || len(counts) == 0 {
			t.Fatalf("%s: manager XML with no busy counts: %d\n%s", addr, r.Status, r.Body)
		}
		var busy []string
		for _, c := range counts {
			if c[1] != "0" {
				busy = append(busy, c[1])
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: members still busy (%s) five seconds after the proxied answer", addr, strings.Join(busy, ", "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// spec7Answer is what is compared of one answer.
type spec7Answer struct {
	skipped bool
	status  int
	allow   string
	ctype   string
	body    string
}

// run sends the steps to a front end: manager requests to addr, proxied
// ones to proxy. Steps for which skip returns a reason are not sent.
func (s *spec7Setup) run(t *testing.T, addr, proxy string, steps []spec7Step, skip func(spec7Step) string) []spec7Answer {
	t.Helper()
	rnd := spec7Nonce(t, addr, "rnd")
	if !reSpec7UUID.MatchString(rnd) {
		t.Errorf("%s: the generated nonce %q is not a 36-character lower-case UUID (§7.4)", addr, rnd)
	}
	out := make([]spec7Answer, len(steps))
	for i, st := range steps {
		if skip != nil {
			if why := skip(st); why != "" {
				out[i].skipped = true
				continue
			}
		}
		method, target := st.method, st.target
		if method == "" {
			method = "GET"
		}
		if target == "" {
			target = "/balancer-manager"
		}
		var headers []string
		for _, h := range st.headers {
			h = strings.ReplaceAll(h, "{REF}", "http://"+addr+"/balancer-manager")
			h = strings.ReplaceAll(h, "{PORT}", addr[strings.LastIndexByte(addr, ':')+1:])
			headers = append(headers, h)
		}
		to := addr
		if st.proxied {
			to = proxy
		}
		r := spec7Send(t, to, method, s.vars.Replace(target), headers, s.vars.Replace(st.body))
		a := spec7Answer{status: r.Status, allow: r.Header.Get("Allow"), ctype: r.Header.Get("Content-Type")}
		switch {
		case st.proxied:
			a.body = r.Backend
			// httpd lowers busy in the request's pool cleanup, after the
			// answer is out: wait for that before the next look.
			spec7AwaitIdle(t, addr)
		case r.Status == http.StatusOK:
			a.body = spec7Normalize(t, r.Body, addr, rnd)
		}
		out[i] = a
	}
	return out
}

func (s *spec7Setup) describe(i int, st spec7Step) string {
	m := st.method
	if m == "" {
		m = "GET"
	}
	return fmt.Sprintf("step %d [%s] %s %s %s %q", i, st.item, m, s.vars.Replace(st.target), strings.Join(st.headers, ", "), s.vars.Replace(st.body))
}

// spec7FirstDiff shows where two normalized answers part.
func spec7FirstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y || i >= len(al) || i >= len(bl) {
			return fmt.Sprintf("line %d:\n httpd %q\n ours  %q", i+1, x, y)
		}
	}
	return "(no difference)"
}

// checkSpec checks one answer against the step's spec requirements.
func (s *spec7Setup) checkSpec(t *testing.T, who string, i int, st spec7Step, a spec7Answer) {
	t.Helper()
	want := st.status
	if want == 0 {
		want = 200
	}
	if a.status != want {
		t.Errorf("%s differs from docs/behaviour.md: %s: status %d, want %d", who, s.describe(i, st), a.status, want)
	}
	if st.suffix != "" && !strings.HasSuffix(a.body, st.suffix) {
		t.Errorf("%s differs from docs/behaviour.md: %s: answer does not end with %q", who, s.describe(i, st), st.suffix)
	}
	part := spec7Scope(a.body, st.bal, s.vars.Replace(st.member))
	for _, w := range st.want {
		if w = s.vars.Replace(w); !strings.Contains(part, w) {
			t.Errorf("%s differs from docs/behaviour.md: %s: answer lacks %q in\n%s", who, s.describe(i, st), w, part)
		}
	}
	for _, w := range st.wantNot {
		if w = s.vars.Replace(w); strings.Contains(part, w) {
			t.Errorf("%s differs from docs/behaviour.md: %s: answer holds %q in\n%s", who, s.describe(i, st), w, part)
		}
	}
}

// TestSpec7ManagerOracle sends every §7 request of spec7Steps to real httpd,
// to the balancer_manager site handler and then (Caddy restarted, fresh
// state) to the admin endpoint's manager, each with the same balancers in the
// same state. Each answer must be docs/behaviour.md's (status, the wanted substrings),
// and ours must be httpd's: status, Allow, Content-Type and the whole
// normalized page (HTML or XML), which shows every balancer's and member's
// state after the step. On the admin endpoint the steps that carry
// parameters without a Referer are left out: there they are applied, the
// documented deviation (TestManagerAdminAnsible covers it).
func TestSpec7ManagerOracle(t *testing.T) {
	requireHTTPD(t)
	s := newSpec7Setup(t)
	hd := startOracleHTTPD(t, s.httpdConf())
	port, aport := freePort(t), freePort(t)
	loadCaddyfile(t, s.caddyfile(port, aport))
	ours := fmt.Sprintf("127.0.0.1:%d", port)
	steps := spec7Steps(s)
	fromHTTPD := s.run(t, hd.Addr, hd.Addr, steps, nil)
	fromSite := s.run(t, ours, ours, steps, nil)
	s.compare(t, "site handler", steps, fromHTTPD, fromSite)

	// The admin endpoint, from a fresh start.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	port, aport = freePort(t), freePort(t)
	loadCaddyfile(t, s.caddyfile(port, aport))
	admin := fmt.Sprintf("127.0.0.1:%d", aport)
	skipped := 0
	fromAdmin := s.run(t, admin, fmt.Sprintf("127.0.0.1:%d", port), steps, func(st spec7Step) string {
		hasReferer := false
		for _, h := range st.headers {
			hasReferer = hasReferer || strings.HasPrefix(h, "Referer:")
		}
		if !hasReferer && !st.proxied && (strings.Contains(st.target, "?") || st.body != "") {
			skipped++
			return "parameters without a Referer are applied on the admin endpoint (deviation)"
		}
		return ""
	})
	s.compare(t, "admin endpoint", steps, fromHTTPD, fromAdmin)

	// Deviations, checked as such. TRACE: httpd's core echoes it (200,
	// message/http); Caddy answers 405 without TRACE in Allow.
	site := fmt.Sprintf("127.0.0.1:%d", port)
	if r := spec7Send(t, hd.Addr, "TRACE", "/balancer-manager", nil, ""); r.Status != 200 || !strings.Contains(r.Header.Get("Allow")+r.Header.Get("Content-Type"), "message/http") {
		t.Errorf("httpd: TRACE: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	for _, addr := range []string{site, admin} {
		if r := spec7Send(t, addr, "TRACE", "/balancer-manager", nil, ""); r.Status != 405 || strings.Contains(r.Header.Get("Allow"), "TRACE") {
			t.Errorf("%s: TRACE: %d, Allow %q; want 405 without TRACE", addr, r.Status, r.Header.Get("Allow"))
		}
	}
	// b_nwrkr: httpd defines a member for any scheme it knows (ajp://
	// here); Caddy proxies HTTP only and answers 400 (AH10163's case).
	add := s.vars.Replace("b=zadd&nonce=nz&b_nwrkr=ajp://127.0.0.1:{P3}&b_wyes=1&xml=1")
	if r := spec7Send(t, hd.Addr, "POST", "/balancer-manager", []string{"Referer: http://" + hd.Addr + "/"}, add); r.Status != 200 ||
		!strings.Contains(r.Body, "<httpd:scheme>ajp</httpd:scheme>") {
		t.Errorf("httpd: adding an ajp:// member: %d", r.Status)
	}
	if r := spec7Send(t, site, "POST", "/balancer-manager", []string{"Referer: http://" + site + "/"}, add); r.Status != 400 {
		t.Errorf("Caddy: adding an ajp:// member: %d, want 400", r.Status)
	}
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
	t.Logf("%d requests compared with %s: all on the site handler, %d on the admin endpoint", len(steps), oracleApache2(), len(steps)-skipped)
}

// compare checks the answers of both front ends against docs/behaviour.md and ours
// against httpd's.
func (s *spec7Setup) compare(t *testing.T, who string, steps []spec7Step, fromHTTPD, fromOurs []spec7Answer) {
	t.Helper()
	for i, st := range steps {
		h, o := fromHTTPD[i], fromOurs[i]
		if o.skipped {
			continue
		}
		if who == "site handler" {
			s.checkSpec(t, "httpd", i, st, h)
		}
		s.checkSpec(t, who, i, st, o)
		if h.status != o.status {
			t.Errorf("%s differs from httpd: %s: status ours %d, httpd %d", who, s.describe(i, st), o.status, h.status)
		}
		if st.proxied {
			if h.body != o.body {
				t.Errorf("%s differs from httpd: %s: answered by %q, httpd by %q", who, s.describe(i, st), o.body, h.body)
			}
			continue
		}
		// httpd's core lists TRACE, which it serves; Caddy answers TRACE
		// with 405 (deviation, see the checklist), so ours lists it not.
		if ha := spec7Allow(h.allow, "TRACE"); ha != spec7Allow(o.allow, "") {
			t.Errorf("%s differs from httpd: %s: Allow ours %q, httpd %q", who, s.describe(i, st), o.allow, h.allow)
		}
		if h.status == 200 && h.ctype != o.ctype {
			t.Errorf("%s differs from httpd: %s: Content-Type ours %q, httpd %q", who, s.describe(i, st), o.ctype, h.ctype)
		}
		switch {
		case h.body == o.body:
		case st.deviation != "":
			// Only the values the lbmethods' resets touch may differ.
			hn := reSpec7Reset.ReplaceAllString(h.body, "<httpd:$1>{RESET}<")
			if on := reSpec7Reset.ReplaceAllString(o.body, "<httpd:$1>{RESET}<"); hn != on {
				t.Errorf("%s differs from httpd: %s: %s", who, s.describe(i, st), spec7FirstDiff(hn, on))
			}
			t.Logf("%s: deviation, %s: %s: %s", who, st.deviation, s.describe(i, st), spec7FirstDiff(h.body, o.body))
		default:
			t.Errorf("%s differs from httpd: %s: %s", who, s.describe(i, st), spec7FirstDiff(h.body, o.body))
		}
	}
}

// spec7Allow is an Allow header as a sorted set, without drop.
func spec7Allow(allow, drop string) string {
	var out []string
	for _, m := range strings.Split(allow, ",") {
		if m = strings.TrimSpace(m); m != "" && m != drop {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// ref is a same-host Referer line.
const spec7Ref = "Referer: {REF}"

// spec7Scope cuts a page down to one balancer's part (XML: its
// <httpd:balancer> element; HTML: its heading and tables) and, with member,
// to that member's part (XML: its <httpd:worker>; HTML: its row).
func spec7Scope(body, bal, member string) string {
	cut := func(s, from, to string) string {
		i := strings.Index(s, from)
		if i < 0 {
			return ""
		}
		s = s[i:]
		if j := strings.Index(s, to); j >= 0 {
			s = s[:j+len(to)]
		}
		return s
	}
	isXML := strings.HasPrefix(body, "<?xml") || strings.HasPrefix(body, "<httpd:")
	if bal != "" {
		if isXML {
			body = cut(body, "<httpd:name>balancer://"+bal+"</httpd:name>", "</httpd:balancer>")
		} else {
			body = cut(body, ">balancer://"+bal+"</a>", "<hr />")
		}
	}
	if member != "" {
		if isXML {
			body = cut(body, "<httpd:name>"+member+"</httpd:name>", "</httpd:worker>")
		} else {
			body = cut(body, ">"+member+"</a></td>", "</tr>")
		}
	}
	return body
}

// spec7Steps is the §7 run, in order; each front end gets the same steps
// from the same starting state. Balancers: add (1 member, growth 1), bf
// (balancer fields), err (a dead member and b2), none (nonce None), one (1
// member, growth 1), rnd (generated nonce), tr (b4, traffic sizes), w
// (worker fields, resolution, gates; members b1 route r1, b2/app, b3), x
// (the XML sample's parameters).
func spec7Steps(s *spec7Setup) []spec7Step {
	with := func(x spec7Step, bal, member string, want ...string) spec7Step {
		x.bal, x.member, x.want = bal, member, append(x.want, want...)
		return x
	}
	not := func(x spec7Step, wantNot ...string) spec7Step {
		x.wantNot = append(x.wantNot, wantNot...)
		return x
	}
	get := func(item, query string, headers ...string) spec7Step {
		return spec7Step{item: item, target: "/balancer-manager" + query, headers: headers}
	}
	// post sends a form with a same-host Referer; xpost asks for the XML answer.
	post := func(item, body string) spec7Step {
		return spec7Step{item: item, method: "POST", body: body, headers: []string{spec7Ref}}
	}
	xpost := func(item, body string) spec7Step { return post(item, body+"&xml=1") }
	proxied := func(item, path string, status int, backend string) spec7Step {
		return spec7Step{item: item, target: path, proxied: true, status: status, want: []string{backend}}
	}
	f := func(k, v string) string { return "<httpd:" + k + ">" + v + "</httpd:" + k + ">" }
	worker := func(url string) string {
		return "<h3>Edit worker settings for " + url + "</h3>\n<form method='POST' enctype='application/x-www-form-urlencoded' action=\"http://{FRONT}/balancer-manager\">"
	}
	balForm := func(b string) string { return "<h3>Edit balancer settings for balancer://" + b + "</h3>" }
	const anyForm = "<h3>Edit "

	// w's first member, as the forms post it.
	const wB1 = "b=w&nonce=nw&w={B1}&"
	head := s.vars.Replace(wB1 + "w_ls=1&xml=1&pad=")
	const tail = "&w_wr=R0"
	padded := head + strings.Repeat("p", manager.BodyLimit-len(head)-len(tail)-3) + tail + "abcdef&w_status_D=1"
	doubleB1 := strings.NewReplacer(":", "%253A", "/", "%252F").Replace(s.bs[0].URL)
	long := strings.Repeat("z", 64)

	return []spec7Step{
		// ---- §7.1 scope and methods; §7.5 the page ----
		with(get("7.1 page, 7.5 HTML", ""), "", "",
			`<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">`,
			"<html><head><title>Balancer Manager</title>\n<style type='text/css'>",
			"<body><h1>Load Balancer Manager for 127.0.0.1</h1>",
			"<dt>Balancer changes will NOT be persisted on restart.</dt>",
			`<hr />`+"\n"+`<h3>LoadBalancer Status for <a href="/balancer-manager?b=w&amp;nonce=nw">balancer://w</a> [pHASH_w]</h3>`,
			"<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th><th>Timeout</th><th>FailoverAttempts</th><th>Method</th><th>Path</th><th>Active</th></tr>",
			"<tr><td>3 [3 Used]</td>\n<td> (None) </td><td>Off</td>\n<td>0</td><td>2</td>\n<td>byrequests</td>\n<td>{PATH}</td>\n<td>Yes</td>",
			"<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th><th>HC uri</th><th>HC Expr</th></tr>",
			`<td><a href="/balancer-manager?b=w&amp;w={B1}&amp;nonce=nw">{B1}</a></td><td>r1</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>0</td><td>0</td><td>0</td><td>{TO}</td><td>  0 </td><td>NONE</td><td>30000ms</td><td>1 (0)</td><td>1 (0)</td><td></td><td></td></tr>`,
			`<a href="/balancer-manager?b=add&amp;nonce=nd">balancer://add</a>`,
			"<tr><td>2 [1 Used]</td>\n<td> (None) </td><td>Off</td>\n<td>0</td><td>0</td>",
			"<tr><td>2 [2 Used]</td>\n<td>ROUTEID</td><td>On</td>\n<td>3</td><td>4</td>\n<td>bytraffic</td>",
			`<td>1</td><td>2</td><td>42.50</td><td>2</td><td>Init Ok </td>`,
			`<a href="/balancer-manager?b=none&amp;nonce=">balancer://none</a>`,
			`<a href="/balancer-manager?b=rnd&amp;nonce={RNDNONCE}">balancer://rnd</a>`),
		not(get("7.5 no edit form without b", ""), anyForm),
		with(get("7.1 sub-path", "/sub/path"), "", "", `<a href="/balancer-manager/sub/path?b=w&amp;nonce=nw">`),
		{item: "7.1 HEAD", method: "HEAD"},
		{item: "7.1 HEAD with a query", method: "HEAD", target: "/balancer-manager?b=w&w={B1}", headers: []string{spec7Ref}},
		{item: "7.1 PUT 405", method: "PUT", status: 405},
		{item: "7.1 DELETE 405", method: "DELETE", target: "/balancer-manager/x", status: 405},
		{item: "7.1 OPTIONS 200", method: "OPTIONS"},

		// ---- §7.6 XML ----
		with(get("7.6 XML x", "?xml=1", spec7Ref), "x", "",
			"<httpd:name>balancer://x</httpd:name>\n      <httpd:nonce>nx</httpd:nonce>\n"+
				"      <httpd:stickysession>ROUTEID</httpd:stickysession>\n      <httpd:nofailover>On</httpd:nofailover>\n"+
				"      <httpd:timeout>3</httpd:timeout>      <httpd:maxattempts>4</httpd:maxattempts>\n"+
				"      <httpd:lbmethod>bytraffic</httpd:lbmethod>\n      <httpd:scolonpathdelim>On</httpd:scolonpathdelim>\n"+
				"      <httpd:workers>\n        <httpd:worker>\n          <httpd:name>{B1}</httpd:name>\n"+
				"          <httpd:scheme>http</httpd:scheme>\n          <httpd:hostname>127.0.0.1</httpd:hostname>\n"+
				"          <httpd:loadfactor>42.50</httpd:loadfactor>\n          <httpd:port>{P1}</httpd:port>\n"+
				"          <httpd:min>0</httpd:min>\n          <httpd:smax>25</httpd:smax>\n          <httpd:max>25</httpd:max>\n"+
				"          <httpd:ttl>0</httpd:ttl>\n          <httpd:timeout>7</httpd:timeout>\n"+
				"          <httpd:status>Init Ok </httpd:status>\n          <httpd:retries>0</httpd:retries>\n"+
				"          <httpd:lbstatus>0</httpd:lbstatus>\n          <httpd:loadfactor>42.50</httpd:loadfactor>\n"+
				"          <httpd:transferred>{T}</httpd:transferred>\n          <httpd:read>0</httpd:read>\n"+
				"          <httpd:elected>0</httpd:elected>\n          <httpd:route>1</httpd:route>\n"+
				"          <httpd:redirect>2</httpd:redirect>\n          <httpd:busy>0</httpd:busy>\n"+
				"          <httpd:lbset>2</httpd:lbset>\n          <httpd:retry>30</httpd:retry>\n        </httpd:worker>"),
		with(get("7.6 XML no sticky, maxattempts defaulted to members-1", "?xml=1", spec7Ref), "w", "",
			"<httpd:nonce>nw</httpd:nonce>\n      <httpd:timeout>0</httpd:timeout>      <httpd:maxattempts>2</httpd:maxattempts>\n      <httpd:lbmethod>byrequests</httpd:lbmethod>\n      <httpd:workers>"),
		with(get("7.6 XML one member: no maxattempts", "?xml=1", spec7Ref), "add", "",
			"<httpd:timeout>0</httpd:timeout>      <httpd:lbmethod>byrequests</httpd:lbmethod>"),
		with(get("7.6 XML head", "?xml=1", spec7Ref), "", "",
			"<?xml version='1.0' encoding='UTF-8' ?>\n<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n  <httpd:balancers>\n    <httpd:balancer>\n      <httpd:name>balancer://add</httpd:name>",
			"    </httpd:balancer>\n  </httpd:balancers>\n</httpd:manager>"),

		// ---- §7.2 parameter collection ----
		with(not(get("7.2 GET keeps b w nonce xml only", "?b=w&w={B1}&nonce=nw&w_status_D=1&w_ls=5&xml=1", spec7Ref),
			"Init Dis"), "w", "{B1}", f("lbset", "0")),
		with(get("7.2 GET change keys dropped, form shown", "?b=w&w={B1}&nonce=nw&w_lf=3", spec7Ref), "", "",
			worker("{B1}"), "<input name='w_lf' id='w_lf' type=text value='1.00'>"),
		with(not(spec7Step{item: "7.2 POST query ignored", method: "POST", target: "/balancer-manager?b=w&w={B1}&nonce=nw&w_status_D=1&xml=1",
			body: "b=w", headers: []string{spec7Ref}}, "Init Dis", "<?xml"), "", "", balForm("w")),
		with(post("7.2 POST 1024-byte read", padded), "w", "{B1}", f("lbset", "1"), f("route", "R0abc"), f("status", "Init Ok ")),
		with(xpost("7.2 push2table key decoded once", wB1+"w%5Fls=5"), "w", "{B1}", f("lbset", "5")),
		with(xpost("7.2 push2table key not decoded twice", wB1+"w%255Fls=7"), "w", "{B1}", f("lbset", "5")),
		with(xpost("7.2 push2table value decoded twice, + kept", "b=w&nonce=nw&w="+doubleB1+"&w_wr=a%2525b&w_rr=x+y"), "w", "{B1}",
			f("route", "a%b"), f("redirect", "x+y")),
		with(xpost("7.2 push2table first =, duplicates, empty pieces", wB1+"w_wr=a=b&&w_rr=1&w_rr=2"), "w", "{B1}",
			f("route", "a=b"), f("redirect", "2")),
		with(post("7.2 push2table no = is an empty value", wB1+"xml=1&w_wr"), "w", "{B1}", f("route", "")),

		// ---- §7.2/3 Referer gate ----
		not(spec7Step{item: "7.2 Referer missing", method: "POST", body: wB1 + "w_ls=9&xml=1"}, anyForm, "<?xml"),
		not(spec7Step{item: "7.2 Referer other host", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Referer: http://evil.example/balancer-manager"}}, anyForm, "<?xml"),
		not(spec7Step{item: "7.2 Referer look-alike host", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Referer: http://127.0.0.1.evil.example/"}}, anyForm, "<?xml"),
		not(spec7Step{item: "7.2 Referer relative", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Referer: /balancer-manager"}}, anyForm, "<?xml"),
		not(spec7Step{item: "7.2 Referer without host", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Referer: http:///balancer-manager"}}, anyForm, "<?xml"),
		not(spec7Step{item: "7.2 Referer without scheme", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Referer: 127.0.0.1/balancer-manager"}}, anyForm, "<?xml"),
		with(get("7.2 nothing changed by dropped parameters", "?xml=1", spec7Ref), "w", "{B1}", f("lbset", "5")),
		with(spec7Step{item: "7.2 Referer host case-insensitive, port and scheme ignored", method: "POST", body: wB1 + "w_ls=9&xml=1",
			headers: []string{"Host: LOCALHOST:{PORT}", "Referer: https://localhost:9999/x"}}, "w", "{B1}", f("lbset", "9")),
		with(spec7Step{item: "7.2 Referer host in other case", method: "POST", body: wB1 + "w_ls=8&xml=1",
			headers: []string{"Host: localhost:{PORT}", "Referer: http://LocalHost/"}}, "w", "{B1}", f("lbset", "8")),
		with(spec7Step{item: "7.2 server name from Host, h1", headers: []string{"Host: LOCALHOST:{PORT}"}}, "", "",
			"<h1>Load Balancer Manager for localhost</h1>"),
		with(spec7Step{item: "7.5 form action from Host", target: "/balancer-manager?b=w",
			headers: []string{"Host: LOCALHOST:{PORT}", "Referer: http://localhost/"}}, "", "",
			"<h1>Load Balancer Manager for localhost</h1>", "action=\"http://localhost:{PORT}/balancer-manager\""),
		not(with(get("7.2 ?xml=1 without Referer is HTML", "?xml=1"), "", "", "<!DOCTYPE HTML"), "<?xml"),
		with(get("7.2 ?xml=1 with Referer is XML", "?xml=1", spec7Ref), "", "", "<?xml version='1.0' encoding='UTF-8' ?>"),
		with(get("7.2 xml with an empty value", "?xml=", spec7Ref), "", "", "<?xml"),
		with(get("7.2 xml without =", "?xml", spec7Ref), "", "", "<?xml"),
		with(get("7.2 xml=0", "?b=w&xml=0", spec7Ref), "", "", "<?xml"),

		// ---- §7.2/4 resolving b and w; §7.2/7 forms without a nonce ----
		with(get("7.2 b lower-cased", "?b=W", spec7Ref), "", "", balForm("w"),
			"<select name='b_lbm' id='b_lbm'>", "name='b_tmo'", "name='b_max'", "name='b_sforce'", "name='b_ss'",
			"(Use '-' to delete)", "<input type=hidden name='b' id='b' value=\"w\">"),
		with(get("7.2 b: after / ignored", "?b=w/extra/x", spec7Ref), "", "", balForm("w")),
		not(get("7.2 b unknown: 200, nothing selected", "?b=nosuch&nonce=nw", spec7Ref), anyForm),
		not(get("7.2 b with balancer:// selects nothing", "?b=balancer://w", spec7Ref), anyForm),
		not(get("7.2 w without b selects nothing", "?w={B1}", spec7Ref), anyForm),
		with(get("7.2 w scheme lower-cased", "?b=w&w=HTTP://127.0.0.1:{P1}", spec7Ref), "", "", worker("{B1}"),
			"<input type=hidden name='w' id='w' value=\"{B1}\">", "<input type=hidden name='b' id='b' value=\"w\">"),
		with(get("7.2 w longest prefix", "?b=w&w={B1}/foo/bar", spec7Ref), "", "", worker("{B1}")),
		with(get("7.2 w longest prefix with a path", "?b=w&w={B2}/app/x", spec7Ref), "", "", worker("{B2}/app")),
		with(not(get("7.2 w shorter than the member", "?b=w&w={B2}", spec7Ref), "Edit worker"), "", "", balForm("w")),
		with(not(get("7.2 w must cover host:port", "?b=w&w={B1}0", spec7Ref), "Edit worker"), "", "", balForm("w")),
		not(get("7.2 forms need the Referer", "?b=w&w={B1}"), anyForm),
		with(get("7.2 worker form without nonce", "?b=w&w={B1}", spec7Ref), "", "", worker("{B1}")),
		with(get("7.2 worker form with a wrong nonce", "?b=w&w={B1}&nonce=bad", spec7Ref), "", "", worker("{B1}"),
			"name='w_lf'", "name='w_ls'", "name='w_wr'", "name='w_rr'", "name='w_status_I'", "name='w_status_N'",
			"name='w_status_D'", "name='w_status_H'", "name='w_status_R'", "name='w_status_C'", "name='w_status_S'",
			"<select name='w_hm'>", "<select name='w_he'>", "name='w_hi'", "name='w_hp'", "name='w_hf'", "name='w_hu'"),

		// ---- §7.2/5 nonce gate; §7.4 ----
		with(xpost("7.2 nonce wrong", "b=w&w={B1}&nonce=bad&w_ls=2"), "w", "{B1}", f("lbset", "8")),
		with(xpost("7.2 nonce missing", "b=w&w={B1}&w_ls=2"), "w", "{B1}", f("lbset", "8")),
		with(xpost("7.2 nonce empty", "b=w&w={B1}&nonce=&w_ls=2"), "w", "{B1}", f("lbset", "8")),
		with(xpost("7.2 nonce other case", "b=w&w={B1}&nonce=NW&w_ls=2"), "w", "{B1}", f("lbset", "8")),
		with(xpost("7.2 nonce right", "b=w&w={B1}&nonce=nw&w_ls=2"), "w", "{B1}", f("lbset", "2")),
		with(xpost("7.2 nonce None: read-only (empty nonce)", "b=none&w={B1}&nonce=&w_status_D=1&b_tmo=5"), "none", "",
			f("nonce", ""), f("status", "Init Ok "), f("timeout", "0")),
		with(xpost("7.2 nonce None: read-only (None)", "b=none&w={B1}&nonce=None&w_status_D=1&b_tmo=5"), "none", "",
			f("status", "Init Ok "), f("timeout", "0")),
		with(get("7.4 nonce None form", "?b=none&w={B1}", spec7Ref), "", "", worker("{B1}")),

		// ---- §7.3 worker fields (w, member b1) ----
		with(xpost("7.3 w_lf 2.5, lbstatus recalculated", wB1+"w_lf=2.5"), "w", "",
			"<httpd:loadfactor>2.50</httpd:loadfactor>\n          <httpd:port>{P1}</httpd:port>",
			f("lbstatus", "250"), "<httpd:name>{B2}/app</httpd:name>"),
		with(xpost("7.3 lbstatus of the others := their lbfactor", wB1+"w_lf=2.5"), "w", "{B2}/app", f("lbstatus", "100")),
		with(xpost("7.3 w_lf 0.5 ignored", wB1+"w_lf=0.5"), "w", "{B1}", f("loadfactor", "2.50")),
		with(xpost("7.3 w_lf abc ignored", wB1+"w_lf=abc"), "w", "{B1}", f("loadfactor", "2.50")),
		with(xpost("7.3 w_lf 100.001", wB1+"w_lf=100.001"), "w", "{B1}", f("loadfactor", "100.00"), f("lbstatus", "10000")),
		with(xpost("7.3 w_lf 101 ignored", wB1+"w_lf=101"), "w", "{B1}", f("loadfactor", "100.00")),
		with(xpost("7.3 w_lf atof prefix", wB1+"w_lf=1.5xyz"), "w", "{B1}", f("loadfactor", "1.50")),
		with(xpost("7.3 w_ls 3", wB1+"w_ls=3"), "w", "{B1}", f("lbset", "3")),
		with(xpost("7.3 w_ls 100 ignored", wB1+"w_ls=100"), "w", "{B1}", f("lbset", "3")),
		with(xpost("7.3 w_ls -1 ignored", wB1+"w_ls=-1"), "w", "{B1}", f("lbset", "3")),
		with(xpost("7.3 w_ls atoi 7x", wB1+"w_ls=7x"), "w", "{B1}", f("lbset", "7")),
		with(xpost("7.3 w_ls atoi abc = 0", wB1+"w_ls=abc"), "w", "{B1}", f("lbset", "0")),
		with(xpost("7.3 w_ls 99", wB1+"w_ls=99"), "w", "{B1}", f("lbset", "99")),
		with(xpost("7.3 w_wr w_rr set", wB1+"w_wr=r9&w_rr=rr9&w_ls=0"), "w", "{B1}", f("route", "r9"), f("redirect", "rr9")),
		with(xpost("7.3 w_wr w_rr empty clears", wB1+"w_wr=&w_rr="), "w", "{B1}", f("route", ""), f("redirect", "")),
		with(xpost("7.3 w_wr w_rr 63 chars set", wB1+"w_wr="+long[:63]+"&w_rr="+long[:63]), "w", "{B1}",
			f("route", long[:63]), f("redirect", long[:63])),
		with(xpost("7.3 w_wr w_rr 64 chars clear", wB1+"w_wr="+long+"&w_rr="+long), "w", "{B1}", f("route", ""), f("redirect", "")),
		with(xpost("7.3 w_wr restore", wB1+"w_wr=r1"), "w", "{B1}", f("route", "r1")),
		with(xpost("7.3 w_status atoi: 1 and 5 set, x clears", wB1+"w_status_D=1&w_status_H=5&w_status_I=x"), "w", "{B1}",
			f("status", "Init Dis Stby ")),
		with(xpost("7.3 w_status N R S C", wB1+"w_status_D=0&w_status_H=no&w_status_N=1&w_status_R=1&w_status_S=1&w_status_C=1"),
			"w", "{B1}", f("status", "Init Drn Stop Spar HcFl ")),
		with(xpost("7.3 no w_status_E", wB1+"w_status_E=1"), "w", "{B1}", f("status", "Init Drn Stop Spar HcFl ")),
		with(xpost("7.3 w_status clear, I set", wB1+"w_status_N=0&w_status_R=0&w_status_S=0&w_status_C=0&w_status_I=1"),
			"w", "{B1}", f("status", "Init Ign Ok ")),
		with(xpost("7.3 w_status atoi +1", wB1+"w_status_I=0&w_status_D=%2B1"), "w", "{B1}", f("status", "Init Dis ")),
		with(xpost("7.3 w_status atoi 0x1 = 0", wB1+"w_status_D=0x1"), "w", "{B1}", f("status", "Init Ok ")),
		with(post("7.3 w_hm w_hi w_hp w_hf w_hu", wB1+"w_hm=get&w_hi=250&w_hp=3&w_hf=2&w_hu=/health"), "w", "{B1}",
			"<td>GET</td><td>250ms</td><td>3 (0)</td><td>2 (0)</td><td>/health</td><td></td>"),
		with(post("7.3 hc values out of range ignored", wB1+"w_hm=PROVIDER&w_hi=99&w_hp=0&w_hf=abc"), "w", "{B1}",
			"<td>GET</td><td>250ms</td><td>3 (0)</td><td>2 (0)</td><td>/health</td><td></td>"),
		with(post("7.3 w_hi bogus ignored, w_hi unit", wB1+"w_hi=bogus"), "w", "{B1}", "<td>250ms</td>"),
		with(post("7.3 w_hi with a unit", wB1+"w_hi=2s"), "w", "{B1}", "<td>2000ms</td>"),
		with(post("7.3 w_hu empty clears, unknown w_he clears", wB1+"w_hu=&w_he=nosuch"), "w", "{B1}",
			"<td>GET</td><td>2000ms</td><td>3 (0)</td><td>2 (0)</td><td></td><td></td>"),
		with(post("7.3 w_hm TCP", wB1+"w_hm=TCP"), "w", "{B1}", "<td>TCP</td>"),
		with(post("7.3 w_hm none", wB1+"w_hm=none&w_hi=30000&w_hp=1&w_hf=1"), "w", "{B1}",
			"<td>NONE</td><td>30000ms</td><td>1 (0)</td><td>1 (0)</td><td></td><td></td>"),
		with(post("7.3 worker form shows the values", wB1+"w_lf=1"), "", "",
			worker("{B1}"), "<input name='w_lf' id='w_lf' type=text value='1.00'>", "<input name='w_ls' id='w_ls' type=text value='0'>",
			"<input name='w_wr' id='w_wr' type=text value=\"r1\">", "<option value='NONE' selected >NONE</option>"),

		// ---- §7.3 E and I (err: a dead member, retry 300, and b2) ----
		proxied("2.5 dead member fails over", "/err/", 200, "b2"),
		with(get("7.3 E set by the failure", "?xml=1", spec7Ref), "err", "{DEAD}", f("status", "Init Err "),
			f("error_time", "{DATE}"), f("retry", "300")),
		with(xpost("7.3 E cannot be cleared", "b=err&w={DEAD}&nonce=ne&w_status_E=0"), "err", "{DEAD}", f("status", "Init Err ")),
		with(xpost("7.3 I set, E stays until examined", "b=err&w={DEAD}&nonce=ne&w_status_I=1"), "err", "{DEAD}",
			f("status", "Init Ign Err ")),
		proxied("7.3 the next examination", "/err/", 200, "b2"),
		with(get("7.3 setting I lifted E", "?xml=1", spec7Ref), "err", "{DEAD}", f("status", "Init Ign Ok "), f("retries", "1")),
		{item: "2.5 I: no failover", target: "/err/", proxied: true, status: 503},
		with(get("7.3 I keeps it usable", "?xml=1", spec7Ref), "err", "{DEAD}", f("status", "Init Ign Ok ")),
		with(xpost("7.3 I cleared", "b=err&w={DEAD}&nonce=ne&w_status_I=0&w_status_D=1"), "err", "{DEAD}", f("status", "Init Dis ")),

		// ---- §7.3 balancer fields (bf) ----
		with(xpost("7.3 lbstatus before the switch", "b=bf&nonce=nb&w={B1}&w_lf=2"), "bf", "{B1}", f("lbstatus", "200")),
		with(xpost("7.3 b_lbm switch to bytraffic: lbstatus kept", "b=bf&nonce=nb&b_lbm=bytraffic"), "bf", "{B1}",
			f("lbstatus", "200")),
		with(get("7.3 bytraffic's reset leaves lbstatus", "?xml=1", spec7Ref), "bf", "{B1}", f("lbstatus", "200")),
		with(xpost("7.3 b_lbm case-sensitive", "b=bf&nonce=nb&b_lbm=ByRequests"), "bf", "", f("lbmethod", "bytraffic")),
		with(xpost("7.3 b_lbm not registered", "b=bf&nonce=nb&b_lbm=heartbeat"), "bf", "", f("lbmethod", "bytraffic")),
		with(xpost("7.3 b_lbm too long", "b=bf&nonce=nb&b_lbm=bybusynessbybusyness"), "bf", "", f("lbmethod", "bytraffic")),
		func() spec7Step {
			x := with(xpost("7.3 b_lbm switch to bybusyness", "b=bf&nonce=nb&b_lbm=bybusyness"), "bf", "", f("lbmethod", "bybusyness"))
			x.deviation = "httpd runs the new lbmethod's reset at the next sync, after this page; Caddy at once"
			return x
		}(),
		with(get("7.3 bybusyness's reset: lbstatus 0", "?xml=1", spec7Ref), "bf", "{B1}", f("lbstatus", "0")),
		with(xpost("7.3 b_lbm back", "b=bf&nonce=nb&b_lbm=byrequests"), "bf", "", f("lbmethod", "byrequests")),
		func() spec7Step {
			// Worker fields first: w_lf sets every lbstatus, then the
			// switch's reset zeroes them (the other order would leave 400).
			x := xpost("7.2 order: worker fields before balancer fields", "b=bf&nonce=nb&w={B1}&w_lf=4&b_lbm=bybusyness")
			x.deviation = "httpd runs the new lbmethod's reset at the next sync, after this page; Caddy at once"
			return x
		}(),
		with(get("7.2 order: the reset came last", "?xml=1", spec7Ref), "bf", "{B1}", f("loadfactor", "4.00"), f("lbstatus", "0")),
		func() spec7Step {
			x := with(xpost("7.3 b_lbm back again", "b=bf&nonce=nb&b_lbm=byrequests"), "bf", "", f("lbmethod", "byrequests"))
			x.deviation = "httpd runs the new lbmethod's reset at the next sync, after this page; Caddy at once"
			return x
		}(),
		with(xpost("7.3 b_tmo 30", "b=bf&nonce=nb&b_tmo=30"), "bf", "", f("timeout", "30")),
		with(xpost("7.3 b_tmo 7201 ignored", "b=bf&nonce=nb&b_tmo=7201"), "bf", "", f("timeout", "30")),
		with(xpost("7.3 b_tmo -1 ignored", "b=bf&nonce=nb&b_tmo=-1"), "bf", "", f("timeout", "30")),
		with(xpost("7.3 b_tmo 7200", "b=bf&nonce=nb&b_tmo=7200"), "bf", "", f("timeout", "7200")),
		with(xpost("7.3 b_tmo abc = 0", "b=bf&nonce=nb&b_tmo=abc"), "bf", "", f("timeout", "0")),
		with(xpost("7.3 b_max 5", "b=bf&nonce=nb&b_max=5"), "bf", "", f("maxattempts", "5")),
		with(xpost("7.3 b_max 100 ignored", "b=bf&nonce=nb&b_max=100"), "bf", "", f("maxattempts", "5")),
		with(xpost("7.3 b_max -1 ignored", "b=bf&nonce=nb&b_max=-1"), "bf", "", f("maxattempts", "5")),
		with(xpost("7.3 b_ss cookie|param", "b=bf&nonce=nb&b_ss=JSESSIONID|jsessionid"), "bf", "",
			f("stickysession", "JSESSIONID"), f("nofailover", "Off"), f("scolonpathdelim", "Off")),
		with(get("7.5 sticky cell COOKIE|PARAM", "", spec7Ref), "bf", "", "<td>JSESSIONID|jsessionid</td><td>Off</td>"),
		with(xpost("7.3 b_sforce 1", "b=bf&nonce=nb&b_sforce=1"), "bf", "", f("nofailover", "On")),
		with(xpost("7.3 b_sforce x = Off", "b=bf&nonce=nb&b_sforce=x"), "bf", "", f("nofailover", "Off")),
		with(xpost("7.3 b_ss no trimming", "b=bf&nonce=nb&b_ss=A | b"), "bf", "", f("stickysession", "A ")),
		with(get("7.5 sticky cell untrimmed", "?b=bf", spec7Ref), "bf", "", "<td>A | b</td>"),
		with(get("7.5 balancer form sticky value", "?b=bf", spec7Ref), "", "", balForm("bf")),
		with(xpost("7.3 b_ss empty ignored", "b=bf&nonce=nb&b_ss="), "bf", "", f("stickysession", "A ")),
		with(xpost("7.3 b_ss 63 chars ignored", "b=bf&nonce=nb&b_ss="+long[:63]), "bf", "", f("stickysession", "A ")),
		with(xpost("7.3 b_ss 62 chars", "b=bf&nonce=nb&b_ss="+long[:62]), "bf", "", f("stickysession", long[:62])),
		not(with(xpost("7.3 b_ss - clears", "b=bf&nonce=nb&b_ss=-"), "bf", ""), "stickysession", "nofailover"),
		with(xpost("7.3 unknown keys ignored; b_nwrkr without b_wyes", "b=bf&nonce=nb&zz=1&b_unknown=2&b_nwrkr={B3}"), "bf", "",
			f("lbmethod", "byrequests")),

		// ---- §7.3 adding a member (add: b1, growth 1) ----
		with(get("7.5 balancer form with a free slot", "?b=add", spec7Ref), "", "", balForm("add"),
			"<input name='b_nwrkr' id='b_nwrkr' size=32 type=text>", "<input name='b_wyes' id='b_wyes' type=checkbox value='1'>"),
		not(with(xpost("7.3 b_wyes must be 1: on", "b=add&nonce=nd&b_nwrkr={B2}&b_wyes=on"), "add", ""), "{B2}"),
		not(with(xpost("7.3 b_wyes must be 1: 11", "b=add&nonce=nd&b_nwrkr={B2}&b_wyes=11"), "add", ""), "{B2}"),
		{item: "7.3 add: prefix duplicate 400", method: "POST", body: "b=add&nonce=nd&b_nwrkr={B1}/x&b_wyes=1", headers: []string{spec7Ref}, status: 400},
		{item: "7.3 add: invalid URL 400", method: "POST", body: "b=add&nonce=nd&b_nwrkr=foo&b_wyes=1", headers: []string{spec7Ref}, status: 400},
		{item: "7.3 add: invalid URL 400 (no host)", method: "POST", body: "b=add&nonce=nd&b_nwrkr=http://&b_wyes=1", headers: []string{spec7Ref}, status: 400},
		with(xpost("7.3 add: new member Disabled", "b=add&nonce=nd&b_nwrkr={B2}&b_wyes=1"), "add", "{B2}", f("status", "Init Dis ")),
		{item: "7.3 add: exact duplicate 400", method: "POST", body: "b=add&nonce=nd&b_nwrkr={B2}&b_wyes=1", headers: []string{spec7Ref}, status: 400},
		{item: "7.3 add: no free slot 400", method: "POST", body: "b=add&nonce=nd&b_nwrkr={B3}&b_wyes=1", headers: []string{spec7Ref}, status: 400},
		not(with(get("7.5 balancer form without a free slot", "?b=add", spec7Ref), "", "", balForm("add")), "b_nwrkr", "b_wyes"),
		proxied("7.3 the added member is disabled", "/add/", 200, "b1"),

		// ---- §7.3 one member (one: b1, growth 1); §7.2/6 order ----
		with(xpost("7.3 w_lf on a single member forced to 1.00; b_max not marked set", "b=one&w={B1}&nonce=no&w_lf=5&b_max=3"), "one", "",
			f("loadfactor", "1.00"), f("lbstatus", "100"), f("timeout", "0")+"      "+f("lbmethod", "byrequests")),
		with(get("7.3 b_max shown", "", spec7Ref), "one", "", "<td>0</td><td>3</td>"),
		with(xpost("7.2 order: worker fields before the addition", "b=one&w={B1}&nonce=no&w_lf=5&b_nwrkr={B2}&b_wyes=1"), "one", "{B1}",
			f("loadfactor", "1.00")),
		with(xpost("7.3 w_lf with two members", "b=one&w={B1}&nonce=no&w_lf=5"), "one", "{B1}", f("loadfactor", "5.00"), f("lbstatus", "500")),
		with(xpost("7.3 b_max still not set", "b=one&nonce=no"), "one", "", f("timeout", "0")+"      "+f("lbmethod", "byrequests")),

		// ---- §7.5 To/From in strfsize form (tr: b4 answers /size/N with N bytes) ----
		proxied("7.5 traffic 600", "/tr/size/585", 200, "b4"),
		with(get("7.5 From 600", "", spec7Ref), "tr", "{B4}", "<td>{TO}</td><td>600 </td>"),
		with(get("7.6 read 600", "?xml=1", spec7Ref), "tr", "{B4}", f("read", "600"), f("elected", "1")),
		proxied("7.5 traffic 1843", "/tr/size/1228", 200, "b4"),
		with(get("7.5 From 1.8K", "", spec7Ref), "tr", "{B4}", "<td>{TO}</td><td>1.8K</td>"),
		proxied("7.5 traffic 47K", "/tr/size/46000", 200, "b4"),
		with(get("7.5 From 47K", "", spec7Ref), "tr", "{B4}", "<td>{TO}</td><td> 47K</td>"),
		func() spec7Step {
			x := with(xpost("7.3 b_lbm switch to bytraffic", "b=tr&nonce=nt&b_lbm=bytraffic"), "tr", "", f("lbmethod", "bytraffic"))
			x.deviation = "httpd runs the new lbmethod's reset at the next sync, after this page; Caddy at once"
			return x
		}(),
		with(get("7.3 bytraffic's reset: read 0", "?xml=1", spec7Ref), "tr", "{B4}", f("read", "0"), f("lbstatus", "0")),

		// ---- §7.3 a member made usable requests a reset (rs: b1, growth 2) ----
		with(xpost("7.3 reset: add b2", "b=rs&nonce=nr&b_nwrkr={B2}&b_wyes=1"), "rs", "{B2}", f("status", "Init Dis ")),
		with(xpost("7.3 reset: lbstatus := lbfactor", "b=rs&nonce=nr&w={B1}&w_lf=3"), "rs", "{B1}", f("lbstatus", "300")),
		with(xpost("7.3 reset: b2 made usable, reset only requested", "b=rs&nonce=nr&w={B2}&w_status_D=0"), "rs", "{B1}",
			f("lbstatus", "300")),
		with(get("7.3 reset: still requested", "?xml=1", spec7Ref), "rs", "{B1}", f("lbstatus", "300")),
		xpost("7.3 reset: applied at the next member addition", "b=rs&nonce=nr&b_nwrkr={B3}&b_wyes=1"),
		with(get("7.3 reset: not applied by the addition either (2.4.71)", "?xml=1", spec7Ref), "rs", "{B1}", f("lbstatus", "300")),
		proxied("7.3 reset: a request", "/rs/", 200, "b1"),
		with(get("7.3 reset: nor by a request", "?xml=1", spec7Ref), "rs", "{B1}", f("lbstatus", "200")),

		// ---- §7.1 400 when the body cannot be read ----
		{item: "7.1 unreadable POST body 400", method: "POST", body: "zz\r\n\r\n", status: 400,
			headers: []string{spec7Ref, "Transfer-Encoding: chunked"}},

		// The whole page and XML once more, after everything.
		{item: "7.5 final page", headers: []string{spec7Ref}, suffix: "</table>\n<hr />\n</body></html>\n"},
		{item: "7.5 final page", target: "/balancer-manager?b=w", headers: []string{spec7Ref}, suffix: "</form>\n<hr />\n</body></html>\n"},
		{item: "7.6 final XML", target: "/balancer-manager?xml=1", headers: []string{spec7Ref}, suffix: "</httpd:balancers>\n</httpd:manager>"},
	}
}

// TestSpec7SharedAcrossVhosts: §7.7 and §7.1's scope. Two name-based
// virtual hosts both use balancer sh (httpd: inherited from the main server;
// Caddy: two site blocks naming it), and vhost a has a balancer zz of its
// own. A member change made through one vhost's manager is seen through the
// other at once (and on Caddy's admin endpoint), and vhost b's page lists sh
// only (httpd: the vhost's balancers; Caddy: `balancer_manager sh`, the
// documented way to limit the page; by default the site handler lists every
// balancer: deviation). The normalized pages of both front ends must agree.
// Deviation: httpd 2.4.71 keeps the balancer-level state (nonce, timeout,
// ...) per vhost here and shares only the members' state; Caddy has one
// balancer per name (INTERFACE.md: blocks with the same name share one
// balancer), so the nonce and the balancer parameters are shared too.
func TestSpec7SharedAcrossVhosts(t *testing.T) {
	requireHTTPD(t)
	bs := startBackends(t, 3)
	hd := startOracleHTTPD(t, fmt.Sprintf(`LoadModule proxy_hcheck_module /usr/lib/apache2/modules/mod_proxy_hcheck.so
<Proxy balancer://sh>
BalancerMember %[1]s
BalancerMember %[2]s
</Proxy>
<VirtualHost 127.0.0.1:{{PORT}}>
ServerName a.test
ProxyPass /sh balancer://sh
ProxyPass /zz balancer://zz
<Proxy balancer://zz>
BalancerMember %[3]s
ProxySet nonce=nz
</Proxy>
<Location /balancer-manager>
SetHandler balancer-manager
</Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{{PORT}}>
ServerName b.test
ProxyPass /sh balancer://sh
<Location /balancer-manager>
SetHandler balancer-manager
</Location>
</VirtualHost>
`, bs[0].URL, bs[1].URL, bs[2].URL))
	port, aport := freePort(t), freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	persist_config off
	auto_https off
}
http://a.test:%[2]d {
	bind 127.0.0.1
	handle /balancer-manager* {
		balancer_manager
	}
	handle_path /sh/* {
		balancer sh {
			balancer_member %[3]s
			balancer_member %[4]s
		}
	}
	handle_path /zz/* {
		balancer zz {
			nonce nz
			balancer_member %[5]s
		}
	}
}
http://b.test:%[2]d {
	bind 127.0.0.1
	handle /balancer-manager* {
		balancer_manager sh
	}
	handle_path /sh/* {
		balancer sh
	}
}`, aport, port, bs[0].URL, bs[1].URL, bs[2].URL))
	ours := fmt.Sprintf("127.0.0.1:%d", port)

	type view struct {
		nonceA, nonceB     string
		xmlB, pageA, pageB string
		timeoutB           string
	}
	look := func(addr string) view {
		_, p, _ := net.SplitHostPort(addr)
		hostA, hostB := "Host: a.test:"+p, "Host: b.test:"+p
		refA, refB := "Referer: http://a.test/", "Referer: http://b.test/"
		xmlSH := func(host, ref string) string {
			body := spec7Send(t, addr, "GET", "/balancer-manager?xml=1", []string{host, ref}, "").Body
			if part := spec7Scope(body, "sh", ""); part != "" {
				return part
			}
			t.Fatalf("%s %s: no balancer sh in\n%s", addr, host, body)
			return ""
		}
		field := func(xml, name string) string {
			_, rest, _ := strings.Cut(xml, "<httpd:"+name+">")
			v, _, _ := strings.Cut(rest, "<")
			return v
		}
		v := view{nonceA: field(xmlSH(hostA, refA), "nonce"), nonceB: field(xmlSH(hostB, refB), "nonce")}
		for _, n := range []string{v.nonceA, v.nonceB} {
			if !reSpec7UUID.MatchString(n) {
				t.Errorf("%s: balancer sh's nonce %q is not a generated UUID", addr, n)
			}
		}
		// Disable b1 and set the timeout through vhost a.
		r := spec7Send(t, addr, "POST", "/balancer-manager", []string{hostA, refA},
			"b=sh&nonce="+v.nonceA+"&w="+bs[0].URL+"&w_status_D=1&b_tmo=9")
		if r.Status != 200 {
			t.Errorf("%s: POST through vhost a: %d", addr, r.Status)
		}
		x := xmlSH(hostB, refB)
		v.timeoutB = field(x, "timeout")
		if w := spec7Scope(x, "", bs[0].URL); !strings.Contains(w, "<httpd:status>Init Dis </httpd:status>") {
			t.Errorf("%s: the member change made through vhost a is not seen through vhost b:\n%s", addr, w)
		}
		norm := func(body string) string {
			body = spec7Normalize(t, body, addr, "")
			for _, n := range []string{v.nonceA, v.nonceB} {
				body = strings.ReplaceAll(body, n, "{NONCE}")
			}
			body = regexp.MustCompile(`<httpd:timeout>\d+</httpd:timeout>      <httpd:maxattempts>`).ReplaceAllString(body, "<httpd:timeout>{TMO}</httpd:timeout>      <httpd:maxattempts>")
			body = regexp.MustCompile(`(<td> \(None\) </td><td>Off</td>\n<td>)\d+(</td>)`).ReplaceAllString(body, "${1}{TMO}$2")
			body = regexp.MustCompile(`(name='b_tmo' id='b_tmo' type=text value=')\d+`).ReplaceAllString(body, "${1}{TMO}")
			return strings.ReplaceAll(body, p, "{PORT}")
		}
		v.xmlB = norm(x)
		v.pageA = norm(spec7Send(t, addr, "GET", "/balancer-manager", []string{hostA}, "").Body)
		v.pageB = norm(spec7Send(t, addr, "GET", "/balancer-manager?b=sh", []string{hostB, refB}, "").Body)
		if strings.Contains(v.pageB, "balancer://zz") {
			t.Errorf("%s: vhost b lists vhost a's balancer zz", addr)
		}
		if !strings.Contains(v.pageA, "balancer://zz") || !strings.Contains(v.pageA, "<h1>Load Balancer Manager for a.test</h1>") {
			t.Errorf("%s: vhost a's page lacks its balancer zz or its name", addr)
		}
		return v
	}
	h, o := look(hd.Addr), look(ours)
	for _, c := range []struct{ what, h, o string }{{"vhost b XML", h.xmlB, o.xmlB}, {"vhost a page", h.pageA, o.pageA}, {"vhost b form", h.pageB, o.pageB}} {
		if c.h != c.o {
			t.Errorf("Caddy differs from httpd: %s: %s", c.what, spec7FirstDiff(c.h, c.o))
		}
	}
	// Ours: one balancer sh, one nonce, one set of parameters.
	if o.nonceA != o.nonceB || o.timeoutB != "9" {
		t.Errorf("Caddy: balancer sh through vhost a and b: nonces %q and %q, timeout through b %q (set to 9 through a): want one shared balancer",
			o.nonceA, o.nonceB, o.timeoutB)
	}
	t.Logf("deviation: httpd's vhosts have nonces %q and %q for sh and vhost b's timeout stayed %s; Caddy shares %q and %s",
		h.nonceA, h.nonceB, h.timeoutB, o.nonceA, o.timeoutB)
	// The admin endpoint's manager shows the same state at once (§7.7:
	// "changes are visible to all processes immediately").
	x := spec7Send(t, fmt.Sprintf("127.0.0.1:%d", aport), "GET", "/balancer-manager?xml=1", nil, "").Body
	if !strings.Contains(spec7Scope(x, "sh", bs[0].URL), "<httpd:status>Init Dis </httpd:status>") {
		t.Errorf("the admin endpoint does not show the change made through vhost a:\n%s", x)
	}
	if t.Failed() {
		t.Logf("httpd error log:\n%s", hd.ErrorLog())
	}
}

// TestSpec7NonceRestart: §7.4. A balancer without a configured nonce gets a
// 36-character lower-case UUID, a new one at every start (without persist);
// a config reload keeps it with the rest of the run-time state (README,
// "State"; httpd makes a new one at a graceful restart: deviation).
func TestSpec7NonceRestart(t *testing.T) {
	bs := startBackends(t, 1)
	port := freePort(t)
	cfg := func(aport int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	handle /balancer-manager* {
		balancer_manager
	}
	balancer nr {
		balancer_member %s
	}
}`, aport, port, bs[0].URL)
	}
	// nonce reads the nonce, retrying while a reload swaps the servers
	// (a connection the old server took may be closed unanswered).
	nonce := func() string {
		u := fmt.Sprintf("http://127.0.0.1:%d/balancer-manager?xml=1", port)
		for i := 0; ; i++ {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Referer", u)
			resp, err := client.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if x := spec7Scope(string(body), "nr", ""); x != "" {
					_, rest, _ := strings.Cut(x, "<httpd:nonce>")
					n, _, _ := strings.Cut(rest, "<")
					return n
				}
			}
			if i == 50 {
				t.Fatalf("no nonce for nr: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	loadCaddyfile(t, cfg(freePort(t)))
	n1 := nonce()
	loadCaddyfile(t, cfg(freePort(t)))
	n2 := nonce()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	loadCaddyfile(t, cfg(freePort(t)))
	n3 := nonce()
	for _, n := range []string{n1, n2, n3} {
		if !reSpec7UUID.MatchString(n) {
			t.Errorf("nonce %q is not a 36-character lower-case UUID", n)
		}
	}
	if n2 != n1 {
		t.Errorf("a reload changed the nonce: %q, then %q", n1, n2)
	}
	if n3 == n1 {
		t.Errorf("a restart kept the nonce %q", n1)
	}
}
