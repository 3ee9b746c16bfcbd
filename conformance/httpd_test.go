//go:build linux

package conformance

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// apache2Binary and apache2Modules locate the httpd under test (Debian layout).
func apache2Binary() string {
	if p := os.Getenv("CONFORMANCE_APACHE2"); p != "" {
		return p
	}
	return "/usr/sbin/apache2"
}

func apache2Modules() string {
	if p := os.Getenv("CONFORMANCE_APACHE2_MODULES"); p != "" {
		return p
	}
	return "/usr/lib/apache2/modules"
}

// apache2Version returns the first line of `apache2 -v`.
func apache2Version() (string, error) {
	out, err := exec.Command(apache2Binary(), "-v").Output()
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// httpdModules are loaded in this order. log_config and unixd are compiled
// into Debian's apache2. mpm_event runs as a single process with -X, and
// balancer state lives in shared memory (slotmem_shm) anyway.
var httpdModules = []struct{ name, file string }{
	{"mpm_event_module", "mod_mpm_event.so"},
	{"authz_core_module", "mod_authz_core.so"},
	{"headers_module", "mod_headers.so"},
	{"slotmem_shm_module", "mod_slotmem_shm.so"},
	{"proxy_module", "mod_proxy.so"},
	{"proxy_http_module", "mod_proxy_http.so"},
	{"proxy_balancer_module", "mod_proxy_balancer.so"},
	{"lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"},
	{"lbmethod_bytraffic_module", "mod_lbmethod_bytraffic.so"},
	{"lbmethod_bybusyness_module", "mod_lbmethod_bybusyness.so"},
}

// httpdConfig renders a standalone apache2 config for the scenario, with all
// runtime files in dir and the server on 127.0.0.1:port.
func httpdConfig(sc *Scenario, members map[string]*memberSocket, dir string, port int) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# conformance scenario %s", sc.Name)
	p("ServerRoot %q", dir)
	p("ServerName 127.0.0.1")
	p("PidFile %q", filepath.Join(dir, "httpd.pid"))
	p("DefaultRuntimeDir %q", dir)
	p("ErrorLog %q", filepath.Join(dir, "error.log"))
	p("LogLevel warn")
	for _, m := range httpdModules {
		p("LoadModule %s %q", m.name, filepath.Join(apache2Modules(), m.file))
	}
	// As root httpd refuses to keep uid 0 and switches to User; as another
	// user it keeps its own identity.
	if os.Geteuid() == 0 {
		p("User #65534")
		p("Group #65534")
	} else {
		p("User #%d", os.Geteuid())
		p("Group #%d", os.Getegid())
	}
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

// httpd is one running apache2 -X.
type httpd struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	out    bytes.Buffer // stdout+stderr
}

// startHTTPD writes the config to dir, starts httpd in the foreground as a
// single process (-X) and waits until it answers.
func startHTTPD(sc *Scenario, members map[string]*memberSocket, dir string) (*httpd, error) {
	if err := os.Chmod(dir, 0o755); err != nil { // httpd may switch to nobody
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(conf, []byte(httpdConfig(sc, members, dir, port)), 0o644); err != nil {
		return nil, err
	}
	h := &httpd{dir: dir, port: port, exited: make(chan struct{})}
	h.cmd = exec.Command(apache2Binary(), "-f", conf, "-X")
	h.cmd.Dir = dir
	h.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = h.cmd.Wait(); close(h.exited) }()

	// Wait for the manager page: it changes no balancer state.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-h.exited:
			return nil, fmt.Errorf("apache2 exited at start: %s\n%s\n%s", h.cmd.ProcessState, h.out.String(), h.errorLog())
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
			h.stop()
			return nil, fmt.Errorf("apache2 did not answer on port %d: %v\n%s", port, err, h.errorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *httpd) base() string { return fmt.Sprintf("http://127.0.0.1:%d", h.port) }

// stop terminates httpd and waits for it to exit.
func (h *httpd) stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.exited
	}
}

func (h *httpd) errorLog() string   { return readFile(filepath.Join(h.dir, "error.log")) }
func (h *httpd) accessLog() string  { return readFile(filepath.Join(h.dir, "access.log")) }
func (h *httpd) configText() string { return readFile(filepath.Join(h.dir, "httpd.conf")) }

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
