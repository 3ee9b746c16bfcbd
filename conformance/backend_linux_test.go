//go:build linux

package conformance

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A memberSocket is the loopback port of one balancer member, reserved for
// the whole scenario so that no other process can take it between the httpd
// run and the Caddy run: a TCP socket with SO_REUSEADDR bound to
// 127.0.0.1:port and never listening. While the member is down nothing else
// is there, so connections are refused (a "dead member", docs/behaviour.md §0). While it
// is up, an http.Server listens on the same port (Linux allows it because
// both sockets have SO_REUSEADDR and the reservation does not listen). Ports
// with a bound socket are skipped by the kernel when it picks ports for
// others (bind to port 0, outgoing connections).
type memberSocket struct {
	name string
	fd   int
	port int
	path string // the member URL's path (Member.Path)

	mu  sync.Mutex
	srv *http.Server // nil while down
	ln  net.Listener
}

// reserveMember reserves a free loopback port for the member called name.
func reserveMember(name string) (*memberSocket, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &memberSocket{name: name, fd: fd, port: sa.(*syscall.SockaddrInet4).Port}, nil
}

// URL is the member URL as both configs and both managers name it.
func (m *memberSocket) URL() string { return fmt.Sprintf("http://127.0.0.1:%d%s", m.port, m.path) }

// up starts listening and serving (no-op when already up).
func (m *memberSocket) up() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", m.port)) // Go sets SO_REUSEADDR
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(m.serve), ReadHeaderTimeout: 10 * time.Second}
	m.srv, m.ln = srv, ln
	go srv.Serve(ln)
	return nil
}

// down closes the listener and every connection (no-op when down). The
// listener is closed here, not only through srv.Close: right after up, Serve
// may not have taken the listener over yet, and would then close it later,
// when a following up may already want the port.
func (m *memberSocket) down() {
	m.mu.Lock()
	srv, ln := m.srv, m.ln
	m.srv, m.ln = nil, nil
	m.mu.Unlock()
	if srv != nil {
		ln.Close()
		srv.Close()
	}
}

// reset brings the member to its initial state for a new run: down, then a
// new server when alive.
func (m *memberSocket) reset(alive bool) error {
	m.down()
	if alive {
		return m.up()
	}
	return nil
}

// close releases the port.
func (m *memberSocket) close() {
	m.down()
	syscall.Close(m.fd)
}

// serve answers "<name> <METHOD> <URI> host=<Host>" with header X-Backend:
// <name>. A path containing /status/NNN makes it answer with status NNN.
func (m *memberSocket) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", m.name)
	w.Header().Set("Content-Type", "text/plain")
	status := http.StatusOK
	if _, rest, ok := strings.Cut(r.URL.Path, "/status/"); ok && len(rest) >= 3 {
		if n, err := strconv.Atoi(rest[:3]); err == nil && n >= 200 && n <= 599 {
			status = n
		}
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s %s %s host=%s\n", m.name, r.Method, r.RequestURI, r.Host)
}
