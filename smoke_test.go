package caddybalancer

import (
	"fmt"
	"strings"
	"testing"
)

// TestJSONByrequestsWithDeadMember drives a balancer configured in JSON:
// loadfactors 1 and 3 and a dead member. httpd's byrequests gives the order of
// docs/behaviour.md §5.1 once the dead member is in error, and the request that met the
// dead member fails over to a live one.
func TestJSONByrequestsWithDeadMember(t *testing.T) {
	bs := startBackends(t, 2)
	port := freePort(t)
	loadCaddy(t, []byte(fmt.Sprintf(`{"apps":{"http":{"servers":{"front":{"listen":["127.0.0.1:%d"],
		"routes":[{"handle":[{"handler":"balancer","name":"smoke","members":[
		{"url":%q},{"url":%q,"loadfactor":3},{"url":%q}]}]}]}}}}}`, port, bs[0].URL, bs[1].URL, deadURL(t))))
	got := sequence(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 12)
	// lbstatus walk, (b1, b2, dead) with lbfactors (100, 300, 100), docs/behaviour.md §5.1:
	//  1 (100,300,100)→b2 (100,-200,100)   2 (200,100,200)→b1 (-300,100,200)
	//  3 (-200,400,300)→b2 (-200,-100,300) 4 (-100,200,400)→dead (…,-100): the
	//  connect fails, dead goes to E, and the failover runs the chooser over b1
	//  and b2 only: (0,500)→b2 (0,100). From there the two cycle from (0,100):
	//  (100,400)→b2, (200,300)→b2, (300,200)→b1, (0,500)→b2, ...
	want := "b2 b1 b2 b2 b2 b2 b1 b2 b2 b2 b1 b2"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}
