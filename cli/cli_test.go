package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/api"
)

// The `caddy balancer` command as a user types it: Caddy with the plugin is
// built once (go build ./cmd/caddy), run as its own process with a
// Caddyfile, in front of backends in this process, and the commands are run
// against it; what they print, their exit status and their effect on the
// traffic are checked.

var (
	buildOnce sync.Once
	caddyBin  string
	buildErr  error
)

// caddyBinary builds Caddy with the plugin, once per test run.
func caddyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddy-balancer-cli")
		if err != nil {
			buildErr = err
			return
		}
		caddyBin = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBin, "github.com/lbset/caddy-balancer/cmd/caddy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return caddyBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if caddyBin != "" {
		os.RemoveAll(filepath.Dir(caddyBin))
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// backend answers "<name>" with X-Backend: <name>; a request for /hold
// waits until release is closed.
type backend struct {
	name    string
	url     string
	release chan struct{}
	once    sync.Once
}

func startBackend(t *testing.T, name string) *backend {
	b := &backend{name: name, release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-b.release
		}
		w.Header().Set("X-Backend", b.name)
		fmt.Fprint(w, b.name)
	}))
	b.url = srv.URL
	t.Cleanup(func() {
		b.unblock()
		srv.Close()
	})
	return b
}

func (b *backend) unblock() { b.once.Do(func() { close(b.release) }) }

// ran is what a command printed and its exit status.
type ran struct {
	stdout, stderr string
	code           int
}

func (r ran) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.code, r.stdout, r.stderr)
}

// caddyEnv keeps Caddy's files in the test's directory.
func caddyEnv(dir string) []string {
	return append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
}

// balancerCmd runs `caddy balancer <args>` in dir.
func balancerCmd(t *testing.T, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(caddyBinary(t), append([]string{"balancer"}, args...)...)
	cmd.Dir, cmd.Env = dir, caddyEnv(dir)
	return cmd
}

func wait(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) ran {
	t.Helper()
	err := cmd.Wait()
	r := ran{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return r
}

func start(t *testing.T, cmd *exec.Cmd) (*bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &stdout, &stderr
}

// runCaddy runs `caddy balancer <args>` to its end.
func runCaddy(t *testing.T, dir string, args ...string) ran {
	t.Helper()
	cmd := balancerCmd(t, dir, args...)
	stdout, stderr := start(t, cmd)
	return wait(t, cmd, stdout, stderr)
}

func wantCode(t *testing.T, r ran, code int, args ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("caddy balancer %s: %v\nwant exit %d", strings.Join(args, " "), r, code)
	}
}

// row returns the fields of the table row of member, failing if none.
func row(t *testing.T, out, member string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == member {
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", member, out)
	return nil
}

func wantRow(t *testing.T, out, member string, want ...string) {
	t.Helper()
	got := row(t, out, member)
	if len(got) < len(want)+1 || strings.Join(got[1:len(want)+1], " ") != strings.Join(want, " ") {
		t.Fatalf("row of %s: %q, want it to start %q", member, got, want)
	}
}

// site sends GETs to the site and returns who answered each.
func site(t *testing.T, url string, n int, header ...string) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		who, err := get(url, header...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, who)
	}
	return out
}

// get sends one GET and returns who answered (any goroutine may call it).
func get(url string, header ...string) (string, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if len(header) == 2 {
		req.Header.Set(header[0], header[1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("X-Backend"), nil
}

// held is a request kept in flight by a backend's /hold.
type held chan string

func hold(url, cookie string) held {
	h := make(held, 1)
	go func() {
		who, err := get(url+"/hold", "Cookie", cookie)
		if err != nil {
			who = err.Error()
		}
		h <- who
	}()
	return h
}

// apiMember reads a member through the JSON API.
func apiMember(t *testing.T, admin, member string) api.Member {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/balancers/cli/members/" + member)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m api.Member
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCaddyBalancerCommand(t *testing.T) {
	bin := caddyBinary(t)
	b1, b2, b3 := startBackend(t, "b1"), startBackend(t, "b2"), startBackend(t, "b3")
	dir := t.TempDir()
	aport, port := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", aport)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddyfile := fmt.Sprintf(`{
	admin %s
	persist_config off
}
%s {
	balancer cli {
		stickysession ROUTEID
		growth 1
		balancer_member %s route=a1
		balancer_member %s route=a2
	}
}
`, admin, front, b1.url, b2.url)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	srv.Dir, srv.Env = dir, caddyEnv(dir)
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy's log:\n%s", srvLog.String())
		}
	})
	poll(t, "caddy's admin endpoint", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("caddy run exited: %v\n%s", err, srvLog.String())
		default:
		}
		resp, err := http.Get("http://" + admin + "/balancers")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// status, the admin address read from the Caddyfile as `caddy reload` reads it.
	r := runCaddy(t, dir, "status", "--config", "Caddyfile")
	wantCode(t, r, ExitOK, "status")
	if !strings.HasPrefix(r.stdout, "balancer://cli (byrequests, stickysession ROUTEID, 1 free slots)\n") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	wantRow(t, r.stdout, b1.url, "a1", "-", "1", "0", "Init", "Ok")
	wantRow(t, r.stdout, b2.url, "a2", "-", "1", "0", "Init", "Ok")

	r = runCaddy(t, dir, "status", "--json", "--address", admin)
	wantCode(t, r, ExitOK, "status --json")
	var list []api.Balancer
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(list) != 1 || list[0].Name != "cli" || len(list[0].Members) != 2 || list[0].Members[1].Route != "a2" {
		t.Fatalf("status --json: %+v", list)
	}

	// set, by route: a2 becomes a hot standby, so b1 takes every request.
	r = runCaddy(t, dir, "set", "cli", "a2", "+H", "loadfactor=2", "--address", admin)
	wantCode(t, r, ExitOK, "set")
	wantRow(t, r.stdout, b2.url, "a2", "-", "2", "0", "Init", "Stby", "Ok")
	for _, who := range site(t, front+"/", 4) {
		if who != "b1" {
			t.Fatalf("with a2 +H a request went to %s", who)
		}
	}
	wantCode(t, runCaddy(t, dir, "set", "cli", b2.url, "-H", "--address", admin), ExitOK, "set -H")

	// disable and enable, by URL.
	r = runCaddy(t, dir, "disable", "cli", b1.url, "--address", admin)
	wantCode(t, r, ExitOK, "disable")
	wantRow(t, r.stdout, b1.url, "a1", "-", "1", "0", "Init", "Dis")
	for _, who := range site(t, front+"/", 4) {
		if who != "b2" {
			t.Fatalf("with a1 disabled a request went to %s", who)
		}
	}
	wantCode(t, runCaddy(t, dir, "enable", "cli", "a1", "--address", admin), ExitOK, "enable")
	if got := strings.Join(site(t, front+"/", 3), " "); !strings.Contains(got, "b1") {
		t.Fatalf("after enable b1 served none of %s", got)
	}

	// drain --wait: a1 has a request in flight; the command returns once it
	// has ended; no non-sticky request reaches b1 afterwards.
	heldA1 := hold(front, "ROUTEID=.a1")
	poll(t, "a request in flight on b1", func() bool { return apiMember(t, admin, "a1").Busy == 1 })
	drain := balancerCmd(t, dir, "drain", "cli", "a1", "--wait", "20s", "--address", admin)
	stdout, stderr := start(t, drain)
	poll(t, "N set by the drain command", func() bool { return apiMember(t, admin, "a1").Flags == "ON" })
	b1.unblock()
	r = wait(t, drain, stdout, stderr)
	wantCode(t, r, ExitOK, "drain --wait 20s")
	if !strings.HasPrefix(r.stdout, b1.url+" drained: no request in flight") {
		t.Fatalf("drain printed:\n%s", r)
	}
	if got := <-heldA1; got != "b1" {
		t.Fatalf("the request in flight was answered by %q", got)
	}
	if m := apiMember(t, admin, "a1"); m.Busy != 0 || m.Flags != "ON" {
		t.Fatalf("after drain: %+v", m)
	}
	for _, who := range site(t, front+"/", 6) {
		if who != "b2" {
			t.Fatalf("a non-sticky request went to %s after the drain", who)
		}
	}

	// drain --wait that runs out: exit 3, with how many are in flight.
	heldA2 := hold(front, "ROUTEID=.a2")
	poll(t, "a request in flight on b2", func() bool { return apiMember(t, admin, "a2").Busy == 1 })
	r = runCaddy(t, dir, "drain", "cli", "a2", "--wait", "300ms", "--address", admin)
	wantCode(t, r, ExitNotDrained, "drain --wait 300ms")
	if want := "caddy balancer: member " + b2.url + " still has 1 requests in flight after 300ms\n"; r.stderr != want {
		t.Fatalf("drain that ran out printed %q, want %q", r.stderr, want)
	}
	r = runCaddy(t, dir, "drain", "cli", "a2", "--json", "--address", admin)
	wantCode(t, r, ExitOK, "drain --json")
	var d api.Drain
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Drained || d.InFlight != 1 || len(d.Nodes) != 1 {
		t.Fatalf("drain --json: %v %+v", err, d)
	}
	b2.unblock()
	if got := <-heldA2; got != "b2" {
		t.Fatalf("the request in flight on b2 was answered by %q", got)
	}
	wantCode(t, runCaddy(t, dir, "enable", "cli", "a1", "--address", admin), ExitOK, "enable a1")
	wantCode(t, runCaddy(t, dir, "enable", "cli", "a2", "--address", admin), ExitOK, "enable a2")

	// add, enable, remove.
	r = runCaddy(t, dir, "add", "cli", b3.url, "route=a3", "loadfactor=2", "--address", admin)
	wantCode(t, r, ExitOK, "add")
	wantRow(t, r.stdout, b3.url, "a3", "-", "2", "0", "Init", "Dis")
	if !strings.Contains(r.stdout, "added disabled; to enable it: caddy balancer enable cli "+b3.url) {
		t.Fatalf("add printed:\n%s", r.stdout)
	}
	wantCode(t, runCaddy(t, dir, "enable", "cli", "a3", "--address", admin), ExitOK, "enable a3")
	poll(t, "a request served by the added member", func() bool { return site(t, front+"/", 1)[0] == "b3" })
	r = runCaddy(t, dir, "remove", "cli", "a3", "--address", admin)
	wantCode(t, r, ExitOK, "remove")
	if r.stdout != "removed a3 from cli\n" {
		t.Fatalf("remove printed %q", r.stdout)
	}
	if r = runCaddy(t, dir, "status", "cli", "--address", admin); strings.Contains(r.stdout, b3.url) {
		t.Fatalf("removed member still listed:\n%s", r.stdout)
	}

	// Errors: the API's message and exit 1; the command line's and exit 2.
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"set", "cli", "nope", "+D"}, ExitError, `caddy balancer: balancer "cli" has no member "nope"` + "\n"},
		{[]string{"set", "cli", "a1", "+E"}, ExitError, `caddy balancer: status flag 'E' cannot be changed at run time (only INDHRSC)` + "\n"},
		{[]string{"status", "other"}, ExitError, `caddy balancer: unknown balancer "other"` + "\n"},
		{[]string{"remove", "cli", "a1"}, ExitError, "caddy balancer: member " + b1.url + ": member was not added at run time; remove it from the configuration instead\n"},
		{[]string{"set", "cli", "a1", "loadfactor=abc"}, ExitUsage, `caddy balancer: loadfactor must be a number from 1 to 100, not "abc"` + "\n"},
		{[]string{"set", "cli", "a1", "weight=3"}, ExitUsage, `caddy balancer: unknown member parameter "weight"`},
		{[]string{"drain", "cli", "a1", "--wait", "2h"}, ExitUsage, "caddy balancer: wait must be a duration from 0 to 1h (a number of seconds or a duration such as 30s), not 2h0m0s\n"},
		{[]string{"drain", "cli"}, ExitUsage, "caddy balancer: want <balancer> <member>, got 1 arguments\nusage: caddy balancer drain"},
		{[]string{"frob"}, ExitUsage, `caddy balancer: unknown subcommand "frob"`},
		{[]string{"status", "--bogus"}, ExitUsage, "caddy balancer: unknown flag: --bogus"},
		{[]string{}, ExitUsage, "caddy balancer: name a subcommand"},
	} {
		r := runCaddy(t, dir, append(c.args, "--address", admin)...)
		if r.code != c.code || !strings.HasPrefix(r.stderr, c.stderr) || r.stdout != "" {
			t.Errorf("caddy balancer %s: %v\nwant exit %d and stderr starting %q", strings.Join(c.args, " "), r, c.code, c.stderr)
		}
	}
	r = runCaddy(t, dir, "status", "--address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if r.code != ExitError || !strings.HasPrefix(r.stderr, "caddy balancer: cannot reach Caddy's admin endpoint at 127.0.0.1:") {
		t.Errorf("status against nothing: %v", r)
	}
}
