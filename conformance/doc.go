// Package conformance runs the same balancer scenarios against real Apache
// httpd 2.4 (mod_proxy_balancer) and against caddy-balancer, and compares
// what the clients see.
//
// A scenario (see scenario_test.go) is a balancer configuration and a list of
// steps: requests, members going down or coming up, pauses. Each scenario is
// run twice on the same loopback ports: first in front of a freshly started
// httpd (/usr/sbin/apache2 with a minimal config written to a temp dir), then
// in front of a freshly loaded in-process Caddy. Backends are real sockets in
// the test process; they are reset between the two runs. For every request the
// harness records which member answered (or the status when none did) and the
// test fails, printing both sequences side by side, when httpd and Caddy
// disagree.
//
// The tests are Linux-only and skip when /usr/sbin/apache2 is not installed:
//
//	go test ./conformance/
//	go test -v -run 'TestConformance/lf13' ./conformance/
//
// Set CONFORMANCE_APACHE2 to use another httpd binary and
// CONFORMANCE_APACHE2_MODULES for its module directory.
package conformance
