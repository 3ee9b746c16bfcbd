// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, stopped at the end of the test, and can be
// killed and started again on the same port to test a lost store.
package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/internal/testenv"
)

// Binary is the redis-server executable (Debian's redis-server package).
var Binary = "redis-server"

// Server is a running redis-server.
type Server struct {
	t    testing.TB
	Addr string // 127.0.0.1:port
	dir  string
	cmd  *exec.Cmd
	log  *strings.Builder
}

// Start starts a redis-server. Where it is not installed the test is
// skipped, except in CI, where that fails (internal/testenv).
func Start(t testing.TB) *Server {
	t.Helper()
	testenv.NeedTool(t, "redis-server", Binary)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{t: t, Addr: addr, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.log = new(strings.Builder)
	s.cmd = exec.Command(Binary, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--protected-mode", "no")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer: %s", s.Addr, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would. Its data is
// lost: it runs without persistence.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port (empty, unless Kill was
// not called).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// String is the server's address.
func (s *Server) String() string { return fmt.Sprintf("redis-server on %s", s.Addr) }
