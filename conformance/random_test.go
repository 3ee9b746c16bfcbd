//go:build linux

package conformance

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// Generated scenarios. Every scenario i of seed s is generated from its own
// random stream (PCG seeded with s and i), so it does not depend on the
// others and runs alone with -run:
//
//	CONFORMANCE_SEED=7 CONFORMANCE_N=500 go test ./conformance/
//	CONFORMANCE_SEED=7 go test -v -run 'TestConformance/rnd-7-123$' ./conformance/
//
// CONFORMANCE_SEED: a number, or "random" for one taken from the clock (it is
// printed); default 1. CONFORMANCE_N: how many scenarios; default 200.
//
// What is generated: 1–6 members with load factors (decimals included), lbsets
// 0–2, status flags (D S N I E H R C, so spares and standbys too), members
// whose port refuses connections, retry unset/0/60, some with a path in their
// URL; lbmethod byrequests, bybusyness or bytraffic; sticky sessions (cookie
// or URL parameter, three separators, scolonpathdelim) with known, unknown,
// shared and malformed routes and redirects; nofailover, maxattempts,
// forcerecovery, failonstatus (and requests answered 500 or 503); growth with
// up to two members the manager adds; and, between 10–30 requests, members
// going down and up and balancer-manager changes (status flags, load factor,
// lbset, route, redirect, lbmethod, maxattempts, nofailover, stickysession,
// member additions, alone or two in one POST).
//
// What keeps the outcome independent of timing:
//   - retry is 0 (a member in error is retried whenever it is looked at) or
//     60 s (never within a run), never a value that a run could straddle;
//     unset means 60 s. No sleeps, no balancer timeout.
//   - bybusyness: before each request the harness waits until the manager
//     shows no busy member (run_test.go), so a count still held by the previous
//     answer's cleanup cannot steer the choice.
//   - bytraffic chooses by bytes sent to and read from each member, and those
//     differ between the servers (each adds its own forwarding headers). It is
//     only generated where the choice cannot depend on the exact counts: every
//     request is the same GET with the same 1000-byte header (run_test.go), every
//     member answers the same number of bytes (names b1…b6 have one length),
//     and load factors are 1, 2 or 3. Then member w's traffic is
//     floor(n_w·T/L_w) + floor(n_w·R/L_w) with the same T ≥ 1000 and R for
//     everyone (L = load factor ×100), and since |n_a/L_a − n_b/L_b| is 0 or at
//     least 1/600, the order of two members' traffic is the order of n/L
//     whatever T and R are.

const (
	defaultSeed    = 1
	defaultRandomN = 200
)

// randomSettings reads CONFORMANCE_SEED and CONFORMANCE_N.
func randomSettings() (seed uint64, n int, err error) {
	seed, n = defaultSeed, defaultRandomN
	switch v := os.Getenv("CONFORMANCE_SEED"); v {
	case "":
	case "random":
		seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	default:
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("CONFORMANCE_SEED=%q: want a number or \"random\"", v)
		}
	}
	if v := os.Getenv("CONFORMANCE_N"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return 0, 0, fmt.Errorf("CONFORMANCE_N=%q: want a count", v)
		}
	}
	return seed, n, nil
}

// randomScenarios generates n scenarios from seed.
func randomScenarios(seed uint64, n int) []Scenario {
	out := make([]Scenario, n)
	for i := range out {
		out[i] = generate(seed, i+1)
	}
	return out
}

// stickyFlavour is how a generated balancer carries routes.
type stickyFlavour struct {
	config string // stickysession
	cookie string // cookie name
	param  string // URL parameter name
}

var stickyFlavours = []stickyFlavour{
	{"ROUTEID", "ROUTEID", "ROUTEID"},
	{"JSESSIONID|jsessionid", "JSESSIONID", "jsessionid"},
}

type generator struct {
	r *rand.Rand
	// traffic: the scenario may run bytraffic, so it keeps to what makes
	// bytraffic deterministic (see above).
	traffic bool
	sticky  *stickyFlavour
	sep     string // "", "Off" or "!"
	n       int    // configured members
	alive   []bool // per member, added ones too
	// addable: members not configured that the manager may add; added:
	// those it has added (or tried to).
	addable []int
	added   []int
	counts  map[string]int
	// retry0: members may have retry=0. httpd lifts E when apr_time_now() >
	// error_time + retry, in microseconds: with retry=0, whether a member
	// that has just failed is tried again by the same request's failover
	// (within a microsecond or two) depends on whether the clock ticked in
	// between, and in httpd it often has not. Across requests it always
	// has. So scenarios with retry=0 get maxattempts=0 (and no b_max), and
	// retry=0 is still exercised request after request.
	retry0 bool
}

func (g *generator) pct(p int) bool { return g.r.IntN(100) < p }

func (g *generator) pick(items ...string) string { return items[g.r.IntN(len(items))] }

// weighted picks an index by weight.
func (g *generator) weighted(w ...int) int {
	sum := 0
	for _, x := range w {
		sum += x
	}
	n := g.r.IntN(sum)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

func (g *generator) loadFactor() float64 {
	if g.traffic {
		return []float64{0, 0, 1, 2, 3}[g.r.IntN(5)]
	}
	return []float64{0, 0, 0, 1, 2, 3, 1.5, 2.25, 5, 10, 100}[g.r.IntN(11)]
}

func (g *generator) memberName(i int) string { return "b" + strconv.Itoa(i+1) }

// generate builds scenario index of seed.
func generate(seed uint64, index int) Scenario {
	g := &generator{r: rand.New(rand.NewPCG(seed, uint64(index))), counts: map[string]int{}}
	sc := Scenario{
		Name:  fmt.Sprintf("rnd-%d-%d", seed, index),
		Seed:  fmt.Sprintf("seed %d, scenario %d", seed, index),
		seed:  seed,
		index: index,
	}
	bl := &sc.Balancer
	switch g.weighted(40, 10, 30, 20) {
	case 1:
		bl.LBMethod = "byrequests"
	case 2:
		bl.LBMethod = "bybusyness"
	case 3:
		bl.LBMethod = "bytraffic"
	}
	g.traffic = bl.LBMethod == "bytraffic" || g.pct(8)
	if !g.traffic && g.pct(50) {
		g.sticky = &stickyFlavours[g.r.IntN(len(stickyFlavours))]
		bl.StickySession = g.sticky.config
		switch g.weighted(80, 10, 10) {
		case 1:
			g.sep = "Off"
		case 2:
			g.sep = "!"
		}
		bl.StickySessionSep = g.sep
		bl.SColonPathDelim = g.pct(15)
		bl.NoFailover = g.pct(35)
	}
	if g.pct(45) {
		bl.MaxAttempts = intp(g.r.IntN(7))
	}
	switch g.weighted(60, 15, 25) {
	case 1:
		bl.ForceRecovery = boolp(true)
	case 2:
		bl.ForceRecovery = boolp(false)
	}
	failing := !g.traffic && g.pct(15)
	if failing {
		bl.FailOnStatus = [][]int{{503}, {500, 503}}[g.r.IntN(2)]
	}

	// Members.
	g.n = 1 + g.r.IntN(6)
	g.retry0 = g.pct(35)
	for i := range g.n {
		m := Member{Name: g.memberName(i), LoadFactor: g.loadFactor(), Dead: g.pct(25)}
		if !g.traffic && g.pct(12) {
			m.Path = g.pick("/app", "/x/y", "/app/")
		}
		switch g.weighted(70, 20, 10) {
		case 1:
			m.LBSet = 1
		case 2:
			m.LBSet = 2
		}
		if g.sticky != nil || g.pct(20) {
			switch g.weighted(85, 8, 7) {
			case 0:
				m.Route = "r" + strconv.Itoa(i+1)
			case 1:
				if i > 0 {
					m.Route = "r" + strconv.Itoa(g.r.IntN(i)+1) // shared with an earlier member
				}
			}
		}
		if g.sticky != nil && g.pct(15) {
			m.Redirect = "r" + strconv.Itoa(g.r.IntN(g.n+1)+1) // sometimes a route nobody has
		}
		m.Status = g.status()
		switch {
		case g.retry0 && g.pct(50):
			m.Retry = secs(0)
		case g.pct(40):
			m.Retry = secs(60)
		}
		sc.Members = append(sc.Members, m)
		g.alive = append(g.alive, !m.Dead)
	}
	// Members the manager may add at run time (b_nwrkr): up to two, with
	// growth slots for some or all of them (adding beyond is a 400).
	if g.pct(20) {
		extra := 1 + g.r.IntN(2)
		bl.Growth = extra - g.r.IntN(2)
		if bl.Growth == 0 {
			bl.Growth = 1
		}
		for i := range extra {
			m := Member{Name: g.memberName(g.n + i), Added: true, Dead: g.pct(25)}
			if !g.traffic && g.pct(12) {
				m.Path = "/app"
			}
			sc.Members = append(sc.Members, m)
			g.alive = append(g.alive, !m.Dead)
			g.addable = append(g.addable, g.n+i)
		}
	}

	// Steps.
	requests := 10 + g.r.IntN(21)
	for range requests {
		for g.pct(18) {
			if s, ok := g.event(); ok {
				sc.Steps = append(sc.Steps, s)
			}
		}
		sc.Steps = append(sc.Steps, g.request(failing))
	}
	if g.retry0 {
		// No failover where a member has retry=0: see generator.retry0.
		bl.MaxAttempts = intp(0)
	}
	sc.About = g.about(&sc)
	return sc
}

// status is a member's configured status= value, often empty.
func (g *generator) status() string {
	var letters []byte
	for _, f := range []struct {
		letter byte
		p      int
	}{{'H', 12}, {'R', 12}, {'D', 8}, {'S', 5}, {'N', 8}, {'I', 6}, {'E', 8}, {'C', 3}} {
		if g.pct(f.p) {
			letters = append(letters, f.letter)
		}
	}
	g.r.Shuffle(len(letters), func(i, j int) { letters[i], letters[j] = letters[j], letters[i] })
	s := string(letters)
	if s != "" && g.pct(50) {
		s = "+" + s
	}
	if g.pct(5) {
		s += "-G" // clears a flag nobody set: no effect, checks the syntax
	}
	return s
}

// sessionValue is a session value that carries route, in the scenario's
// separator convention.
func (g *generator) sessionValue(route string) string {
	switch g.sep {
	case "Off":
		return route
	case "!":
		return "s" + strconv.Itoa(g.r.IntN(100)) + "!" + route
	}
	if g.pct(50) {
		return "." + route
	}
	return "s" + strconv.Itoa(g.r.IntN(100)) + "." + route
}

// request is one GET.
func (g *generator) request(failing bool) Step {
	if g.traffic {
		return get("/")
	}
	path := g.pick("/", "/a", "/a/b")
	if failing && g.pct(12) {
		path = "/status/" + g.pick("503", "500")
	} else if g.pct(3) {
		path = "/status/500"
	}
	if g.sticky == nil || g.pct(35) {
		return get(path)
	}
	var value string
	switch g.weighted(75, 15, 10) {
	case 0:
		value = g.sessionValue("r" + strconv.Itoa(g.r.IntN(g.n)+1))
	case 1:
		value = g.sessionValue("r9") // a route nobody has
	case 2:
		value = "nosep" // no separator: no route at all (or an unknown one with Off)
	}
	switch g.weighted(70, 15, 15) {
	case 1: // path parameter
		path += ";" + g.sticky.param + "=" + value
	case 2: // query parameter
		path += "?" + g.sticky.param + "=" + value
	default:
		return get(path, g.sticky.cookie+"="+value)
	}
	return get(path)
}

// event is a member going down or up or a manager change.
func (g *generator) event() (Step, bool) {
	switch g.weighted(30, 30, 40) {
	case 0:
		if i, ok := g.memberWhere(true); ok {
			g.alive[i] = false
			g.counts["down"]++
			return down(g.memberName(i)), true
		}
	case 1:
		if i, ok := g.memberWhere(false); ok {
			g.alive[i] = true
			g.counts["up"]++
			return up(g.memberName(i)), true
		}
	default:
		g.counts["manager"]++
		return Step{Manager: &ManagerChange{Params: g.managerChange()}}, true
	}
	return Step{}, false
}

// memberWhere picks a member that is alive (or not).
func (g *generator) memberWhere(alive bool) (int, bool) {
	var idx []int
	for i, a := range g.alive {
		if a == alive {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return 0, false
	}
	return idx[g.r.IntN(len(idx))], true
}

// managerChange is the parameters of one manager POST (docs/behaviour.md §7.3): one or two
// changes, worker or balancer fields.
func (g *generator) managerChange() map[string]string {
	p := map[string]string{}
	for k := 1 + g.weighted(80, 20); k > 0; k-- {
		g.addChange(p)
	}
	return p
}

func (g *generator) addChange(p map[string]string) {
	member := func() {
		i := g.r.IntN(g.n + len(g.added))
		if i >= g.n {
			i = g.added[i-g.n]
		}
		p["w"] = g.memberName(i)
	}
	if _, ok := p["w"]; ok {
		member = func() {}
	}
	routeValue := func() string {
		if g.pct(20) {
			return "" // clears it
		}
		return "r" + strconv.Itoa(g.r.IntN(g.n+1)+1)
	}
	if _, adding := p["b_nwrkr"]; !adding && len(g.addable) > 0 && g.pct(30) {
		// Add a member (it starts disabled), or re-add one: a 400.
		i := g.addable[0]
		if len(g.added) > 0 && g.pct(15) {
			i = g.added[0]
		} else {
			g.addable = g.addable[1:]
			g.added = append(g.added, i)
		}
		p["b_nwrkr"], p["b_wyes"] = g.memberName(i), "1"
		return
	}
	if len(g.added) > 0 && g.pct(30) {
		// Enable an added member.
		if _, ok := p["w"]; !ok {
			p["w"] = g.memberName(g.added[g.r.IntN(len(g.added))])
			p["w_status_D"] = "0"
			return
		}
	}
	switch g.weighted(50, 12, 8, 8, 10, 5, 5, 4) {
	case 0: // a status flag
		member()
		flag := "DSNHRIC"[g.weighted(25, 10, 15, 15, 15, 10, 10)]
		p["w_status_"+string(flag)] = g.pick("0", "1")
	case 1: // load factor (a value out of range is ignored by both)
		member()
		if g.pct(8) {
			p["w_lf"] = g.pick("0.5", "abc", "101")
		} else if lf := g.loadFactor(); lf != 0 {
			p["w_lf"] = strconv.FormatFloat(lf, 'f', -1, 64)
		} else {
			p["w_lf"] = "1"
		}
	case 2:
		member()
		p["w_ls"] = strconv.Itoa(g.r.IntN(3))
	case 3: // route or redirect
		member()
		if g.pct(50) {
			p["w_wr"] = routeValue()
		} else {
			p["w_rr"] = routeValue()
		}
	case 4:
		methods := []string{"byrequests", "bybusyness"}
		if g.traffic {
			methods = append(methods, "bytraffic")
		}
		p["b_lbm"] = methods[g.r.IntN(len(methods))]
	case 5:
		if g.retry0 {
			p["b_max"] = "0"
		} else {
			p["b_max"] = strconv.Itoa(g.r.IntN(6))
		}
	case 6:
		p["b_sforce"] = g.pick("0", "1")
	case 7:
		switch {
		case g.sticky != nil && g.pct(40):
			p["b_ss"] = "-" // no sticky sessions any more
		case g.pct(50):
			// Another cookie (and parameter) name: the one the requests use,
			// or the other one.
			p["b_ss"] = stickyFlavours[g.r.IntN(len(stickyFlavours))].config
		default:
			p["b_tmo"] = "0"
		}
	}
}

// about summarises a generated scenario.
func (g *generator) about(sc *Scenario) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d members", len(sc.Members)))
	m := sc.Balancer.LBMethod
	if m == "" {
		m = "byrequests (default)"
	}
	parts = append(parts, m)
	if g.sticky != nil {
		parts = append(parts, "sticky "+g.sticky.config)
	}
	if g.traffic {
		parts = append(parts, "identical requests (bytraffic-safe)")
	}
	if sc.Balancer.Growth > 0 {
		parts = append(parts, fmt.Sprintf("growth %d", sc.Balancer.Growth))
	}
	requests := 0
	for _, s := range sc.Steps {
		if s.Request != nil {
			requests++
		}
	}
	parts = append(parts, fmt.Sprintf("%d requests", requests))
	for _, k := range []string{"manager", "down", "up"} {
		if n := g.counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, map[string]string{"manager": "manager changes", "down": "downs", "up": "ups"}[k]))
		}
	}
	return "generated: " + strings.Join(parts, ", ")
}
