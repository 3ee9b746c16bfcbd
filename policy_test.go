package caddybalancer

import (
	"fmt"
	"strings"
	"testing"
)

// TestLBPolicyByrequestsStandby: a plain reverse_proxy with lb_policy
// byrequests. b1 has loadfactor 3, b2 loadfactor 1, b3 is a hot standby. The
// byrequests walk over (300, 100): (300,100)→b1 (-100,100); (200,200)→b1 on the
// tie (-200,200); (100,300)→b2 (100,-100); (400,0)→b1 (0,0): b1 b1 b2 b1. The
// standby gets nothing while they are up; once both are gone (Caddy's passive
// health marks them down after the failed dials) it serves.
func TestLBPolicyByrequestsStandby(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
}
http://127.0.0.1:%d {
	reverse_proxy %s %s %s {
		lb_policy byrequests {
			balancer_member %s loadfactor=3
			balancer_member %s {
				status +H
			}
		}
		lb_retries 2
		fail_duration 30s
	}
}`, port, bs[0].URL, bs[1].URL, bs[2].URL, bs[0].URL, strings.TrimPrefix(bs[2].URL, "http://")))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if got, want := strings.Join(sequence(t, url, 8), " "), "b1 b1 b2 b1 b1 b1 b2 b1"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	bs[0].Close()
	bs[1].Close()
	if got, want := strings.Join(sequence(t, url, 3), " "), "b3 b3 b3"; got != want {
		t.Fatalf("with b1 and b2 down: got %s, want %s", got, want)
	}
}
