//go:build linux

package conformance

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// scenarios is the suite. Sequences in Want are the spec's observations or
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
			get("/a;jsessionid=abc%2Er3"),
			get("/a%3Bjsessionid=abc.r3"),
			get("/a?jsessionid="),
			get("/a?jsessionid=&jsessionid=x.r3"),
			get("/a;jsessionid=abc.r2?jsessionid=abc.r3"),
			get("/a?jsessionid=x.r2", "JSESSIONID=x.r3"),
			get("/"),
		},
		Want: strings.Fields("r3 r1 r3 r3 r2 r3 r3 r1 r3 r3 r2 r3 r2 r2 r1"),
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
}

// routed returns members named and routed r1, r2, ...
func routed(names ...string) []Member {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{Name: n, Route: n}
	}
	return ms
}

func TestConformance(t *testing.T) {
	if _, err := os.Stat(apache2Binary()); err != nil {
		t.Skipf("httpd not installed (%v): install Debian's apache2 to run the conformance suite", err)
	}
	version, err := apache2Version()
	if err != nil {
		t.Fatalf("%s -v: %v", apache2Binary(), err)
	}
	t.Logf("httpd under test: %s", version)

	names := map[string]bool{}
	var verdicts []verdict
	for i := range scenarios {
		sc := &scenarios[i]
		if names[sc.Name] {
			t.Fatalf("scenario name %q is used twice", sc.Name)
		}
		names[sc.Name] = true
		t.Run(sc.Name, func(t *testing.T) {
			v := runScenario(t, sc)
			verdicts = append(verdicts, v)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "conformance against %s:\n", version)
	for _, v := range verdicts {
		fmt.Fprintf(&b, "  %-34s %s\n", v.name, v.result)
	}
	t.Log(b.String())
}
