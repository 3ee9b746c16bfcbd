package caddybalancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/lbset/caddy-balancer/balancer"
)

// This file runs WebSocket (HTTP/1.1 Upgrade, 101 Switching Protocols)
// through a real Caddy with a balancer in front of real WebSocket backends,
// with a real WebSocket client (gorilla/websocket): the echo, the member's
// busy count and byte counters while the tunnel is open, sticky routing of
// the upgrade request, and failover of a refused connect before the upgrade.

// wsBackend is a WebSocket echo server on loopback: it accepts the upgrade
// with X-Backend: <name> in the 101 answer and echoes each message as
// "<name>:<message>".
func wsBackend(t *testing.T, name string) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {name}})
		if err != nil {
			return // Upgrade has answered the client
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte(name+":"), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// wsConfig is a Caddyfile with one balancer, name, on port.
func wsConfig(port int, name string, lines ...string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:%d {
	balancer %s {
		%s
	}
}`, port, name, strings.Join(lines, "\n\t\t"))
}

// wsDial opens a WebSocket through Caddy; it fails the test unless the
// client gets 101 from the backend want (its X-Backend).
func wsDial(t *testing.T, port int, want string, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws", port), header)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = fmt.Sprintf("%s, X-Backend %q", resp.Status, resp.Header.Get("X-Backend"))
		}
		t.Fatalf("WebSocket dial through balancer: %v (%s)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Backend") != want {
		t.Fatalf("upgrade answered %s by %q, want 101 by %s", resp.Status, resp.Header.Get("X-Backend"), want)
	}
	return c
}

// wsEcho sends msg and checks that backend echoes it.
func wsEcho(t *testing.T, c *websocket.Conn, backend, msg string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if want := backend + ":" + msg; string(got) != want {
		t.Fatalf("echo %.40q…, want %.40q…", got, want)
	}
}

// wsClose closes the socket the way a browser does: a close frame, then
// the connection.
func wsClose(c *websocket.Conn) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.Close()
}

// waitMember polls the member's state until ok holds, for at most five
// seconds: the tunnel's copies run in Caddy's goroutines.
func waitMember(t *testing.T, bal, url, what string, ok func(balancer.MemberState) bool) balancer.MemberState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := memberState(t, bal, url)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s: want %s; busy %d, transferred %d, read %d", url, what, s.Busy, s.Transfer, s.Read)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantBusy(n int64) func(balancer.MemberState) bool {
	return func(s balancer.MemberState) bool { return s.Busy == n }
}

// TestWebSocketEcho: a WebSocket through the balancer gets 101 and its echo;
// the member is busy while a socket is open (once per socket: closing one of
// two leaves it busy 1) and idle after; as in httpd 2.4, the bytes of the
// upgraded connection do not count into the member's transferred and read.
func TestWebSocketEcho(t *testing.T) {
	b1 := wsBackend(t, "b1")
	port := freePort(t)
	loadCaddyfile(t, wsConfig(port, "ws1", "balancer_member "+b1))

	c1 := wsDial(t, port, "b1", nil)
	if s := memberState(t, "ws1", b1); s.Busy != 1 {
		t.Fatalf("busy %d with one WebSocket open, want 1", s.Busy)
	}
	before := memberState(t, "ws1", b1)
	msg := strings.Repeat("x", 3000)
	wsEcho(t, c1, "b1", msg)
	echo := len("b1:") + len(msg)
	// The echo has crossed the member's connection both ways: counted bytes
	// would show by now.
	if s := memberState(t, "ws1", b1); s.Transfer != before.Transfer || s.Read != before.Read {
		t.Fatalf("a %d-byte message and its %d-byte echo changed transferred %d→%d, read %d→%d; httpd counts no tunnelled bytes",
			len(msg), echo, before.Transfer, s.Transfer, before.Read, s.Read)
	}
	if s := memberState(t, "ws1", b1); s.Busy != 1 {
		t.Fatalf("busy %d after the echo with the WebSocket open, want 1", s.Busy)
	}

	c2 := wsDial(t, port, "b1", nil)
	wsEcho(t, c2, "b1", "second")
	if s := memberState(t, "ws1", b1); s.Busy != 2 {
		t.Fatalf("busy %d with two WebSockets open, want 2", s.Busy)
	}
	wsClose(c1)
	waitMember(t, "ws1", b1, "busy 1 after one of two WebSockets closed", wantBusy(1))
	// Still 1 a little later: the closed socket released its count once.
	time.Sleep(50 * time.Millisecond)
	if s := memberState(t, "ws1", b1); s.Busy != 1 {
		t.Fatalf("busy %d with one WebSocket still open, want 1", s.Busy)
	}
	wsEcho(t, c2, "b1", "still open")
	wsClose(c2)
	waitMember(t, "ws1", b1, "busy 0 after both WebSockets closed", wantBusy(0))
}

// TestWebSocketSticky: the upgrade request is routed by its session cookie
// like any request: ROUTEID=.b2 lands on the member with route b2, every time.
func TestWebSocketSticky(t *testing.T) {
	urls := map[string]string{}
	for _, n := range []string{"b1", "b2", "b3"} {
		urls[n] = wsBackend(t, n)
	}
	port := freePort(t)
	loadCaddyfile(t, wsConfig(port, "ws2", "stickysession ROUTEID",
		"balancer_member "+urls["b1"]+" route=b1",
		"balancer_member "+urls["b2"]+" route=b2",
		"balancer_member "+urls["b3"]+" route=b3"))

	for i := range 3 {
		c := wsDial(t, port, "b2", http.Header{"Cookie": {"ROUTEID=.b2"}})
		wsEcho(t, c, "b2", fmt.Sprintf("sticky %d", i))
		for n, u := range urls {
			want := int64(0)
			if n == "b2" {
				want = 1
			}
			if s := memberState(t, "ws2", u); s.Busy != want {
				t.Fatalf("socket %d: member %s busy %d, want %d", i, n, s.Busy, want)
			}
		}
		wsClose(c)
		waitMember(t, "ws2", urls["b2"], "busy 0 after the WebSocket closed", wantBusy(0))
	}
}

// TestWebSocketFailover: the first member refuses the connection; the
// upgrade request fails over to the live member before anything was
// upgraded, and the client gets 101 and a working socket. The dead member is
// in error. As in httpd (mod_proxy_balancer decrements a worker's busy count
// when the request's pool is cleaned up), every member picked for the request
// holds its busy count until the request, here the tunnel, ends.
func TestWebSocketFailover(t *testing.T) {
	dead := deadURL(t)
	live := wsBackend(t, "live")
	port := freePort(t)
	loadCaddyfile(t, wsConfig(port, "ws3", "balancer_member "+dead, "balancer_member "+live))

	c := wsDial(t, port, "live", nil)
	wsEcho(t, c, "live", "after failover")
	if d := memberState(t, "ws3", dead); d.Status&balancer.InError == 0 {
		t.Fatalf("dead member: status %v, want in error", d.Status)
	}
	for _, u := range []string{dead, live} {
		if s := memberState(t, "ws3", u); s.Busy != 1 {
			t.Fatalf("member %s busy %d with the WebSocket open, want 1", u, s.Busy)
		}
	}
	wsClose(c)
	waitMember(t, "ws3", live, "busy 0 after the WebSocket closed", wantBusy(0))
	waitMember(t, "ws3", dead, "busy 0 after the WebSocket closed", wantBusy(0))
}

// TestUpgradeHalfClose: an Upgrade to another protocol than WebSocket, over
// raw connections. The client sends its bytes and half-closes its side; the
// member reads to the end, then answers. The answer reaches the client: the
// member's end of the tunnel keeps CloseWrite, so Caddy passes the
// half-close on instead of ending the tunnel. The tunnelled bytes do not
// count into the member's transferred and read (httpd's rule).
func TestUpgradeHalfClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "x-count" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-count\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		got, _ := io.ReadAll(brw) // to the client's half-close
		fmt.Fprintf(conn, "read %d bytes", len(got))
	}))
	t.Cleanup(srv.Close)
	port := freePort(t)
	loadCaddyfile(t, wsConfig(port, "up1", "balancer_member "+srv.URL))

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: x-count\r\nConnection: Upgrade\r\n\r\n", port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s, want 101", resp.Status)
	}
	before := memberState(t, "up1", srv.URL)
	if before.Busy != 1 {
		t.Fatalf("busy %d with the tunnel open, want 1", before.Busy)
	}
	payload := strings.Repeat("y", 5000)
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	want := fmt.Sprintf("read %d bytes", len(payload))
	if string(got) != want {
		t.Fatalf("after the half-close the client read %q (%v), want %q", got, err, want)
	}
	waitMember(t, "up1", srv.URL, "busy 0 after the tunnel ended", wantBusy(0))
	if s := memberState(t, "up1", srv.URL); s.Transfer != before.Transfer || s.Read != before.Read {
		t.Fatalf("the tunnel changed transferred %d→%d, read %d→%d; httpd counts no tunnelled bytes",
			before.Transfer, s.Transfer, before.Read, s.Read)
	}
}
