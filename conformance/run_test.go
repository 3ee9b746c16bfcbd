//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"io"
	"net/http"
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

// errNoManagerYet: manager steps are reserved for when both sides have one.
var errNoManagerYet = errors.New("manager steps are not supported yet")

// outcome is what the client saw for one request step.
type outcome struct {
	Got    string // member name ("b1"; "b1/503" when it answered non-200), else the status ("503")
	Detail string // what the member saw, or the error
}

// runSteps runs the scenario's steps against the server at base and returns
// one outcome per request step.
func runSteps(sc *Scenario, members map[string]*memberSocket, base string) ([]outcome, error) {
	var out []outcome
	for i, s := range sc.Steps {
		switch {
		case s.Request != nil:
			out = append(out, doRequest(base, "/"+sc.Name, s.Request))
		case s.Down != "":
			members[s.Down].down()
		case s.Up != "":
			if err := members[s.Up].up(); err != nil {
				return out, fmt.Errorf("step %d: %w", i+1, err)
			}
		case s.Sleep != 0:
			time.Sleep(s.Sleep)
		case s.Manager != nil:
			return out, fmt.Errorf("step %d: %w", i+1, errNoManagerYet)
		}
	}
	return out, nil
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
	return outcome{Got: got, Detail: fmt.Sprintf("%s (%v)", line, elapsed)}
}

// sideResult is one run of a scenario on one server.
type sideResult struct {
	outcomes []outcome
	state    string // httpd's manager state, for information
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
	res.outcomes, err = runSteps(sc, members, h.base())
	if err != nil {
		h.stop()
		t.Fatalf("httpd run: %v\n%s", err, h.errorLog())
	}
	if st, err := h.managerXML(); err != nil {
		res.state = fmt.Sprintf("httpd manager XML: %v\n", err)
	} else {
		res.state = st.format(sc, members)
	}
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
	res.outcomes, err = runSteps(sc, members, c.base())
	c.stop()
	if err != nil {
		t.Fatalf("caddy run: %v\n%s", err, c.log())
	}
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

// verdict is the result of one scenario, for the suite summary.
type verdict struct {
	name, result string
}

// runScenario runs sc on both sides and compares.
func runScenario(t *testing.T, sc *Scenario) verdict {
	if err := sc.check(); err != nil {
		t.Fatalf("bad scenario: %v", err)
	}
	members := map[string]*memberSocket{}
	for _, m := range sc.Members {
		ms, err := reserveMember(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		members[m.Name] = ms
		t.Cleanup(ms.close)
	}

	hres := runHTTPD(t, sc, members)
	cres := runCaddy(t, sc, members)
	for _, m := range members {
		m.down()
	}

	hseq, cseq := gots(hres.outcomes), gots(cres.outcomes)
	t.Logf("httpd: %s\ncaddy: %s\n%s", strings.Join(hseq, " "), strings.Join(cseq, " "), hres.state)

	if sc.Want != nil && strings.Join(sc.Want, " ") != strings.Join(hseq, " ") {
		t.Errorf("httpd does not give the sequence the spec observed (harness or spec problem)\nwant  %s\nhttpd %s\n%s",
			strings.Join(sc.Want, " "), strings.Join(hseq, " "), report(sc, hres, cres))
	}
	same := strings.Join(hseq, " ") == strings.Join(cseq, " ")
	switch {
	case same && sc.KnownDiff == "":
		return verdict{sc.Name, "match"}
	case same:
		t.Errorf("scenario is marked knownDiff but httpd and caddy now agree: remove the mark\n(knownDiff: %s)", sc.KnownDiff)
		return verdict{sc.Name, "match (stale knownDiff)"}
	case sc.KnownDiff != "":
		t.Logf("KNOWN DIFFERENCE: %s\n%s", sc.KnownDiff, report(sc, hres, cres))
		return verdict{sc.Name, "known difference"}
	default:
		t.Errorf("httpd and caddy disagree\n%s", report(sc, hres, cres))
		return verdict{sc.Name, "DIFFERS"}
	}
}

func gots(os []outcome) []string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.Got
	}
	return s
}

// report prints the scenario, both sequences side by side and the logs.
func report(sc *Scenario, h, c sideResult) string {
	var b strings.Builder
	b.WriteString(sc.describe())
	fmt.Fprintf(&b, "\n  %-4s %-52s %-10s %-10s\n", "#", "request", "httpd", "caddy")
	i := 0
	for n, s := range sc.Steps {
		if s.Request == nil {
			fmt.Fprintf(&b, "  %-4s (%s)\n", "", s)
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
		}
		fmt.Fprintf(&b, "  %-4d %-52s %-10s %-10s%s\n", n+1, s, ho.Got, co.Got, mark)
		i++
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
	b.WriteString("\n" + h.state + h.logs + c.logs)
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
