// Package conformance runs the same balancer scenarios against real Apache
// httpd 2.4 (mod_proxy_balancer) and against caddy-balancer, and compares
// what the clients and the balancer-manager see.
//
// A scenario (scenario_test.go) is a balancer configuration and a list of
// steps: requests, members going down or coming up, pauses, and
// balancer-manager changes. Each scenario is run twice on the same loopback
// ports: first in front of a freshly started httpd (/usr/sbin/apache2 -X with
// a minimal config written to a temp dir), then in front of a freshly loaded
// in-process Caddy whose admin endpoint serves our balancer-manager. Backends
// are real sockets in the test process (backend_linux_test.go); they are reset
// between the two runs. Compared, and the test fails, printing both sides
// side by side, when they differ:
//
//   - which member answered each request (or the status when none did);
//   - the status of the manager's answer to each manager step (200, or 400
//     when adding a member fails);
//   - the manager-visible state after the last step, from both managers'
//     ?xml=1 (manager_test.go): per member status, elected, lbstatus, busy
//     (0 once the answers have ended), retries, loadfactor, lbset, route and
//     redirect; per balancer lbmethod, maxattempts, stickysession,
//     nofailover, scolonpathdelim and timeout. Byte counts, error times and
//     nonces cannot match between two servers and are not compared.
//
// Manager steps POST httpd's form protocol (docs/behaviour.md §7.3) with a same-host
// Referer and the nonce scraped from the XML, to httpd's <Location
// /balancer-manager> and to /balancer-manager on Caddy's admin endpoint.
//
// The suite is the hand-written scenarios of conformance_test.go (docs/behaviour.md's
// worked examples, with the sequence httpd must give) plus generated ones
// (random_test.go, which explains what is generated and how timing is kept
// out of the results):
//
//	go test ./conformance/                          # 200 generated, seed 1
//	CONFORMANCE_SEED=7 CONFORMANCE_N=500 go test ./conformance/
//	CONFORMANCE_SEED=random go test ./conformance/  # the seed is printed
//	go test -v -run 'TestConformance/lf13$' ./conformance/
//	CONFORMANCE_SEED=7 CONFORMANCE_N=123 go test -v -run 'TestConformance/rnd-7-123$' ./conformance/
//
// A failing generated scenario prints its seed and the command that runs it
// alone. CONFORMANCE_REPORT=1 logs the full report (both sequences, both
// states, httpd's config and logs, the Caddy handler) for every scenario.
//
// Known differences are named deviations (deviations_test.go), each with its
// diagnosis: a hand-written scenario names its deviation in KnownDiff, a
// generated one is counted under a deviation whose Applies matches it. They
// do not fail the suite but are counted in its last line, e.g.
//
//	conformance: 224/224 scenarios identical to httpd 2.4.71 (24 worked examples, 200 random, seed 1; deviations: none)
//
// which TestConformance logs and TestMain prints, and writes to the file
// named by CONFORMANCE_SUMMARY (how CI shows it after go test ./...).
//
// The tests are Linux-only and skip when /usr/sbin/apache2 is not installed.
// Set CONFORMANCE_APACHE2 to use another httpd binary and
// CONFORMANCE_APACHE2_MODULES for its module directory.
package conformance
