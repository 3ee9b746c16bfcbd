//go:build linux

package conformance

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/internal/httpdtest"
	"github.com/lbset/caddy-balancer/internal/testenv"
)

// scenarios is the suite. Sequences in Want are docs/behaviour.md's observations or
// follow from its rules step by step; member names double as routes in the
// sticky scenarios.
var scenarios = []Scenario{
	// §5.1 byrequests worked examples.
	{
		Name:    "lf13",
		About:   "byrequests, loadfactors 1 and 3 (§5.1 worked example)",
		Members: []Member{{Name: "b1", LoadFactor: 1}, {Name: "b2", LoadFactor: 3}},
		Steps:   gets(8, "/"),
		Want:    strings.Fields("b2 b1 b2 b2 b2 b1 b2 b2"),
	},
	{
		Name:    "lf1112",
		About:   "byrequests, loadfactors 1,1,1,2 (§5.1)",
		Members: []Member{{Name: "b1"}, {Name: "b2"}, {Name: "b3"}, {Name: "b4", LoadFactor: 2}},
		Steps:   gets(10, "/"),
		Want:    strings.Fields("b4 b1 b2 b3 b4 b4 b1 b2 b3 b4"),
	},
	{
		Name:    "lf-decimal",
		About:   "byrequests, loadfactors 1.5 and 2.25 (§5.1)",
		Members: []Member{{Name: "b1", LoadFactor: 1.5}, {Name: "b2", LoadFactor: 2.25}},
		Steps:   gets(10, "/"),
		Want:    strings.Fields("b2 b1 b2 b1 b2 b2 b1 b2 b1 b2"),
	},

	// The README's demo (testdata/demo.caddyfile) as httpd's <Proxy> block.
	{
		Name: "demo",
		About: "the demo: two lbset-0 members (one with loadfactor 2), an absent member, a hot spare, a hot standby and " +
			"an lbset-1 member, stickysession ROUTEID; the absent member fails over once and the spare stands in for it, " +
			"a cookie sticks, then the regular members and the spare go down, the standby serves, then lbset 1 (§3.3, §3.7, §4)",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members: []Member{
			{Name: "a1", Route: "a1"}, {Name: "a2", Route: "a2", LoadFactor: 2},
			{Name: "a3", Route: "a3", Dead: true, Retry: secs(30)},
			{Name: "s1", Route: "s1", Status: "+R"}, {Name: "h1", Route: "h1", Status: "+H"},
			{Name: "b1", Route: "b1", LBSet: 1},
		},
		Steps: steps(gets(8, "/"), gets(2, "/", "ROUTEID=.a1"), []Step{down("a1"), down("a2"), down("s1")},
			gets(3, "/"), []Step{down("h1")}, gets(2, "/")),
		// The first eight, walked by hand from §3.3 and §5.1 (see README "What the demo shows").
		Want: strings.Fields("a2 a1 a2 a2 s1 a1 a2 a2 a1 a1 h1 h1 h1 b1 b1"),
	},

	// §3.3 spares and standbys, lbsets.
	{
		Name:  "spares",
		About: "hot spares replace dead regular members one for one and compete with the live ones; b4 is never used (§3.3 example)",
		Members: []Member{
			{Name: "d1", Dead: true}, {Name: "d2", Dead: true}, {Name: "b1"},
			{Name: "b2", Status: "+R"}, {Name: "b3", Status: "+R", LoadFactor: 2}, {Name: "b4", Status: "+R"},
		},
		Steps: gets(16, "/"),
		Want:  strings.Fields("b1 b3 b2 b3 b1 b3 b2 b3 b1 b3 b2 b3 b1 b3 b2 b3"),
	},
	{
		Name: "lbset-standby",
		About: "set 0: two dead regular members and a hot standby; set 1: a regular member. The set-0 standby is used " +
			"before set 1; when it dies set 1 takes over; when it is back and its retry has passed it wins again (§3.3, §2.5)",
		Members: []Member{
			{Name: "d1", Dead: true}, {Name: "d2", Dead: true}, {Name: "s1", Status: "+H", Retry: secs(1)},
			{Name: "b1", LBSet: 1},
		},
		Steps: steps(gets(3, "/"), []Step{down("s1")}, gets(3, "/"), []Step{up("s1"), sleep(1200 * time.Millisecond)}, gets(3, "/")),
		Want:  strings.Fields("s1 s1 s1 b1 b1 b1 s1 s1 s1"),
	},

	// §2.5, §3.7 error state, retry, failover, forced recovery.
	{
		Name: "dead-retry",
		About: "a dead member with retry=1 between two live ones: put in error on its first try, failover; after the " +
			"retry time E is lifted when the chooser merely looks at it; tried again, fails again; later it comes up (§2.5, §3.7)",
		Members: []Member{{Name: "b1"}, {Name: "d1", Dead: true, Retry: secs(1)}, {Name: "b2"}},
		Steps: steps(gets(4, "/"), []Step{sleep(1200 * time.Millisecond)}, gets(3, "/"),
			[]Step{up("d1"), sleep(1200 * time.Millisecond)}, gets(4, "/")),
		Want: strings.Fields("b1 b2 b2 b1 b2 b1 b2 b1 b2 d1 b1"),
	},
	{
		Name: "two-dead-maxattempts5",
		About: "two dead members, maxattempts=5, forcerecovery on (default): each request cycles through both " +
			"members 3 times then 503; once d1 is up, forced recovery lifts E at once (§2.5, §3.7)",
		Balancer: Balancer{MaxAttempts: intp(5)},
		Members:  []Member{{Name: "d1", Dead: true}, {Name: "d2", Dead: true}},
		Steps:    steps(gets(2, "/"), []Step{up("d1")}, gets(2, "/")),
		Want:     strings.Fields("503 503 d1 d1"),
	},
	{
		Name: "two-dead-maxattempts5-norecovery",
		About: "same with forcerecovery=Off: both members stay in error for their 60 s retry, so even after d1 " +
			"is up every request is 503 (§2.5)",
		Balancer: Balancer{MaxAttempts: intp(5), ForceRecovery: boolp(false)},
		Members:  []Member{{Name: "d1", Dead: true}, {Name: "d2", Dead: true}},
		Steps:    steps(gets(2, "/"), []Step{up("d1")}, gets(2, "/")),
		Want:     strings.Fields("503 503 503 503"),
	},
	{
		Name: "single-dead-member",
		About: "a one-member balancer has no failover (maxattempts defaults to members-1 = 0); its dead member is " +
			"retried on every request by forced recovery, and serves as soon as it is up (§2.5, §3.7)",
		Members: []Member{{Name: "d1", Dead: true}},
		Steps:   steps(gets(2, "/"), []Step{up("d1")}, gets(1, "/")),
		Want:    strings.Fields("503 503 d1"),
	},
	{
		Name:     "maxattempts0",
		About:    "maxattempts=0: the request that meets the dead member gets 503, no failover; later ones avoid it (§3.7)",
		Balancer: Balancer{MaxAttempts: intp(0)},
		Members:  []Member{{Name: "d1", Dead: true}, {Name: "b1"}, {Name: "b2"}},
		Steps:    gets(4, "/"),
		Want:     strings.Fields("503 b1 b2 b1"),
	},
	{
		Name:     "failonstatus",
		About:    "failonstatus=503: the member's 503 reaches the client and puts the member in error (§3.8)",
		Balancer: Balancer{FailOnStatus: []int{503}},
		Members:  []Member{{Name: "b1"}, {Name: "b2"}},
		Steps:    steps(one(get("/status/503")), gets(3, "/")),
		Want:     strings.Fields("b1/503 b2 b2 b2"),
	},
	{
		Name:     "timeout-all-disabled",
		About:    "all members disabled, balancer timeout=1: 503 after waiting (§3.4)",
		Balancer: Balancer{Timeout: 1},
		Members:  []Member{{Name: "b1", Status: "D"}, {Name: "b2", Status: "D"}},
		Steps:    gets(1, "/"),
		Want:     strings.Fields("503"),
	},

	// §4.5 route extraction.
	{
		Name:     "sticky-cookie",
		About:    "§4.5 cookie rows, stickysession=JSESSIONID|jsessionid; balanced rows show the lbstatus after sticky hits (§3.1 step 4)",
		Balancer: Balancer{StickySession: "JSESSIONID|jsessionid"},
		Members:  routed("r1", "r2", "r3"),
		Steps: []Step{
			get("/", "JSESSIONID=abc.r2"),
			get("/", "JSESSIONID=abc.r2.x"),
			get("/", "JSESSIONID=abc"),
			get("/", "JSESSIONID=r3"),
			get("/", "JSESSIONID=.r3"),
			get("/", "x=1; JSESSIONID = abc.r3"),
			get("/", "xJSESSIONID=abc.r3"),
			get("/", "jsessionid=abc.r3"),
			get("/", `JSESSIONID="x.r2"`),
			get("/", "JSESSIONID=x.r2 ; b=1"),
			get("/", "a=1", "JSESSIONID=x.r3"),
			get("/", "a=1, JSESSIONID=x.r2"),
			get("/"),
			get("/"),
		},
		Want: strings.Fields("r2 r1 r3 r1 r3 r3 r2 r1 r2 r1 r3 r2 r1 r2"),
	},
	{
		Name:     "sticky-url",
		About:    "§4.5 URL rows (path parameter, query, substring match, %-decoding of the path only), stickysession=JSESSIONID|jsessionid",
		Balancer: Balancer{StickySession: "JSESSIONID|jsessionid"},
		Members:  routed("r1", "r2", "r3"),
		Steps: []Step{
			get("/a;jsessionid=abc.r3"),
			get("/a;jsessionid=abc.r3;foo=bar"),
			get("/a?jsessionid=abc.r3"),
			get("/a?x=1&jsessionid=abc.r3&y=2"),
			get("/a?jsessionid=abc.r3;x"),
			get("/a?foo=xjsessionid=abc.r3"),
			get("/ajsessionid=abc.r3"),
			get("/a?jsessionid=abc%2Er3"),
			get("/a?jsessionid=&jsessionid=x.r3"),
			get("/a;jsessionid=abc.r2?jsessionid=abc.r3"),
			get("/a?jsessionid=x.r2", "JSESSIONID=x.r3"),
			get("/"),
		},
		// Not here: the §4.5 row "/a?jsessionid=" (balanced). httpd's
		// get_path_param goes on searching at path+1 after an occurrence
		// followed by "=" and the end of the string, i.e. past the string's
		// terminating NUL, so what it finds depends on stale memory after
		// the URL: in 1 run in 3 or so it found "jsessionid=abc.r3" of an
		// earlier request there and answered r3.
		// The path rows with %-escapes are in sticky-url-escaped.
		Want: strings.Fields("r3 r1 r3 r3 r2 r3 r3 r1 r3 r2 r2 r1"),
	},
	{
		Name: "sticky-url-escaped",
		About: "§4.5: the route is searched in the %-decoded path (%2E is '.', %3B is ';'); the member gets the " +
			"path as httpd re-encodes it",
		Balancer:  Balancer{StickySession: "JSESSIONID|jsessionid"},
		Members:   routed("r1", "r2", "r3"),
		Steps:     []Step{get("/a;jsessionid=abc%2Er3"), get("/a%3Bjsessionid=abc.r3"), get("/a%7Eb%41"), get("/a%20b")},
		Want:      strings.Fields("r3 r3 r1 r2"),
		KnownDiff: devPathCanon,
	},
	{
		Name:     "sticky-scolon",
		About:    "§4.5: scolonpathdelim=On ends a URL session value at ';'",
		Balancer: Balancer{StickySession: "JSESSIONID|jsessionid", SColonPathDelim: true},
		Members:  routed("r1", "r2", "r3"),
		Steps:    []Step{get("/a;jsessionid=abc.r3;foo=bar"), get("/a?jsessionid=abc.r3;x"), get("/"), get("/")},
		Want:     strings.Fields("r3 r3 r1 r2"),
	},
	{
		Name:     "sticky-sep-off",
		About:    "§4.5: stickysessionsep=Off, the whole cookie value is the route",
		Balancer: Balancer{StickySession: "ROUTEID", StickySessionSep: "Off"},
		Members:  routed("r1", "r2", "r3"),
		Steps:    []Step{get("/", "ROUTEID=r2"), get("/", "ROUTEID=x.r2"), get("/", "ROUTEID=r2"), get("/")},
		Want:     strings.Fields("r2 r1 r2 r3"),
	},
	{
		Name:     "sticky-sep-bang",
		About:    "§4.5: stickysessionsep=!",
		Balancer: Balancer{StickySession: "ROUTEID", StickySessionSep: "!"},
		Members:  routed("r1", "r2", "r3"),
		Steps:    []Step{get("/", "ROUTEID=x!r2"), get("/", "ROUTEID=x.r2"), get("/", "ROUTEID=x!r2"), get("/")},
		Want:     strings.Fields("r2 r1 r2 r3"),
	},

	// §4.6 state interactions.
	{
		Name:     "redirect-disabled",
		About:    "§4.6: r1 status=D redirect=r3, cookie .r1 goes to r3; requests without a route are balanced normally (§4.4)",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members:  []Member{{Name: "r1", Route: "r1", Status: "D", Redirect: "r3"}, {Name: "r2", Route: "r2"}, {Name: "r3", Route: "r3"}},
		Steps:    steps(gets(2, "/", "ROUTEID=.r1"), gets(3, "/"), gets(1, "/", "ROUTEID=.r1")),
		Want:     strings.Fields("r3 r3 r2 r2 r2 r3"),
	},
	{
		Name:     "drain-sticky",
		About:    "§4.6: r1 draining (N) still gets its own sticky requests, never balanced ones",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members:  []Member{{Name: "r1", Route: "r1", Status: "N"}, {Name: "r2", Route: "r2"}, {Name: "r3", Route: "r3"}},
		Steps:    steps(gets(3, "/"), gets(2, "/", "ROUTEID=.r1"), gets(3, "/")),
		Want:     strings.Fields("r2 r3 r2 r1 r1 r3 r2 r3"),
	},
	{
		Name: "nofailover-dead",
		About: "§4.6: nofailover=On, r2 dead: cookie .r2 gets 503 (first after a failed connect, then at once); " +
			"no route or an unknown route is balanced",
		Balancer: Balancer{StickySession: "ROUTEID", NoFailover: true},
		Members:  []Member{{Name: "r1", Route: "r1"}, {Name: "r2", Route: "r2", Dead: true}, {Name: "r3", Route: "r3"}},
		Steps: steps(gets(2, "/", "ROUTEID=.r2"), gets(3, "/"), gets(1, "/", "ROUTEID=.r9"),
			gets(1, "/", "ROUTEID=.r2"), gets(1, "/", "ROUTEID=.r1")),
		Want: strings.Fields("503 503 r1 r3 r1 r3 503 r1"),
	},
	{
		Name:     "failover-dead-sticky",
		About:    "§4.6: nofailover=Off, r2 dead: cookie .r2 fails over to another member",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members:  []Member{{Name: "r1", Route: "r1"}, {Name: "r2", Route: "r2", Dead: true}, {Name: "r3", Route: "r3"}},
		Steps:    steps(gets(3, "/", "ROUTEID=.r2"), gets(3, "/")),
		Want:     strings.Fields("r1 r3 r1 r3 r1 r3"),
	},
	{
		Name: "sticky-unusable-states",
		About: "§4.6: routes of S, D and C members are balanced; r4 with config status=E (error_time 0) is lifted " +
			"at first look and serves its route",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members: []Member{
			{Name: "r1", Route: "r1", Status: "S"}, {Name: "r2", Route: "r2", Status: "D"}, {Name: "r3", Route: "r3"},
			{Name: "r4", Route: "r4", Status: "E"}, {Name: "r5", Route: "r5", Status: "C"},
		},
		Steps: steps(gets(1, "/", "ROUTEID=.r1"), gets(1, "/", "ROUTEID=.r2"), gets(1, "/", "ROUTEID=.r5"),
			gets(1, "/", "ROUTEID=.r4"), gets(4, "/")),
		Want: strings.Fields("r3 r4 r3 r4 r3 r4 r3 r4"),
	},

	// §5.2, §5.3 other lbmethods.
	{
		Name:     "bybusyness-idle",
		About:    "§5.3: bybusyness with idle members behaves as byrequests",
		Balancer: Balancer{LBMethod: "bybusyness"},
		Members:  []Member{{Name: "b1"}, {Name: "b2"}, {Name: "b3"}},
		Steps:    gets(6, "/"),
		Want:     strings.Fields("b1 b2 b3 b1 b2 b3"),
	},
	{
		Name:     "bytraffic",
		About:    "§5.2: bytraffic, loadfactors 1 and 2, identical requests",
		Balancer: Balancer{LBMethod: "bytraffic"},
		Members:  []Member{{Name: "b1"}, {Name: "b2", LoadFactor: 2}},
		Steps:    gets(9, "/"),
		Want:     strings.Fields("b1 b2 b2 b1 b2 b2 b1 b2 b2"),
	},

	// §7.3 balancer-manager changes, POSTed to both managers (lbstatus
	// worked out with §5.1; the final manager state is compared too).
	{
		Name: "manager-disable-enable",
		About: "§7.3, §3.1 step 3: w_status_D disables b3, b1 and b2 share the load; re-enabling b3 requests a " +
			"reset that stays parked (lbstatus is not reset), so b3, which kept its score, wins at once",
		Members: []Member{{Name: "b1"}, {Name: "b2"}, {Name: "b3"}},
		Steps: steps(gets(2, "/"), one(mgr("w", "b3", "w_status_D", "1")), gets(2, "/"),
			one(mgr("w", "b3", "w_status_D", "0")), gets(4, "/")),
		Want: strings.Fields("b1 b2 b1 b2 b3 b1 b2 b3"),
	},
	{
		Name: "manager-loadfactor",
		About: "§7.3, §5.1: w_lf=3 sets b2's lbfactor and every member's lbstatus to its lbfactor (recalc_factors); " +
			"w_lf=0.5 is out of range and ignored",
		Members: []Member{{Name: "b1"}, {Name: "b2"}},
		Steps: steps(one(mgr("w", "b2", "w_lf", "3")), gets(4, "/"), one(mgr("w", "b1", "w_lf", "0.5")),
			gets(4, "/")),
		Want: strings.Fields("b2 b2 b1 b2 b2 b2 b1 b2"),
	},
	{
		Name:    "manager-single-member-lf",
		About:   "§5.1: the only member of a balancer is forced to loadfactor 1.00 whatever w_lf asks",
		Members: []Member{{Name: "b1"}},
		Steps:   steps(one(mgr("w", "b1", "w_lf", "5")), gets(2, "/")),
		Want:    strings.Fields("b1 b1"),
	},
	{
		Name: "manager-bmax-single",
		About: "§7.3: b_max does not mark maxattempts as set, so on a one-member balancer it changes nothing: " +
			"each request still makes one attempt on the dead member (elected 4, not 2+2×4)",
		Members: []Member{{Name: "d1", Dead: true}},
		Steps:   steps(gets(2, "/"), one(mgr("b_max", "3")), gets(2, "/")),
		Want:    strings.Fields("503 503 503 503"),
	},
	{
		Name: "manager-add-member",
		About: "§7.3: b_nwrkr adds b2 (disabled) into the growth slot; adding it again or a second member is a " +
			"400; once enabled b2 takes its share",
		Balancer: Balancer{Growth: 1},
		Members:  []Member{{Name: "b1"}, {Name: "b2", Added: true}, {Name: "b3", Added: true}},
		Steps: steps(gets(1, "/"), one(mgr("b_nwrkr", "b2", "b_wyes", "1")), gets(1, "/"),
			one(mgr("b_nwrkr", "b2", "b_wyes", "1")), one(mgr("b_nwrkr", "b3", "b_wyes", "1")),
			one(mgr("w", "b2", "w_status_D", "0")), gets(3, "/")),
		Want: strings.Fields("b1 b1 b1 b2 b1"),
	},
	{
		Name: "manager-lbm-then-add",
		About: "§7.3, §3.1 step 3: b_lbm=byrequests resets lbstatus at the next sync; a member added by a later " +
			"POST and then enabled competes from lbstatus 0 (its enabling reset stays parked)",
		Balancer: Balancer{LBMethod: "bybusyness", Growth: 1},
		Members:  []Member{{Name: "b1"}, {Name: "b2"}, {Name: "b3", Added: true}},
		Steps: steps(gets(3, "/"), one(mgr("b_lbm", "byrequests")), one(mgr("b_nwrkr", "b3", "b_wyes", "1")),
			gets(4, "/"), one(mgr("w", "b3", "w_status_D", "0")), gets(4, "/")),
		Want: strings.Fields("b1 b2 b1 b1 b2 b1 b2 b1 b2 b3 b1"),
	},
	{
		Name: "manager-lbm-with-add",
		About: "§7.3: b_lbm and b_nwrkr in one POST: httpd's member addition syncs the process's timestamp, so " +
			"the lbmethod's reset is never run and b1, b2 keep their lbstatus",
		Balancer:  Balancer{LBMethod: "bybusyness", Growth: 1},
		Members:   []Member{{Name: "b1"}, {Name: "b2"}, {Name: "b3", Added: true}},
		Steps:     steps(gets(3, "/"), one(mgr("b_lbm", "byrequests", "b_nwrkr", "b3", "b_wyes", "1")), gets(4, "/")),
		Want:      strings.Fields("b1 b2 b1 b2 b1 b2 b1"),
		KnownDiff: devResetWithAdd,
	},
	{
		Name: "manager-sticky",
		About: "§7.3, §4: b_ss=- turns sticky sessions off, b_ss=JSESSIONID|jsessionid on with other names; " +
			"b_sforce=1 (nofailover) makes the route of a dead member a 503",
		Balancer: Balancer{StickySession: "ROUTEID"},
		Members:  routed("r1", "r2", "r3"),
		Steps: []Step{
			get("/", "ROUTEID=.r3"),
			mgr("b_ss", "-"),
			get("/", "ROUTEID=.r3"),
			get("/", "ROUTEID=.r3"),
			mgr("b_ss", "JSESSIONID|jsessionid"),
			get("/?jsessionid=x.r3"),
			get("/", "ROUTEID=.r2"),
			down("r2"),
			mgr("b_sforce", "1"),
			get("/?jsessionid=x.r2"),
			get("/"),
		},
		Want: strings.Fields("r3 r1 r2 r3 r1 503 r1"),
	},
}

// routed returns members named and routed r1, r2, ...
func routed(names ...string) []Member {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{Name: n, Route: n}
	}
	return ms
}

// summaryLine is the suite's one-line result. TestConformance logs it;
// TestMain prints it to stdout (shown with -v, in local directory mode and
// when the package fails: `go test ./...` drops a passing package's output)
// and, when CONFORMANCE_SUMMARY names a file, writes it there, which is how
// CI shows it after `go test ./...`.
var summaryLine string

func TestMain(m *testing.M) {
	code := m.Run()
	if summaryLine != "" {
		fmt.Println(summaryLine)
		if path := os.Getenv("CONFORMANCE_SUMMARY"); path != "" {
			if err := os.WriteFile(path, []byte(summaryLine+"\n"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "conformance: writing CONFORMANCE_SUMMARY:", err)
			}
		}
	}
	os.Exit(code)
}

// versionRE finds the httpd version in `apache2 -v`.
var versionRE = regexp.MustCompile(`Apache/(\S+)`)

func TestConformance(t *testing.T) {
	testenv.NeedTool(t, "apache2", httpdtest.Binary())
	version, err := httpdtest.Version()
	if err != nil {
		t.Fatalf("%s -v: %v", httpdtest.Binary(), err)
	}
	t.Logf("httpd under test: %s", version)
	if m := versionRE.FindStringSubmatch(version); m != nil {
		version = m[1]
	}
	seed, n, err := randomSettings()
	if err != nil {
		t.Fatal(err)
	}

	all := append(append([]Scenario(nil), scenarios...), randomScenarios(seed, n)...)
	names := map[string]bool{}
	var verdicts []verdict
	start := time.Now()
	for i := range all {
		sc := &all[i]
		if names[sc.Name] {
			t.Fatalf("scenario name %q is used twice", sc.Name)
		}
		names[sc.Name] = true
		t.Run(sc.Name, func(t *testing.T) {
			verdicts = append(verdicts, runScenario(t, sc))
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "conformance against httpd %s (seed %d), %v:\n", version, seed, time.Since(start).Round(time.Millisecond))
	for _, v := range verdicts {
		if v.random && v.result == resultIdentical {
			continue
		}
		res := v.result
		if v.deviation != "" {
			res += " " + v.deviation
		}
		fmt.Fprintf(&b, "  %-34s %s\n", v.name, res)
	}
	summaryLine = summarize(verdicts, version, seed)
	b.WriteString(summaryLine)
	t.Log(b.String())
}

// summarize is the quotable line, e.g.
//
//	conformance: 224/224 scenarios identical to httpd 2.4.71 (24 worked examples, 200 random, seed 1; deviations: none)
func summarize(vs []verdict, version string, seed uint64) string {
	identical, examples, random, differing := 0, 0, 0, 0
	devs := map[string]int{}
	var devOrder []string
	for _, v := range vs {
		if v.random {
			random++
		} else {
			examples++
		}
		switch v.result {
		case resultIdentical:
			identical++
		case resultDeviation:
			if devs[v.deviation] == 0 {
				devOrder = append(devOrder, v.deviation)
			}
			devs[v.deviation]++
		default:
			differing++
		}
	}
	dev := "none"
	if len(devOrder) > 0 {
		parts := make([]string, len(devOrder))
		for i, id := range devOrder {
			parts[i] = fmt.Sprintf("%s ×%d", id, devs[id])
		}
		dev = strings.Join(parts, ", ")
	}
	line := fmt.Sprintf("conformance: %d/%d scenarios identical to httpd %s (%d worked examples, %d random, seed %d; deviations: %s",
		identical, len(vs), version, examples, random, seed, dev)
	if differing > 0 {
		line += fmt.Sprintf("; DIFFERING: %d", differing)
	}
	return line + ")"
}
