//go:build linux

package conformance

import "strings"

// Deviation is a known, named difference between caddy-balancer and httpd
// 2.4: deliberate, or a bug not fixed yet. Every one is reported in the
// suite's summary line by ID.
type Deviation struct {
	// ID names the deviation in reports and in the summary line.
	ID string
	// Reason is the diagnosis: what differs, where (file, function,
	// docs/behaviour.md section), httpd's behaviour and ours.
	Reason string
	// Applies, for generated scenarios, says whether the deviation explains
	// the difference found in sc: the scenario uses the feature concerned
	// and the difference looks as the deviation makes it look (sameAnswers:
	// every request got the same answer on both sides; diffs: the manager
	// state fields that differ). A generated scenario that differs is counted
	// under the first deviation that applies, else it fails. Hand-written
	// scenarios name their deviation in Scenario.KnownDiff instead.
	Applies func(sc *Scenario, sameAnswers bool, diffs []stateField) bool
}

// devRetriesReset: see Reason.
var devRetriesReset = &Deviation{
	ID: "retries-reset-on-reused-connection",
	Reason: "after a member's error state was lifted (retries+1), a successful request resets its retries " +
		"(and error_time) to 0 in caddy-balancer even when it went over a reused backend connection; httpd " +
		"resets them only in ap_proxy_connect_backend (proxy_util.c) when it opens a new connection: " +
		"mod_proxy_http's handler skips connect_backend when ap_proxy_check_connection finds the pooled " +
		"keep-alive connection alive (docs/behaviour.md §1.2 retries, §2.5 \"a successful TCP connect resets retries\"). " +
		"Ours: proxy.go memberTransport.RoundTrip calls Member.ConnectOK (balancer/balancer.go) after every " +
		"successful round trip. Visible when a member is put in error without losing its connection " +
		"(failonstatus) and later lifted: the manager shows retries N (and an error_time) on httpd, 0 on ours. " +
		"No effect on which member is chosen. Fix: call ConnectOK only when the round trip dialed a new " +
		"connection (httptrace GotConnInfo.Reused == false).",
	Applies: func(sc *Scenario, sameAnswers bool, diffs []stateField) bool {
		if len(sc.Balancer.FailOnStatus) == 0 || !sameAnswers {
			return false
		}
		for _, d := range diffs {
			if !strings.HasSuffix(d.what, " retries") {
				return false
			}
		}
		return true
	},
}

// devResetWithAdd: see Reason.
var devResetWithAdd = &Deviation{
	ID: "lbmethod-reset-lost-with-member-add",
	Reason: "a manager POST that switches the lbmethod (b_lbm) and adds a member (b_nwrkr, b_wyes=1) at once: " +
		"httpd never runs the new lbmethod's reset, caddy-balancer does. httpd (mod_proxy_balancer.c " +
		"balancer_process_balancer_worker) handles b_lbm by setting s->wupdated and s->need_reset, and then " +
		"the member addition sets \"bsel->wupdated = bsel->s->wupdated = now\" (\"sync all timestamps\"), so " +
		"the next ap_proxy_sync_balancer (proxy_util.c) of this process returns early (b->wupdated >= " +
		"b->s->wupdated) and need_reset stays parked until the next b_lbm (docs/behaviour.md §3.1 step 3, §7.3). In a " +
		"single-process httpd (-X, as here) the members keep their lbstatus; with several children another " +
		"child would apply the reset at its next sync. Ours: balancer/manage.go applyBalancerFormLocked " +
		"resets at once on b_lbm (as httpd does when the POST adds no member). Either keep ours (httpd's " +
		"result depends on which child serves next) or skip the reset when the same form adds a member.",
	Applies: func(sc *Scenario, sameAnswers bool, diffs []stateField) bool {
		for _, s := range sc.Steps {
			if s.Manager == nil {
				continue
			}
			p := s.Manager.Params
			if _, lbm := p["b_lbm"]; lbm && p["b_wyes"] == "1" && p["b_nwrkr"] != "" {
				return true
			}
		}
		return false
	},
}

// devPathCanon: see Reason.
var devPathCanon = &Deviation{
	ID: "forwarded-path-not-canonicalized",
	Reason: "the path a member receives: httpd forwards the %-decoded path re-encoded by its canon step " +
		"(mod_proxy_http proxy_http_canon → ap_proxy_canonenc, proxy_util.c, unless ProxyPass nocanon), so " +
		"escapes of characters that need none are sent decoded: /a%7Eb%41 → /a~bA, /a;jsessionid=abc%2Er3 → " +
		"/a;jsessionid=abc.r3, and /a%3Bjsessionid=x → /a;jsessionid=x (an escaped ';' becomes a path " +
		"parameter); %20 stays %20. caddy-balancer forwards the client's escaping unchanged (Caddy " +
		"reverse_proxy sends the request's EscapedPath; proxy.go memberTransport.RoundTrip rewrites the path " +
		"only for members with a path). Route extraction is not affected: both search the decoded path " +
		"(docs/behaviour.md §4.2). Not covered by docs/behaviour.md (§3.2 says which path, not how it is encoded). Either emulate " +
		"(set URL.RawPath to the canonenc encoding of URL.Path, keep the raw form for a nocanon option) or " +
		"document as deliberate: forwarding the client's escaping is the safer choice (%3B stays data).",
}

// deviations lists the known deviations; the suite passes with them and
// names each in its summary.
var deviations = []*Deviation{devRetriesReset, devResetWithAdd}

// matchDeviation returns the known deviation that explains a difference in a
// generated scenario, nil if none does.
func matchDeviation(sc *Scenario, sameAnswers bool, diffs []stateField) *Deviation {
	for _, d := range deviations {
		if d.Applies != nil && d.Applies(sc, sameAnswers, diffs) {
			return d
		}
	}
	return nil
}
