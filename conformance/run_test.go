//go:build linux

package conformance

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// client sends every request on a new connection and follows no redirects.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// padding is sent with every request as header X-Pad, the same on both
// sides: it makes each forwarded request longer than 600 bytes, so that
// bytraffic's choice depends only on how many identical requests each member
// served, not on the exact byte counts, which differ between the servers
// (random_test.go explains why).
var padding = strings.Repeat("p", 1000)

// outcome is what the client saw for one request step.
type outcome struct {
	Got    string // member name ("b1"; "b1/503" when it answered non-200), else the status ("503")
	Seen   string // the request line the member saw ("GET /a?x=1"), "" when none answered
	Detail string // what the member saw and the time taken, or the error
}

// target is one server under test.
type target struct {
	side    string // "httpd" or "caddy"
	front   string // base URL of the server that mounts the balancer at /NAME
	manager string // base URL of its balancer-manager
}

// runSteps runs the scenario's steps against tg and returns one outcome per
// request step and the status of the answer to each manager step.
func runSteps(sc *Scenario, members map[string]*memberSocket, tg target) (out []outcome, mgr []string, err error) {
	settle := sc.busyAware()
	for i, s := range sc.Steps {
		switch {
		case s.Request != nil:
			if settle {
				// bybusyness compares busy counts: let the previous answer's
				// count drop first, as it would between unhurried clients.
				if _, err := settledState(tg.manager, sc.Name); err != nil {
					return out, mgr, fmt.Errorf("step %d: %w", i+1, err)
				}
			}
			out = append(out, doRequest(tg.front, "/"+sc.Name, s.Request))
		case s.Down != "":
			members[s.Down].down()
		case s.Up != "":
			if err := members[s.Up].up(); err != nil {
				return out, mgr, fmt.Errorf("step %d: %w", i+1, err)
			}
		case s.Sleep != 0:
			time.Sleep(s.Sleep)
		case s.Manager != nil:
			status, err := managerPost(tg.manager, sc.Name, s.Manager, members)
			if err != nil {
				return out, mgr, fmt.Errorf("step %d (%s): %w", i+1, s, err)
			}
			mgr = append(mgr, strconv.Itoa(status))
		}
	}
	return out, mgr, nil
}

// busyAware reports whether the scenario may run bybusyness.
func (sc *Scenario) busyAware() bool {
	if sc.Balancer.LBMethod == "bybusyness" {
		return true
	}
	for _, s := range sc.Steps {
		if s.Manager != nil && s.Manager.Params["b_lbm"] == "bybusyness" {
			return true
		}
	}
	return false
}

// doRequest sends one GET of prefix+r.Path, verbatim.
func doRequest(base, prefix string, r *Request) outcome {
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		return outcome{Got: "error", Detail: err.Error()}
	}
	path, query, _ := strings.Cut(prefix+r.Path, "?")
	req.URL.Opaque, req.URL.RawQuery = path, query // sent as is, no re-escaping
	for _, c := range r.Cookies {
		req.Header.Add("Cookie", c)
	}
	req.Header.Set("X-Pad", padding)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{Got: "error", Detail: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	elapsed := time.Since(start).Round(time.Millisecond)
	name := resp.Header.Get("X-Backend")
	if name == "" {
		return outcome{Got: strconv.Itoa(resp.StatusCode), Detail: fmt.Sprintf("no member answered (%v)", elapsed)}
	}
	got := name
	if resp.StatusCode != http.StatusOK {
		got += "/" + strconv.Itoa(resp.StatusCode)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	_, seen, _ := strings.Cut(line, " ") // the member answers "NAME METHOD URI"
	return outcome{Got: got, Seen: seen, Detail: fmt.Sprintf("%s (%v)", line, elapsed)}
}

// sideResult is one run of a scenario on one server.
type sideResult struct {
	outcomes []outcome
	manager  []string         // status of each manager step's answer
	state    *managerBalancer // the manager's view after the last step
	stateErr error
	logs     string // what helps diagnose a difference
}

// runHTTPD runs the scenario against a fresh httpd.
func runHTTPD(t *testing.T, sc *Scenario, members map[string]*memberSocket) sideResult {
	t.Helper()
	resetMembers(t, sc, members)
	h, err := startHTTPD(sc, members, t.TempDir())
	if err != nil {
		t.Fatalf("starting httpd: %v", err)
	}
	defer h.stop()
	var res sideResult
	res.outcomes, res.manager, err = runSteps(sc, members, target{"httpd", h.base(), h.base()})
	if err != nil {
		h.stop()
		t.Fatalf("httpd run: %v\n%s%s", err, sc.describe(), h.errorLog())
	}
	res.state, res.stateErr = settledState(h.base(), sc.Name)
	h.stop()
	res.logs = "httpd.conf:\n" + indent(h.configText()) +
		"httpd access log (request|status|BALANCER_WORKER_NAME|BALANCER_SESSION_ROUTE|BALANCER_ROUTE_CHANGED):\n" + indent(h.accessLog()) +
		"httpd error log (last lines):\n" + indent(tail(h.errorLog(), 30, 300))
	return res
}

// runCaddy runs the scenario against a freshly loaded in-process Caddy.
func runCaddy(t *testing.T, sc *Scenario, members map[string]*memberSocket) sideResult {
	t.Helper()
	resetMembers(t, sc, members)
	c, err := startCaddy(sc, members, t.TempDir())
	if err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	defer c.stop()
	var res sideResult
	res.outcomes, res.manager, err = runSteps(sc, members, target{"caddy", c.base(), c.managerBase()})
	if err != nil {
		c.stop()
		t.Fatalf("caddy run: %v\n%s%s", err, sc.describe(), c.log())
	}
	res.state, res.stateErr = settledState(c.managerBase(), sc.Name)
	c.stop()
	res.logs = "caddy balancer handler:\n" + indent(string(c.handler)) + "caddy log (last lines):\n" + indent(tail(c.log(), 20, 400))
	return res
}

// resetMembers gives every backend its initial state: alive members listen
// with an empty log, dead ones refuse connections.
func resetMembers(t *testing.T, sc *Scenario, members map[string]*memberSocket) {
	t.Helper()
	for _, m := range sc.Members {
		if err := members[m.Name].reset(!m.Dead); err != nil {
			t.Fatal(err)
		}
	}
}

// Verdicts of one scenario, for the suite summary.
const (
	resultIdentical = "identical"
	resultDeviation = "known deviation"
	resultStale     = "identical (stale KnownDiff)"
	resultDiffers   = "DIFFERS"
)

// verdict is the result of one scenario.
type verdict struct {
	name, result string
	random       bool
	deviation    string // the deviation's ID when result is resultDeviation
}

// runScenario runs sc on both sides and compares the answers of every
// request and the manager-visible state at the end.
func runScenario(t *testing.T, sc *Scenario) verdict {
	if err := sc.check(); err != nil {
		t.Fatalf("bad scenario: %v\n%s", err, sc.describe())
	}
	members := map[string]*memberSocket{}
	for _, m := range sc.Members {
		ms, err := reserveMember(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		ms.path = m.Path
		members[m.Name] = ms
		t.Cleanup(ms.close)
	}

	hres := runHTTPD(t, sc, members)
	cres := runCaddy(t, sc, members)
	for _, m := range members {
		m.down()
	}

	hseq, cseq := gots(hres.outcomes), gots(cres.outcomes)
	// No final state is a failure of the run, never a difference (which a
	// KnownDiff could excuse).
	if hres.stateErr != nil {
		t.Fatalf("httpd manager state: %v\n%s%s", hres.stateErr, sc.describe(), hres.logs)
	}
	if cres.stateErr != nil {
		t.Fatalf("caddy manager state: %v\n%s%s", cres.stateErr, sc.describe(), cres.logs)
	}
	diffs := stateDiffs(compareStates(sc, members, hres.state, cres.state))
	mgrs := ""
	if len(hres.manager) > 0 {
		mgrs = fmt.Sprintf("manager answers: httpd %s, caddy %s\n", strings.Join(hres.manager, " "), strings.Join(cres.manager, " "))
	}
	t.Logf("%s\nhttpd: %s\ncaddy: %s\n%s%s", sc.About, strings.Join(hseq, " "), strings.Join(cseq, " "), mgrs,
		formatStates(sc, members, hres.state, cres.state))

	if sc.Want != nil && strings.Join(sc.Want, " ") != strings.Join(hseq, " ") {
		t.Errorf("httpd does not give the sequence docs/behaviour.md observed (harness or spec problem)\nwant  %s\nhttpd %s\n%s",
			strings.Join(sc.Want, " "), strings.Join(hseq, " "), report(sc, members, hres, cres, diffs))
	}
	sameAnswers := strings.Join(hseq, " ") == strings.Join(cseq, " ") &&
		strings.Join(hres.manager, " ") == strings.Join(cres.manager, " ") &&
		strings.Join(seens(hres.outcomes), "\n") == strings.Join(seens(cres.outcomes), "\n")
	same := sameAnswers && len(diffs) == 0
	v := verdict{name: sc.Name, random: sc.Seed != ""}
	dev := sc.KnownDiff
	if dev == nil && !same && v.random {
		dev = matchDeviation(sc, sameAnswers, diffs)
	}
	if os.Getenv("CONFORMANCE_REPORT") != "" {
		t.Logf("report:\n%s", report(sc, members, hres, cres, diffs))
	}
	switch {
	case same && sc.KnownDiff == nil:
		v.result = resultIdentical
	case same:
		t.Errorf("scenario is marked with deviation %s but httpd and caddy now agree: remove the mark", sc.KnownDiff.ID)
		v.result = resultStale
	case dev != nil:
		t.Logf("KNOWN DEVIATION %s: %s\n%s", dev.ID, dev.Reason, report(sc, members, hres, cres, diffs))
		v.result, v.deviation = resultDeviation, dev.ID
	default:
		t.Errorf("httpd and caddy disagree\n%s", report(sc, members, hres, cres, diffs))
		v.result = resultDiffers
	}
	return v
}

// seens lists the request lines the members saw.
func seens(os []outcome) []string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.Seen
	}
	return s
}

func gots(os []outcome) []string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.Got
	}
	return s
}

// report prints the scenario, both sequences side by side, the state
// differences and both final states, and the logs.
func report(sc *Scenario, members map[string]*memberSocket, h, c sideResult, diffs []stateField) string {
	var b strings.Builder
	if sc.Seed != "" {
		fmt.Fprintf(&b, "random scenario, %s; reproduce with\n  %s\n", sc.Seed, sc.reproduce())
	}
	b.WriteString(sc.describe())
	fmt.Fprintf(&b, "\n  %-4s %-60s %-10s %-10s\n", "#", "request", "httpd", "caddy")
	i, k := 0, 0
	for n, s := range sc.Steps {
		if s.Manager != nil {
			var hm, cm string
			if k < len(h.manager) {
				hm = h.manager[k]
			}
			if k < len(c.manager) {
				cm = c.manager[k]
			}
			k++
			mark := ""
			if hm != cm {
				mark = "   <<<"
			}
			fmt.Fprintf(&b, "  %-4d %-60s %-10s %-10s%s\n", n+1, "("+s.String()+")", hm, cm, mark)
			continue
		}
		if s.Request == nil {
			fmt.Fprintf(&b, "  %-4d (%s)\n", n+1, s)
			continue
		}
		var ho, co outcome
		if i < len(h.outcomes) {
			ho = h.outcomes[i]
		}
		if i < len(c.outcomes) {
			co = c.outcomes[i]
		}
		mark := ""
		if ho.Got != co.Got {
			mark = "   <<<"
		} else if ho.Seen != co.Seen {
			mark = fmt.Sprintf("   <<< the member saw %q | %q", ho.Seen, co.Seen)
		}
		fmt.Fprintf(&b, "  %-4d %-60s %-10s %-10s%s\n", n+1, s, ho.Got, co.Got, mark)
		i++
	}
	if len(diffs) > 0 {
		b.WriteString("\nmanager state differences (httpd | caddy):\n")
		for _, d := range diffs {
			fmt.Fprintf(&b, "  %-20s %s | %s\n", d.what, d.httpd, d.caddy)
		}
	}
	b.WriteString("\nper request, what the member saw (httpd | caddy):\n")
	for k := range max(len(h.outcomes), len(c.outcomes)) {
		var hd, cd string
		if k < len(h.outcomes) {
			hd = h.outcomes[k].Detail
		}
		if k < len(c.outcomes) {
			cd = c.outcomes[k].Detail
		}
		fmt.Fprintf(&b, "  %2d  %s | %s\n", k+1, hd, cd)
	}
	b.WriteString("\n" + formatStates(sc, members, h.state, c.state) + h.logs + c.logs)
	return b.String()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (empty)\n"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// tail returns the last n lines of s, each cut to width bytes.
func tail(s string, n, width int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	for i, l := range lines {
		if len(l) > width {
			lines[i] = l[:width] + " ..."
		}
	}
	return strings.Join(lines, "\n")
}
