package hcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// Tests of the probe: the exact bytes httpd's checks send, and which answers
// pass (docs/behaviour.md §8.3).

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rawHCServer accepts connections, records the request head and answers with
// the given response.
func rawHCServer(t *testing.T, answer string) (addr string, heads <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					head.WriteString(line)
					if err != nil || line == "\r\n" {
						break
					}
				}
				ch <- head.String()
				fmt.Fprint(c, answer)
			}()
		}
	}()
	return l.Addr().String(), ch
}

func hcTask(addr, method, target string) balancer.HCTask {
	host, port, _ := net.SplitHostPort(addr)
	return balancer.HCTask{Check: balancer.HealthCheck{Method: method}, Scheme: "http",
		Hostname: host, Port: port, Dial: addr, Target: target}
}

// TestHCProbeRequests: the exact bytes of each probe (docs/behaviour.md §8.3).
func TestHCProbeRequests(t *testing.T) {
	addr, heads := rawHCServer(t, "HTTP/1.1 204 No Content\r\n\r\n")
	for _, c := range []struct{ method, target, want string }{
		{"OPTIONS", "/ignored", "OPTIONS * HTTP/1.0\r\nHost: " + addr + "\r\n\r\n"},
		{"OPTIONS11", "", "OPTIONS * HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
		{"HEAD", "/app//health", "HEAD /app//health HTTP/1.0\r\nHost: " + addr + "\r\n\r\n"},
		{"HEAD11", "/h", "HEAD /h HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
		{"GET", "health", "GET health HTTP/1.0\r\nHost: " + addr + "\r\n\r\n"},
		{"GET11", "/", "GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
	} {
		ok, why := Probe(context.Background(), hcTask(addr, c.method, c.target), nil)
		if !ok {
			t.Errorf("%s: failed: %s", c.method, why)
		}
		select {
		case h := <-heads:
			if h != c.want {
				t.Errorf("%s: sent %q, want %q", c.method, h, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing received", c.method)
		}
	}
	// TCP sends nothing.
	if ok, why := Probe(context.Background(), hcTask(addr, "TCP", ""), nil); !ok {
		t.Fatalf("TCP: %s", why)
	}
}

func TestHCProbeOutcomes(t *testing.T) {
	for _, c := range []struct {
		answer string
		method string
		expr   string
		pass   bool
	}{
		{"HTTP/1.0 200 OK\r\n\r\nbody", "GET", "", true},
		{"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n", "GET11", "", true},
		{"HTTP/1.1 399 Whatever\r\nContent-Length: 0\r\n\r\n", "HEAD", "", true},
		{"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n", "HEAD", "", false},
		{"HTTP/1.1 199 Odd\r\nContent-Length: 0\r\n\r\n", "HEAD", "", false},
		{"HTTP/1.1 503 Down\r\nContent-Length: 0\r\n\r\n", "OPTIONS", "", false},
		{"HTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n", "GET", "%{REQUEST_STATUS} =~ /^[234]/", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nUnder maintenance", "GET", "hc('body') !~ /maintenance/", false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "GET11", "%{HC_BODY} == 'ok'", true},
		{"HTTP/1.1 200 OK\r\nX-State: ready\r\nContent-Length: 0\r\n\r\n", "HEAD", "resp('x-state') == 'ready'", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "GET", "", false}, // body cut short
		{"SSH-2.0-OpenSSH\r\n", "GET", "", false},
		{"HTTP/2.0 200 OK\r\n\r\n", "GET", "", false},
	} {
		addr, _ := rawHCServer(t, c.answer)
		var expr balancer.HCExpr
		if c.expr != "" {
			var err error
			if expr, err = balancer.ParseHCExpr(c.expr); err != nil {
				t.Fatal(err)
			}
		}
		ok, why := Probe(context.Background(), hcTask(addr, c.method, "/"), expr)
		if ok != c.pass {
			t.Errorf("%s %q expr %q: pass=%v (%s), want %v", c.method, c.answer, c.expr, ok, why, c.pass)
		}
	}
	// Connection refused, and a member that never answers within its timeout.
	if ok, _ := Probe(context.Background(), hcTask(fmt.Sprintf("127.0.0.1:%d", freePort(t)), "TCP", ""), nil); ok {
		t.Error("TCP check of a closed port passed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	task := hcTask(l.Addr().String(), "GET", "/")
	task.Timeout = 200 * time.Millisecond
	start := time.Now()
	if ok, _ := Probe(context.Background(), task, nil); ok {
		t.Error("check of a silent member passed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent member check took %v with a 200ms timeout", d)
	}
}

// TestHCProbeTLS: https members are checked over TLS.
func TestHCProbeTLS(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Method + " " + r.RequestURI + " " + r.Proto)
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	task := hcTask(addr, "GET11", "/tls")
	task.Scheme = "https"
	if ok, why := Probe(context.Background(), task, nil); !ok {
		t.Fatalf("TLS check failed: %s", why)
	}
	if g, _ := got.Load().(string); g != "GET /tls HTTP/1.1" {
		t.Fatalf("server saw %q", g)
	}
}
