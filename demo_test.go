package caddybalancer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemoLoopbackOnly runs testdata/demo.caddyfile (on free ports instead
// of its fixed ones) and checks what a person on another machine would see:
// nothing listens for them, neither the front end with its
// balancer-manager nor the backends; on loopback the demo answers and the
// manager is there.
func TestDemoLoopbackOnly(t *testing.T) {
	src, err := os.ReadFile("testdata/demo.caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{}
	text := string(src)
	for _, p := range []string{"2019", "8080", "9001", "9002", "9003", "9004", "9005", "9009"} {
		ports[p] = freePort(t)
		text = strings.ReplaceAll(text, ":"+p, fmt.Sprintf(":%d", ports[p]))
		text = strings.ReplaceAll(text, "http_port "+p, fmt.Sprintf("http_port %d", ports[p]))
	}
	loadCaddyfile(t, text)

	front := fmt.Sprintf("http://localhost:%d", ports["8080"])
	if r := get(t, front+"/"); r.Status != 200 {
		t.Fatalf("demo on loopback: %d", r.Status)
	}
	if r := get(t, front+"/balancer-manager"); r.Status != 200 || !strings.Contains(r.Body, "balancer://demo") {
		t.Fatalf("manager on loopback: %d", r.Status)
	}
	ip := nonLoopbackIP(t)
	if !ip.IsValid() {
		t.Skip("no non-loopback address on this machine to connect from")
	}
	for _, p := range []string{"8080", "9001", "9002", "9003", "9004", "9005"} {
		addr := net.JoinHostPort(ip.String(), fmt.Sprint(ports[p]))
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("the demo's port %s (here %s) accepts connections on %s: it must listen on loopback only", p, addr, ip)
		}
	}
}

// nonLoopbackIP returns an address of one of this machine's interfaces
// that is not loopback, or the zero Addr.
func nonLoopbackIP(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}
