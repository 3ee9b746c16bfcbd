//go:build linux

package conformance

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lbset/caddy-balancer/internal/httpdtest"
)

// httpdConfig renders a standalone apache2 config for the scenario, with all
// runtime files in dir and the server on 127.0.0.1:port.
func httpdConfig(sc *Scenario, members map[string]*memberSocket, dir string, port int) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# conformance scenario %s", sc.Name)
	b.WriteString(httpdtest.Preamble(dir, httpdtest.BaseModules))
	p("Listen 127.0.0.1:%d", port)
	p("Timeout 10")
	p("KeepAlive Off")
	p(`LogFormat "%%r|%%s|%%{BALANCER_WORKER_NAME}e|%%{BALANCER_SESSION_ROUTE}e|%%{BALANCER_ROUTE_CHANGED}e" balancer`)
	p("CustomLog %q balancer", filepath.Join(dir, "access.log"))
	p("")
	p("<Proxy \"balancer://%s\">", sc.Name)
	for _, m := range sc.Members {
		if !m.Added {
			p("    BalancerMember %q %s", members[m.Name].URL(), strings.Join(memberParams(m), " "))
		}
	}
	if set := balancerParams(sc.Balancer); len(set) > 0 {
		p("    ProxySet %s", strings.Join(set, " "))
	}
	p("</Proxy>")
	p("ProxyPass \"/%s\" \"balancer://%s\"", sc.Name, sc.Name)
	p("")
	p("<Location \"/balancer-manager\">")
	p("    SetHandler balancer-manager")
	p("    Require all granted")
	p("</Location>")
	return b.String()
}

// balancerParams renders the balancer's ProxySet parameters.
func balancerParams(bl Balancer) []string {
	var p []string
	if bl.LBMethod != "" {
		p = append(p, "lbmethod="+bl.LBMethod)
	}
	if bl.StickySession != "" {
		p = append(p, "stickysession="+bl.StickySession)
	}
	if bl.StickySessionSep != "" {
		p = append(p, "stickysessionsep="+bl.StickySessionSep)
	}
	if bl.SColonPathDelim {
		p = append(p, "scolonpathdelim=On")
	}
	if bl.NoFailover {
		p = append(p, "nofailover=On")
	}
	if bl.MaxAttempts != nil {
		p = append(p, "maxattempts="+strconv.Itoa(*bl.MaxAttempts))
	}
	if bl.ForceRecovery != nil {
		p = append(p, "forcerecovery="+onOff(*bl.ForceRecovery))
	}
	if bl.Timeout != 0 {
		p = append(p, "timeout="+strconv.Itoa(bl.Timeout))
	}
	if len(bl.FailOnStatus) > 0 {
		p = append(p, "failonstatus="+joinInts(bl.FailOnStatus))
	}
	if bl.Growth != 0 {
		p = append(p, "growth="+strconv.Itoa(bl.Growth))
	}
	return p
}

// httpd is one running apache2 -X for a scenario.
type httpd struct {
	*httpdtest.Process
	port int
}

// startHTTPD writes the config to dir, starts httpd in the foreground as a
// single process (-X) and waits until it answers.
func startHTTPD(sc *Scenario, members map[string]*memberSocket, dir string) (*httpd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	proc, err := httpdtest.Start(dir, httpdConfig(sc, members, dir, port))
	if err != nil {
		return nil, err
	}
	h := &httpd{Process: proc, port: port}

	// Wait for the manager page: it changes no balancer state.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-h.Exited:
			return nil, fmt.Errorf("apache2 exited at start: %s\n%s\n%s", h.State(), h.Output(), h.errorLog())
		default:
		}
		// With a Referer: 2.4.71 logs AH10187 for a manager request without
		// one even when it has no parameters.
		req, _ := http.NewRequest(http.MethodGet, h.base()+"/balancer-manager", nil)
		req.Header.Set("Referer", managerReferer)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			h.Stop()
			return nil, fmt.Errorf("apache2 did not answer on port %d: %v\n%s", port, err, h.errorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *httpd) base() string { return fmt.Sprintf("http://127.0.0.1:%d", h.port) }

func (h *httpd) stop()              { h.Stop() }
func (h *httpd) errorLog() string   { return h.ErrorLog() }
func (h *httpd) accessLog() string  { return h.ReadFile("access.log") }
func (h *httpd) configText() string { return h.ReadFile("httpd.conf") }

func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// freePort returns a loopback port that nothing listens on right now (for
// the servers under test, which bind it themselves).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
