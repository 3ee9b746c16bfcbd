// Package caddybin builds this repository's Caddy (cmd/caddy: the standard
// modules and the plugin) once per test binary, for tests that run Caddy
// as separate processes (a fleet of nodes, the command line), and starts
// such processes.
package caddybin

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	once    sync.Once
	binPath string
	binErr  error
)

// Path returns the path of the built caddy binary, building it on first use
// into a temporary directory that Cleanup removes (call it from TestMain).
func Path(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "caddy-balancer-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/caddy")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Cleanup removes the built binary, if any.
func Cleanup() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// Process is a Caddy process running a Caddyfile.
type Process struct {
	t      testing.TB
	Name   string
	Dir    string // its data and config directories, and the Caddyfile
	Admin  string // host:port of its admin endpoint
	config string
	env    []string
	cmd    *exec.Cmd
	out    *bytes.Buffer
	mu     sync.Mutex
}

// Start runs caddy with the Caddyfile text in a directory of its own (its
// XDG data and config directories are there too, so nodes do not share
// Caddy's instance ID or storage unless the Caddyfile says so). admin is
// the admin address the Caddyfile sets; Start returns once it answers.
func Start(t testing.TB, name, caddyfile, admin string, env ...string) *Process {
	t.Helper()
	p := &Process{t: t, Name: name, Dir: t.TempDir(), Admin: admin, env: env}
	p.config = filepath.Join(p.Dir, "Caddyfile")
	if err := os.WriteFile(p.config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(p.Kill)
	return p
}

func (p *Process) start() {
	p.t.Helper()
	bin := Path(p.t)
	p.mu.Lock()
	p.out = new(bytes.Buffer)
	p.cmd = exec.Command(bin, "run", "--config", p.config, "--adapter", "caddyfile")
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(p.Dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(p.Dir, "config"))
	p.cmd.Env = append(p.cmd.Env, p.env...)
	p.cmd.Stdout, p.cmd.Stderr = &lockedWriter{p: p}, &lockedWriter{p: p}
	err := p.cmd.Start()
	p.mu.Unlock()
	if err != nil {
		p.t.Fatalf("%s: starting caddy: %v", p.Name, err)
	}
	if p.Admin == "" {
		return // no admin endpoint to wait for (admin off)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: admin endpoint %s does not answer: %v\n%s", p.Name, p.Admin, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Output is what the process printed (its log).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Kill stops the process at once (SIGKILL).
func (p *Process) Kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// Stop stops the process gracefully (SIGTERM) and waits for it.
func (p *Process) Stop() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the process and starts it again with the same Caddyfile,
// or with a new one if caddyfile is not empty.
func (p *Process) Restart(caddyfile string) {
	p.t.Helper()
	p.Stop()
	if caddyfile != "" {
		if err := os.WriteFile(p.config, []byte(caddyfile), 0o600); err != nil {
			p.t.Fatal(err)
		}
	}
	p.start()
}

// FreeAddr returns a free loopback host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
