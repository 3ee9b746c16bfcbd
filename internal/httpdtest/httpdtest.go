// Package httpdtest runs real Apache httpd 2.4 (Debian's apache2) for the
// tests that compare this plugin with it: the conformance suite, the
// root-package oracle tests and the httpd adapter's live tests. It writes the
// common part of a standalone configuration and starts and stops
// `apache2 -f CONF -X` (one process; balancer state is in shared memory
// anyway). Each caller adds its own directives and waits for readiness its own
// way.
package httpdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is the httpd under test: CONFORMANCE_APACHE2, else Debian's path. A
// test that needs it calls testenv.NeedTool(t, "apache2", Binary()), which
// skips the test on a machine without httpd and fails it in CI.
func Binary() string {
	if p := os.Getenv("CONFORMANCE_APACHE2"); p != "" {
		return p
	}
	return "/usr/sbin/apache2"
}

// ModulesDir holds httpd's modules: CONFORMANCE_APACHE2_MODULES, else Debian's.
func ModulesDir() string {
	if p := os.Getenv("CONFORMANCE_APACHE2_MODULES"); p != "" {
		return p
	}
	return "/usr/lib/apache2/modules"
}

// Version returns the first line of `apache2 -v`.
func Version() (string, error) {
	out, err := exec.Command(Binary(), "-v").Output()
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// Module is one LoadModule line: the module's name and its file.
type Module struct{ Name, File string }

// BaseModules are what a balancer needs, in load order (log_config and unixd
// are built into Debian's apache2).
var BaseModules = []Module{
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

// Preamble is the head of a standalone configuration with every runtime file
// in dir: ServerRoot, ServerName, PidFile, DefaultRuntimeDir, ErrorLog,
// LogLevel, the LoadModule lines, and User/Group (as root httpd refuses to
// keep uid 0 and switches to User; another user keeps its own identity).
func Preamble(dir string, modules []Module) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("ServerRoot %q", dir)
	p("ServerName 127.0.0.1")
	p("PidFile %q", filepath.Join(dir, "httpd.pid"))
	p("DefaultRuntimeDir %q", dir)
	p("ErrorLog %q", filepath.Join(dir, "error.log"))
	p("LogLevel warn")
	for _, m := range modules {
		p("LoadModule %s %q", m.Name, filepath.Join(ModulesDir(), m.File))
	}
	if os.Geteuid() == 0 {
		p("User #65534")
		p("Group #65534")
	} else {
		p("User #%d", os.Geteuid())
		p("Group #%d", os.Getegid())
	}
	return b.String()
}

// Process is one running `apache2 -f CONF -X`.
type Process struct {
	// Dir holds the configuration and httpd's runtime files.
	Dir string
	// Exited is closed when the process has exited.
	Exited chan struct{}

	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

// Start writes conf to Dir/httpd.conf and starts httpd in the foreground. dir
// is made world-readable: httpd may switch to nobody.
func Start(dir, conf string) (*Process, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p := &Process{Dir: dir, Exited: make(chan struct{})}
	p.cmd = exec.Command(Binary(), "-f", path, "-X")
	p.cmd.Dir = dir
	p.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.Exited) }()
	return p, nil
}

// Write collects httpd's stdout and stderr.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what httpd printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// State describes how the process exited ("" while it runs).
func (p *Process) State() string {
	select {
	case <-p.Exited:
		return p.cmd.ProcessState.String()
	default:
		return ""
	}
}

// ReadFile returns a file of Dir, or the error in parentheses.
func (p *Process) ReadFile(name string) string {
	b, err := os.ReadFile(filepath.Join(p.Dir, name))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// ErrorLog is httpd's error log so far.
func (p *Process) ErrorLog() string { return p.ReadFile("error.log") }

// Stop terminates httpd and waits for it to exit (SIGKILL to its process
// group after 10 s).
func (p *Process) Stop() {
	select {
	case <-p.Exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.Exited
	}
}
