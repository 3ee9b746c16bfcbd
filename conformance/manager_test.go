//go:build linux

package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The balancer-manager on both sides: httpd's <Location /balancer-manager>
// with SetHandler balancer-manager, and our admin.api.balancer_manager on
// Caddy's admin endpoint. Both are driven the same way: GET ?xml=1 and POST
// of the form protocol (docs/behaviour.md §7.2, §7.3), with a same-host Referer (httpd
// drops every parameter without one, §7.2 step 3) and the balancer's nonce
// scraped from the XML (<httpd:nonce>, 2.4.68+, §7.4).

// managerReferer names the host both managers are addressed by (127.0.0.1,
// whatever the port: the Referer gate compares hosts only).
const managerReferer = "http://127.0.0.1/"

// managerState is the part of the balancer-manager XML (docs/behaviour.md §7.6) the
// harness reads.
type managerState struct {
	Balancers []managerBalancer `xml:"balancers>balancer"`
}

type managerBalancer struct {
	Name            string          `xml:"name"`
	Nonce           string          `xml:"nonce"`
	StickySession   *string         `xml:"stickysession"`
	NoFailover      *string         `xml:"nofailover"`
	Timeout         string          `xml:"timeout"`
	MaxAttempts     *int            `xml:"maxattempts"`
	LBMethod        string          `xml:"lbmethod"`
	SColonPathDelim *string         `xml:"scolonpathdelim"`
	Workers         []managerWorker `xml:"workers>worker"`
}

type managerWorker struct {
	Name        string `xml:"name"`
	LoadFactor  string `xml:"loadfactor"` // shown twice; the same value
	Status      string `xml:"status"`
	Retries     int    `xml:"retries"`
	LBStatus    int    `xml:"lbstatus"`
	Transferred int64  `xml:"transferred"`
	Read        int64  `xml:"read"`
	Elected     int    `xml:"elected"`
	Route       string `xml:"route"`
	Redirect    string `xml:"redirect"`
	Busy        int    `xml:"busy"`
	LBSet       int    `xml:"lbset"`
}

// managerXML fetches base/balancer-manager?xml=1 and returns the balancer
// called name (without "balancer://").
func managerXML(base, name string) (*managerBalancer, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/balancer-manager?xml=1", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Referer", managerReferer)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/xml") {
		return nil, fmt.Errorf("manager answered %s %q, not XML", resp.Status, ct)
	}
	var st managerState
	if err := xml.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("manager XML: %w\n%s", err, body)
	}
	for i := range st.Balancers {
		if st.Balancers[i].Name == "balancer://"+name {
			return &st.Balancers[i], nil
		}
	}
	return nil, fmt.Errorf("manager XML has no balancer://%s\n%s", name, body)
}

// settledState fetches the balancer's state once no member is busy any more:
// both servers release a member's busy count when the answer ends, which may
// be a moment after the client has read it (httpd: the request pool's
// cleanup). If a member is still busy after five seconds, it returns an error
// naming the busy members: a request that never ends is a failure, not a
// state to compare.
func settledState(base, name string) (*managerBalancer, error) {
	const patience = 5 * time.Second
	deadline := time.Now().Add(patience)
	for {
		st, err := managerXML(base, name)
		if err != nil {
			return nil, err
		}
		var busy []string
		for _, w := range st.Workers {
			if w.Busy != 0 {
				busy = append(busy, fmt.Sprintf("%s busy %d", w.Name, w.Busy))
			}
		}
		if len(busy) == 0 {
			return st, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("balancer://%s still has busy members %v after the answers ended: %s",
				name, patience, strings.Join(busy, ", "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// managerPost sends one manager change and returns the answer's status:
// 200, or 400 when adding a member failed (docs/behaviour.md §7.1, §7.3). The nonce is
// scraped from the XML first, as httpd-tests and Ansible's apache2_mod_proxy
// do.
func managerPost(base, name string, mc *ManagerChange, members map[string]*memberSocket) (int, error) {
	st, err := managerXML(base, name)
	if err != nil {
		return 0, err
	}
	if st.Nonce == "" {
		return 0, fmt.Errorf("manager XML of balancer://%s shows no nonce", name)
	}
	// b, w and nonce first, then the changes sorted: a stable body for
	// reports, far below the 1024 bytes httpd reads.
	enc := func(k, v string) string { return url.QueryEscape(k) + "=" + url.QueryEscape(v) }
	parts := []string{enc("b", name)}
	if w, ok := mc.Params["w"]; ok {
		if m := members[w]; m != nil {
			w = m.URL()
		}
		parts = append(parts, enc("w", w))
	}
	parts = append(parts, enc("nonce", st.Nonce))
	var keys []string
	for k := range mc.Params {
		if k != "w" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := mc.Params[k]
		if m := members[v]; k == "b_nwrkr" && m != nil {
			v = m.URL()
		}
		parts = append(parts, enc(k, v))
	}
	body := strings.Join(parts, "&")
	req, err := http.NewRequest(http.MethodPost, base+"/balancer-manager", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", managerReferer)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
		return 0, fmt.Errorf("manager POST %s: %s", body, resp.Status)
	}
	return resp.StatusCode, nil
}

// stateField is one compared value.
type stateField struct {
	what         string // "lbmethod", "b1 status", ...
	httpd, caddy string
}

// compareStates lists the manager-visible state of both sides, balancer
// parameters first, then per member. Compared: what a manager user reads as
// the balancer's behaviour. Not compared, by design:
//   - nonce: random per server start;
//   - transferred, read: the bytes of the forwarded request and of the
//     answer's status line differ between the servers (httpd adds
//     X-Forwarded-Server, Caddy X-Forwarded-Proto and Via-like headers ...);
//     bytraffic scenarios are built so that the choice does not depend on
//     the exact counts (random_test.go);
//   - error_time: the clock;
//   - scheme, hostname, port, min, smax, max, ttl, timeout, retry: static
//     member configuration and connection-pool settings, not balancer state
//     (the member's identity is compared through its name).
func compareStates(sc *Scenario, members map[string]*memberSocket, h, c *managerBalancer) []stateField {
	var out []stateField
	add := func(what, hv, cv string) { out = append(out, stateField{what, hv, cv}) }
	opt := func(p *string) string {
		if p == nil {
			return "(none)"
		}
		return *p
	}
	optInt := func(p *int) string {
		if p == nil {
			return "(none)"
		}
		return strconv.Itoa(*p)
	}
	add("lbmethod", h.LBMethod, c.LBMethod)
	add("maxattempts", optInt(h.MaxAttempts), optInt(c.MaxAttempts))
	add("stickysession", opt(h.StickySession), opt(c.StickySession))
	add("nofailover", opt(h.NoFailover), opt(c.NoFailover))
	add("scolonpathdelim", opt(h.SColonPathDelim), opt(c.SColonPathDelim))
	add("timeout", h.Timeout, c.Timeout)

	byURL := map[string]string{}
	for _, m := range sc.Members {
		byURL[members[m.Name].URL()] = m.Name
	}
	label := func(url string) string {
		if n := byURL[url]; n != "" {
			return n
		}
		return url
	}
	n := max(len(h.Workers), len(c.Workers))
	for i := range n {
		var hw, cw *managerWorker
		if i < len(h.Workers) {
			hw = &h.Workers[i]
		}
		if i < len(c.Workers) {
			cw = &c.Workers[i]
		}
		if hw == nil || cw == nil || hw.Name != cw.Name {
			hn, cn := "(none)", "(none)"
			if hw != nil {
				hn = label(hw.Name)
			}
			if cw != nil {
				cn = label(cw.Name)
			}
			add(fmt.Sprintf("member #%d", i+1), hn, cn)
			continue
		}
		name := label(hw.Name)
		add(name+" status", strconv.Quote(hw.Status), strconv.Quote(cw.Status))
		add(name+" elected", strconv.Itoa(hw.Elected), strconv.Itoa(cw.Elected))
		add(name+" lbstatus", strconv.Itoa(hw.LBStatus), strconv.Itoa(cw.LBStatus))
		add(name+" busy", strconv.Itoa(hw.Busy), strconv.Itoa(cw.Busy))
		add(name+" retries", strconv.Itoa(hw.Retries), strconv.Itoa(cw.Retries))
		add(name+" loadfactor", hw.LoadFactor, cw.LoadFactor)
		add(name+" lbset", strconv.Itoa(hw.LBSet), strconv.Itoa(cw.LBSet))
		add(name+" route", hw.Route, cw.Route)
		add(name+" redirect", hw.Redirect, cw.Redirect)
	}
	return out
}

// stateDiffs returns the fields that differ.
func stateDiffs(fs []stateField) []stateField {
	var out []stateField
	for _, f := range fs {
		if f.httpd != f.caddy {
			out = append(out, f)
		}
	}
	return out
}

// formatStates renders both final states as a per-member table.
func formatStates(sc *Scenario, members map[string]*memberSocket, h, c *managerBalancer) string {
	var b strings.Builder
	side := func(who string, st *managerBalancer) {
		if st == nil {
			fmt.Fprintf(&b, "%s final state: (unavailable)\n", who)
			return
		}
		byURL := map[string]string{}
		for _, m := range sc.Members {
			byURL[members[m.Name].URL()] = m.Name
		}
		ma := "unset"
		if st.MaxAttempts != nil {
			ma = strconv.Itoa(*st.MaxAttempts)
		}
		ss := "-"
		if st.StickySession != nil {
			ss = *st.StickySession
		}
		nf := "-"
		if st.NoFailover != nil {
			nf = *st.NoFailover
		}
		fmt.Fprintf(&b, "%s final state (lbmethod %s, maxattempts %s, stickysession %s, nofailover %s, timeout %s):\n",
			who, st.LBMethod, ma, ss, nf, st.Timeout)
		fmt.Fprintf(&b, "  %-6s %-24s %7s %8s %4s %7s %6s %3s %-5s %-5s %11s %6s\n",
			"member", "status", "elected", "lbstatus", "busy", "retries", "lf", "set", "route", "redir", "transferred", "read")
		for _, w := range st.Workers {
			name := byURL[w.Name]
			if name == "" {
				name = w.Name
			}
			fmt.Fprintf(&b, "  %-6s %-24q %7d %8d %4d %7d %6s %3d %-5s %-5s %11d %6d\n", name, w.Status, w.Elected,
				w.LBStatus, w.Busy, w.Retries, w.LoadFactor, w.LBSet, w.Route, w.Redirect, w.Transferred, w.Read)
		}
	}
	side("httpd", h)
	side("caddy", c)
	return b.String()
}
