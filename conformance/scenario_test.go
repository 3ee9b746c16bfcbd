//go:build linux

package conformance

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scenario is one balancer configuration and what happens to it. It is run
// against httpd and against Caddy; the sequences of outcomes of its request
// steps must be equal.
type Scenario struct {
	// Name is unique in the suite and is also the balancer name
	// (balancer://NAME, mounted at /NAME on both servers), so that the
	// plugin's balancer state, which survives Caddy reloads by name, is fresh
	// for every scenario. Lower-case letters, digits and '-'.
	Name string
	// About says what is checked and where docs/behaviour.md describes it.
	About string

	Balancer Balancer
	Members  []Member
	Steps    []Step

	// Want, when set, is the sequence httpd must give: observed in docs/behaviour.md,
	// or worked out by hand from its rules. It checks the harness (and
	// docs/behaviour.md) against httpd, independently of Caddy.
	Want []string

	// KnownDiff, when set, names the deviation (deviations_test.go) by which
	// caddy-balancer is known to disagree with httpd here. The difference is
	// reported but does not fail the test; a scenario marked so that then
	// agrees fails, so that the mark is removed.
	KnownDiff *Deviation

	// Seed says where a generated scenario comes from ("seed 1, scenario
	// 57"); empty for the hand-written ones.
	Seed  string
	seed  uint64
	index int
}

// reproduce is the command that runs this generated scenario alone.
func (sc *Scenario) reproduce() string {
	return fmt.Sprintf("CONFORMANCE_SEED=%d CONFORMANCE_N=%d go test -v -run 'TestConformance/%s$' ./conformance/",
		sc.seed, sc.index, sc.Name)
}

// Balancer holds the balancer parameters (httpd's ProxySet keys, docs/behaviour.md §6.3).
// Zero values mean "not configured" (httpd's default).
type Balancer struct {
	LBMethod         string // byrequests, bytraffic, bybusyness
	StickySession    string // COOKIE or COOKIE|param
	StickySessionSep string // one character or "Off"
	SColonPathDelim  bool
	NoFailover       bool
	MaxAttempts      *int
	ForceRecovery    *bool
	Timeout          int   // seconds
	FailOnStatus     []int // status codes
	Growth           int   // free member slots for members added at run time
}

// Member is one BalancerMember (docs/behaviour.md §6.2) and its backend.
type Member struct {
	// Name identifies the backend: it answers with header X-Backend: Name.
	Name string
	// Dead: nothing listens on the member's port at the start of the run
	// (connections are refused). An Up step can start it later.
	Dead bool
	// Added: the member is not in the configuration; a manager step adds it
	// ({"b_nwrkr": Name, "b_wyes": "1"}, docs/behaviour.md §7.3), with default parameters
	// and status D. Its port is reserved from the start. The parameters
	// below do not apply to it.
	Added bool

	// Path follows host:port in the member's URL ("/app"): the member gets
	// it before the request's path (docs/behaviour.md §3.2).
	Path string

	LoadFactor float64 // 0: not configured (1)
	LBSet      int
	Route      string
	Redirect   string
	Status     string         // httpd status= syntax: "+H", "D", "-E+R", ...
	Retry      *time.Duration // whole seconds; nil: not configured (60 s)
}

// Step is one thing that happens during a run; exactly one field is set.
type Step struct {
	Request *Request
	Down    string        // member name: its listener closes, connections are refused
	Up      string        // member name: it starts answering again
	Sleep   time.Duration // wait, e.g. past a member's retry time
	Manager *ManagerChange
}

// Request is one client GET, on a new client connection (docs/behaviour.md §3.7 shows that
// client keep-alive changes httpd's error handling).
type Request struct {
	// Path below the balancer's mount point, sent verbatim (no escaping), with
	// an optional query: "/a;jsessionid=x.r1", "/a?jsessionid=x.r2".
	Path string
	// Cookie header lines, each sent as its own header line.
	Cookies []string
}

// ManagerChange is a balancer-manager update (docs/behaviour.md §7.3): the form
// parameters of one POST to /balancer-manager, e.g. {"w": "b1",
// "w_status_D": "1"} or {"b_lbm": "bybusyness", "b_max": "2"}. w names a
// member by Name (the harness sends its URL); b (the scenario's balancer) and
// nonce (scraped from the manager's XML on each side) are added by the
// harness. Both sides get the same POST with a same-host Referer.
type ManagerChange struct {
	Params map[string]string
}

// mgr is a manager step.
func mgr(kv ...string) Step {
	p := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return Step{Manager: &ManagerChange{Params: p}}
}

// Step constructors, for compact scenario tables.

func get(path string, cookies ...string) Step {
	return Step{Request: &Request{Path: path, Cookies: cookies}}
}

func gets(n int, path string, cookies ...string) []Step {
	out := make([]Step, n)
	for i := range out {
		out[i] = get(path, cookies...)
	}
	return out
}

func down(name string) Step      { return Step{Down: name} }
func up(name string) Step        { return Step{Up: name} }
func sleep(d time.Duration) Step { return Step{Sleep: d} }
func one(s Step) []Step          { return []Step{s} }
func intp(n int) *int            { return &n }
func boolp(b bool) *bool         { return &b }
func secs(n int) *time.Duration  { d := time.Duration(n) * time.Second; return &d }

func steps(parts ...[]Step) []Step {
	var out []Step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// check reports configuration mistakes in the scenario itself.
func (sc *Scenario) check() error {
	if !nameRE.MatchString(sc.Name) {
		return fmt.Errorf("scenario name %q: use lower-case letters, digits and '-'", sc.Name)
	}
	seen := map[string]bool{}
	for _, m := range sc.Members {
		if m.Name == "" || seen[m.Name] {
			return fmt.Errorf("member name %q empty or repeated", m.Name)
		}
		seen[m.Name] = true
		if m.Retry != nil && *m.Retry%time.Second != 0 {
			return fmt.Errorf("member %s: retry must be whole seconds (httpd)", m.Name)
		}
	}
	for i, s := range sc.Steps {
		n := 0
		if s.Request != nil {
			n++
		}
		if s.Down != "" {
			n++
			if !seen[s.Down] {
				return fmt.Errorf("step %d: unknown member %q", i+1, s.Down)
			}
		}
		if s.Up != "" {
			n++
			if !seen[s.Up] {
				return fmt.Errorf("step %d: unknown member %q", i+1, s.Up)
			}
		}
		if s.Sleep != 0 {
			n++
		}
		if s.Manager != nil {
			n++
			for _, k := range []string{"w", "b_nwrkr"} {
				if w, ok := s.Manager.Params[k]; ok && !seen[w] {
					return fmt.Errorf("step %d: manager change names unknown member %s=%q", i+1, k, w)
				}
			}
			for _, k := range []string{"b", "nonce"} {
				if _, ok := s.Manager.Params[k]; ok {
					return fmt.Errorf("step %d: manager change sets %q, which the harness adds", i+1, k)
				}
			}
		}
		if n != 1 {
			return fmt.Errorf("step %d: set exactly one of Request, Down, Up, Sleep, Manager", i+1)
		}
	}
	return nil
}

// String describes a step for reports.
func (s Step) String() string {
	switch {
	case s.Request != nil:
		out := "GET " + s.Request.Path
		for _, c := range s.Request.Cookies {
			out += "  [Cookie: " + c + "]"
		}
		return out
	case s.Down != "":
		return "down " + s.Down
	case s.Up != "":
		return "up " + s.Up
	case s.Sleep != 0:
		return "sleep " + s.Sleep.String()
	case s.Manager != nil:
		return "manager " + s.Manager.String()
	}
	return "?"
}

// String renders the change as its parameters, w first, the others sorted.
func (mc *ManagerChange) String() string {
	var keys []string
	for k := range mc.Params {
		if k != "w" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := mc.Params["w"]; ok {
		keys = append([]string{"w"}, keys...)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + mc.Params[k]
	}
	return strings.Join(parts, " ")
}

// describe renders the scenario for reports.
func (sc *Scenario) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s: %s\n", sc.Name, sc.About)
	var keys []string
	bl := sc.Balancer
	add := func(k, v string) { keys = append(keys, k+"="+v) }
	if bl.LBMethod != "" {
		add("lbmethod", bl.LBMethod)
	}
	if bl.StickySession != "" {
		add("stickysession", bl.StickySession)
	}
	if bl.StickySessionSep != "" {
		add("stickysessionsep", bl.StickySessionSep)
	}
	if bl.SColonPathDelim {
		add("scolonpathdelim", "On")
	}
	if bl.NoFailover {
		add("nofailover", "On")
	}
	if bl.MaxAttempts != nil {
		add("maxattempts", strconv.Itoa(*bl.MaxAttempts))
	}
	if bl.ForceRecovery != nil {
		add("forcerecovery", onOff(*bl.ForceRecovery))
	}
	if bl.Timeout != 0 {
		add("timeout", strconv.Itoa(bl.Timeout))
	}
	if len(bl.FailOnStatus) > 0 {
		add("failonstatus", joinInts(bl.FailOnStatus))
	}
	if bl.Growth != 0 {
		add("growth", strconv.Itoa(bl.Growth))
	}
	fmt.Fprintf(&b, "  balancer://%s %s\n", sc.Name, strings.Join(keys, " "))
	for _, m := range sc.Members {
		state := "alive"
		if m.Dead {
			state = "dead "
		}
		if m.Added {
			state += " (not configured: added by the manager)"
		}
		path := ""
		if m.Path != "" {
			path = "path=" + m.Path + " "
		}
		fmt.Fprintf(&b, "  member %-4s %s %s%s\n", m.Name, state, path, strings.Join(memberParams(m), " "))
	}
	for i, s := range sc.Steps {
		fmt.Fprintf(&b, "  step %2d: %s\n", i+1, s)
	}
	return b.String()
}

// memberParams renders a member's httpd BalancerMember parameters.
func memberParams(m Member) []string {
	var p []string
	if m.LoadFactor != 0 {
		p = append(p, "loadfactor="+strconv.FormatFloat(m.LoadFactor, 'f', -1, 64))
	}
	if m.LBSet != 0 {
		p = append(p, "lbset="+strconv.Itoa(m.LBSet))
	}
	if m.Route != "" {
		p = append(p, "route="+m.Route)
	}
	if m.Redirect != "" {
		p = append(p, "redirect="+m.Redirect)
	}
	if m.Status != "" {
		p = append(p, "status="+m.Status)
	}
	if m.Retry != nil {
		p = append(p, "retry="+strconv.Itoa(int(*m.Retry/time.Second)))
	}
	return p
}

func onOff(b bool) string {
	if b {
		return "On"
	}
	return "Off"
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
