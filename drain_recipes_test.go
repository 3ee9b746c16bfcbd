package caddybalancer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/api"
)

// The README's drain recipes, testdata/clients/drain.sh (curl) and
// testdata/clients/drain.yml (Ansible's ansible.builtin.uri), run against a
// real Caddy: with a request in flight on the member, the deploy command
// runs only once the member is drained and empty, and the member takes
// requests again afterwards.

// recipeSetup runs a balancer "recipe" with members r1 (whose /hold
// requests wait for release) and r2, and holds one request in flight on r1.
// It returns the admin address and a function that lets the held request
// end.
func recipeSetup(t *testing.T) (admin string, release func()) {
	t.Helper()
	bs := startBackends(t, 2)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	bs[0].SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-gate
		}
		fmt.Fprint(w, "b1")
	})
	port, aport := freePort(t), freePort(t)
	admin = fmt.Sprintf("localhost:%d", aport)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer recipe {
		stickysession ROUTEID
		balancer_member %s route=r1
		balancer_member %s route=r2
	}
}`, aport, port, bs[0].URL, bs[1].URL))
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/hold", port), nil)
		req.Header.Set("Cookie", "ROUTEID=.r1")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() { release(); <-done })
	hcWaitFor(t, 5*time.Second, "a request in flight on r1", func() bool { return memberState(t, "recipe", bs[0].URL).Busy == 1 })
	return admin, release
}

// runRecipe starts the recipe, lets the held request end once the recipe
// has set N on r1 (so that it has to wait for it), and waits for the recipe
// to succeed. It returns what the recipe printed.
func runRecipe(t *testing.T, cmd *exec.Cmd, admin string, release func()) string {
	t.Helper()
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hcWaitFor(t, 30*time.Second, "the recipe to set N on r1", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("%s ended (%v) before r1 was drained:\n%s", cmd.Args[0], err, buf.String())
		default:
		}
		r := adminDo(t, "GET", "http://"+admin+"/balancers/recipe/members/r1", "")
		return decodeMember(t, r).Flags == "ON"
	})
	release()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, buf.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v still runs 60s after the held request ended:\n%s", cmd.Args, buf.String())
	}
	return buf.String()
}

// lockedBuffer is a buffer a running command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wantDeployedDrained checks what the deploy command saw: r1 draining with
// no request in flight; and that r1 takes requests again.
func wantDeployedDrained(t *testing.T, admin, seenFile string) {
	t.Helper()
	raw, err := os.ReadFile(seenFile)
	if err != nil {
		t.Fatalf("the deploy command did not run: %v", err)
	}
	var seen api.Member
	if err := json.Unmarshal(raw, &seen); err != nil {
		t.Fatalf("what the deploy command saw: %v\n%s", err, raw)
	}
	if seen.Flags != "ON" || seen.Busy != 0 {
		t.Fatalf("the deploy command ran with r1 at flags %q, busy %d; want ON, 0", seen.Flags, seen.Busy)
	}
	if m := decodeMember(t, adminDo(t, "GET", "http://"+admin+"/balancers/recipe/members/r1", "")); m.Flags != "O" {
		t.Fatalf("after the recipe r1 has flags %q, want O", m.Flags)
	}
}

// TestDrainRecipeShell runs testdata/clients/drain.sh.
func TestDrainRecipeShell(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; skipping the drain.sh recipe", tool)
		}
	}
	script := filepath.Join(clientsDir(t), "drain.sh")
	admin, release := recipeSetup(t)
	seen := filepath.Join(t.TempDir(), "seen.json")
	api := "http://" + admin + "/balancers/recipe/members/r1"

	// Not empty within the wait: exit 3, the deploy command is not run.
	cmd := exec.Command("bash", script, "recipe", "r1", "300ms", "curl", "-s", "-o", seen, api)
	cmd.Env = append(os.Environ(), "CADDY_ADMIN="+admin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "still has 1 requests in flight after 300ms") {
		t.Fatalf("drain.sh with a request in flight and 300ms: %v\n%s", err, out)
	}
	if _, err := os.Stat(seen); err == nil {
		t.Fatal("the deploy command ran although the member was not empty")
	}
	if m := decodeMember(t, adminDo(t, "PATCH", api, `{"status":"-N"}`)); m.Flags != "O" {
		t.Fatalf("taking r1 back: %+v", m)
	}

	cmd = exec.Command("bash", script, "recipe", "r1", "30s", "curl", "-s", "-o", seen, api)
	cmd.Env = append(os.Environ(), "CADDY_ADMIN="+admin)
	out2 := runRecipe(t, cmd, admin, release)
	wantDeployedDrained(t, admin, seen)
	t.Logf("drain.sh:\n%s", out2)
}

// TestDrainRecipeAnsible runs testdata/clients/drain.yml with
// ansible-playbook.
func TestDrainRecipeAnsible(t *testing.T) {
	bin, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook is not installed (Debian: apt-get install -y ansible); skipping the drain.yml recipe")
	}
	if testing.Short() {
		t.Skip("-short: the Ansible recipe takes a few seconds")
	}
	admin, release := recipeSetup(t)
	home := t.TempDir()
	seen := filepath.Join(home, "seen.json")
	cmd := exec.Command(bin, filepath.Join(clientsDir(t), "drain.yml"),
		"-e", "caddy_admin=http://"+admin, "-e", "balancer=recipe", "-e", "member=r1", "-e", "drain_wait=30",
		"-e", "deploy_command='curl -s -o "+seen+" http://"+admin+"/balancers/recipe/members/r1'")
	cmd.Dir = home // no ansible.cfg from the working directory
	cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_LOCALHOST_WARNING=0", "ANSIBLE_NOCOLOR=1", "ANSIBLE_INVENTORY_UNPARSED_WARNING=0", "no_proxy=*", "NO_PROXY=*")
	out := runRecipe(t, cmd, admin, release)
	wantDeployedDrained(t, admin, seen)
	if !strings.Contains(out, "ok=3") || !strings.Contains(out, "failed=0") {
		t.Fatalf("ansible-playbook drain.yml:\n%s", out)
	}
}
