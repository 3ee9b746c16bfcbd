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
		series("caddy_balancer_member_busy", "metrics1", m1),
		series("caddy_balancer_member_bytes_to_total", "metrics1", m1),
		series("caddy_balancer_member_bytes_from_total", "metrics1", m1),
		series("caddy_balancer_member_usable", "metrics1", m2),
		series("caddy_balancer_member_status", "metrics1", m2, "flag", "H"),
		series("caddy_balancer_member_healthcheck_total", "metrics1", m1, "result", "pass"),
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
			now[series("caddy_balancer_member_bytes_to_total", "metrics1", m1)] > base[series("caddy_balancer_member_bytes_to_total", "metrics1", m1)] &&
			now[series("caddy_balancer_member_bytes_from_total", "metrics1", m1)] > base[series("caddy_balancer_member_bytes_from_total", "metrics1", m1)] &&
			now[series("caddy_balancer_member_healthcheck_total", "metrics1", m1, "result", "pass")] > base[series("caddy_balancer_member_healthcheck_total", "metrics1", m1, "result", "pass")] &&
			now[series("caddy_balancer_member_busy", "metrics1", m1)] == 0
	})
	// The checked member goes away: C shows in the metrics.
	bs[0].Close()
	hcWaitFor(t, 5*time.Second, "C flag and failed checks in the metrics", func() bool {
		now := scrapeMetrics(t, admin)
		return now[series("caddy_balancer_member_status", "metrics1", m1, "flag", "C")] == 1 &&
			now[series("caddy_balancer_member_usable", "metrics1", m1)] == 0 &&
			now[series("caddy_balancer_member_healthcheck_total", "metrics1", m1, "result", "fail")] >= 1
	})
}
