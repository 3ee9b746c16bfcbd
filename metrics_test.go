package caddybalancer

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeMetrics fetches the admin /metrics page and returns the value of every
// caddy_balancer_* series, keyed by its text `name{labels}`.
func scrapeMetrics(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_balancer_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func series(name, bal, member string, extra ...string) string {
	l := fmt.Sprintf(`balancer=%q`, bal)
	// Labels are sorted by name in the exposition: balancer, flag, member, result.
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] < "member" {
			l += fmt.Sprintf(`,%s=%q`, extra[i], extra[i+1])
		}
	}
	l += fmt.Sprintf(`,member=%q`, member)
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] > "member" {
			l += fmt.Sprintf(`,%s=%q`, extra[i], extra[i+1])
		}
	}
	return name + "{" + l + "}"
}

// TestMetricsScrape: the admin /metrics endpoint shows the balancer series,
// and they follow the requests, the traffic, the health checks and the flags.
func TestMetricsScrape(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"metrics1","members":[
		{"url":%q,"hcmethod":"TCP","hcinterval":"100ms"},{"url":%q,"status":"+H"}]}`, bs[0].URL, bs[1].URL), admin, ""))
	m1, m2 := bs[0].URL, bs[1].URL
	base := scrapeMetrics(t, admin)
	for _, s := range []string{
		series("caddy_balancer_member_elected_total", "metrics1", m1),
		series("caddy_balancer_member_requests_in_flight", "metrics1", m1),
		series("caddy_balancer_member_sent_bytes_total", "metrics1", m1),
		series("caddy_balancer_member_received_bytes_total", "metrics1", m1),
		series("caddy_balancer_member_usable", "metrics1", m2),
		series("caddy_balancer_member_status", "metrics1", m2, "flag", "H"),
		series("caddy_balancer_member_health_checks_total", "metrics1", m1, "result", "pass"),
	} {
		if _, ok := base[s]; !ok {
			t.Fatalf("series %s missing; have %d balancer series", s, len(base))
		}
	}
	if v := base[series("caddy_balancer_member_status", "metrics1", m2, "flag", "H")]; v != 1 {
		t.Fatalf("H flag of the standby = %v", v)
	}
	if v := base[series("caddy_balancer_member_status", "metrics1", m1, "flag", "H")]; v != 0 {
		t.Fatalf("H flag of m1 = %v", v)
	}
	for range 5 {
		if r := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port)); r.Backend != "b1" {
			t.Fatalf("answer from %q", r.Backend)
		}
	}
	hcWaitFor(t, 5*time.Second, "counters to move", func() bool {
		now := scrapeMetrics(t, admin)
		return now[series("caddy_balancer_member_elected_total", "metrics1", m1)]-base[series("caddy_balancer_member_elected_total", "metrics1", m1)] == 5 &&
			now[series("caddy_balancer_member_sent_bytes_total", "metrics1", m1)] > base[series("caddy_balancer_member_sent_bytes_total", "metrics1", m1)] &&
			now[series("caddy_balancer_member_received_bytes_total", "metrics1", m1)] > base[series("caddy_balancer_member_received_bytes_total", "metrics1", m1)] &&
			now[series("caddy_balancer_member_health_checks_total", "metrics1", m1, "result", "pass")] > base[series("caddy_balancer_member_health_checks_total", "metrics1", m1, "result", "pass")] &&
			now[series("caddy_balancer_member_requests_in_flight", "metrics1", m1)] == 0
	})
	// The checked member goes away: C shows in the metrics.
	bs[0].Close()
	hcWaitFor(t, 5*time.Second, "C flag and failed checks in the metrics", func() bool {
		now := scrapeMetrics(t, admin)
		return now[series("caddy_balancer_member_status", "metrics1", m1, "flag", "C")] == 1 &&
			now[series("caddy_balancer_member_usable", "metrics1", m1)] == 0 &&
			now[series("caddy_balancer_member_health_checks_total", "metrics1", m1, "result", "fail")] >= 1
	})
}

// TestMetricsLatencyAndOutcomes: the latency histograms and the outcome
// counters show what each member did: a member that sends its headers at
// once and its body 300 ms later, one that answers 503, one that does not
// answer within its timeout, and one that refuses connections. The old
// metric names are gone.
func TestMetricsLatencyAndOutcomes(t *testing.T) {
	bs := startBackends(t, 3)
	bs[0].SetHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		_, _ = w.Write([]byte("slow body"))
	})
	bs[1].SetHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	release := make(chan struct{})
	defer close(release)
	bs[2].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	dead := deadURL(t)
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	loadCaddy(t, hcConfig(port, fmt.Sprintf(`{"handler":"balancer","name":"metrics2","stickysession":"ROUTEID","members":[
		{"url":%q,"route":"r1"},{"url":%q,"route":"r2"},{"url":%q,"route":"r3","timeout":"200ms"},{"url":%q,"route":"r4"}]}`,
		bs[0].URL, bs[1].URL, bs[2].URL, dead), admin, ""))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for range 3 {
		if r := get(t, url, "Cookie: ROUTEID=.r1"); r.Status != 200 || r.Body != "slow body" {
			t.Fatalf("r1: %d %q", r.Status, r.Body)
		}
	}
	for range 2 {
		if r := get(t, url, "Cookie: ROUTEID=.r2"); r.Status != 503 || r.Backend != "b2" {
			t.Fatalf("r2: %d from %q", r.Status, r.Backend)
		}
	}
	if r := get(t, url, "Cookie: ROUTEID=.r3"); r.Status != 502 {
		t.Fatalf("r3 (timeout): %d", r.Status)
	}
	m1, m2, m3 := bs[0].URL, bs[1].URL, bs[2].URL
	attempts := func(m, outcome string) string {
		return series("caddy_balancer_member_attempts_total", "metrics2", m, "outcome", outcome)
	}
	bucket := func(name, m, le string) string {
		return fmt.Sprintf(`%s_bucket{balancer="metrics2",member=%q,le=%q}`, name, m, le)
	}
	const hdr, exch = "caddy_balancer_member_header_duration_seconds", "caddy_balancer_member_exchange_duration_seconds"
	var now map[string]float64
	hcWaitFor(t, 5*time.Second, "the three exchanges of r1 in the metrics", func() bool {
		now = scrapeMetrics(t, admin)
		return now[series(exch+"_count", "metrics2", m1)] == 3
	})
	for s, want := range map[string]float64{
		attempts(m1, "2xx"): 3, attempts(m1, "5xx"): 0,
		attempts(m2, "5xx"): 2, attempts(m2, "2xx"): 0,
		attempts(m3, "timeout"): 1, attempts(m3, "2xx"): 0,
		series(hdr+"_count", "metrics2", m1): 3,
		// headers at once, the body 300 ms later
		bucket(hdr, m1, "0.25"): 3, bucket(exch, m1, "0.25"): 0, bucket(exch, m1, "+Inf"): 3,
		series(hdr+"_count", "metrics2", m2):  2,
		series(exch+"_count", "metrics2", m2): 2,
		// no answer: no latency
		series(hdr+"_count", "metrics2", m3):   0,
		series(hdr+"_count", "metrics2", dead): 0,
	} {
		if got, ok := now[s]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, want)
		}
	}
	if s := now[series(exch+"_sum", "metrics2", m1)]; s < 0.9 {
		t.Errorf("r1's exchanges sum to %vs; each took at least 300 ms", s)
	}
	// The member that refuses connections (the request fails over to
	// another member, whichever byrequests picks).
	get(t, url, "Cookie: ROUTEID=.r4")
	hcWaitFor(t, 5*time.Second, "the refused connection in the metrics", func() bool {
		now = scrapeMetrics(t, admin)
		return now[attempts(dead, "connect_failure")] == 1
	})
	old := map[string]bool{"caddy_balancer_member_bytes_to_total": true, "caddy_balancer_member_bytes_from_total": true,
		"caddy_balancer_member_busy": true, "caddy_balancer_member_retries": true, "caddy_balancer_member_healthcheck_total": true}
	for s := range now {
		if name, _, _ := strings.Cut(s, "{"); old[name] {
			t.Errorf("old metric name still served: %s", s)
		}
	}
}
