package caddybalancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/lbset/caddy-balancer/balancer"
)

// Reliability tests: faults under load (a member that stops, a member whose
// process is SIGKILLed, a member drained mid-run), request bodies replayed on
// failover, and the persisted state across a SIGKILL of the writer and
// against damaged files. Everything runs on loopback with bounded request
// counts; a "process" is either an in-process server or this test binary
// re-executed as a helper (TestReliabilityHelperProcess).

// helperEnv selects the helper mode of a re-executed test binary.
const helperEnv = "CADDY_BALANCER_TEST_HELPER"

// loadClient is a keep-alive client for the load generators: one connection
// per client goroutine is reused, as browsers and load balancers do.
func loadClient() *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second},
	}
}

// loadResult is one request of a load run.
type loadResult struct {
	client     int
	start, end time.Time
	status     int // 0: transport error
	backend    string
	err        error
}

// runLoad runs clients goroutines of perClient requests each, made by mk,
// and returns every result. before is called before each request with the
// request's global sequence number.
func runLoad(t *testing.T, clients, perClient int, mk func(client, i int) *http.Request, before func(n int64)) []loadResult {
	t.Helper()
	c := loadClient()
	defer c.CloseIdleConnections()
	var seq atomic.Int64
	out := make([][]loadResult, clients)
	var wg sync.WaitGroup
	for ci := 0; ci < clients; ci++ {
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				if before != nil {
					before(seq.Add(1))
				}
				req := mk(ci, i)
				r := loadResult{client: ci, start: time.Now()}
				resp, err := c.Do(req)
				if err != nil {
					r.err = err
				} else {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					r.status, r.backend, r.err = resp.StatusCode, resp.Header.Get("X-Backend"), err
				}
				r.end = time.Now()
				out[ci] = append(out[ci], r)
			}
		}(ci)
	}
	wg.Wait()
	var all []loadResult
	for _, o := range out {
		all = append(all, o...)
	}
	return all
}

// memberState returns the engine's view of a balancer's member by URL.
func memberState(t *testing.T, bal, memberURL string) balancer.MemberState {
	t.Helper()
	b := lookupBalancer(bal)
	if b == nil {
		t.Fatalf("no balancer %s", bal)
	}
	for _, s := range b.States() {
		if s.Name == memberURL {
			return s
		}
	}
	t.Fatalf("balancer %s has no member %s", bal, memberURL)
	return balancer.MemberState{}
}

// awaitRetryOver waits until the member's retry period after its last error
// has passed, so that the next request retries it (ap_proxy_retry_worker:
// now > error time + retry) instead of skipping it.
func awaitRetryOver(t *testing.T, bal, memberURL string) {
	t.Helper()
	s := memberState(t, bal, memberURL)
	if s.ErrorTime.IsZero() {
		return // never in error
	}
	over := s.ErrorTime.Add(s.Retry)
	if wait := time.Until(over); wait > time.Minute {
		t.Fatalf("member %s: retry period ends in %v (error time %v, retry %v)", memberURL, wait, s.ErrorTime, s.Retry)
	}
	for !time.Now().After(over) {
		time.Sleep(time.Until(over) + time.Millisecond)
	}
}

// waitIdle waits until no member of the balancer has a request in flight.
func waitIdle(t *testing.T, bal string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := int64(0)
		for _, s := range lookupBalancer(bal).States() {
			if s.Busy < 0 {
				t.Fatalf("member %s: busy %d", s.Name, s.Busy)
			}
			busy += s.Busy
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("balancer %s: busy %d five seconds after the last request", bal, busy)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveBackend is an in-process backend with its own http.Server, so that it
// can be stopped the way a process stops serving: listener closed, idle
// keep-alive connections closed, requests in flight finished.
type liveBackend struct {
	Name, URL string
	srv       *http.Server
	hits      atomic.Int64
	delay     time.Duration
	arrivals  chan time.Time // optional: arrival time of every request
}

func startLiveBackend(t *testing.T, name string, delay time.Duration) *liveBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &liveBackend{Name: name, URL: "http://" + l.Addr().String(), delay: delay}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if b.arrivals != nil {
			select {
			case b.arrivals <- time.Now():
			default:
			}
		}
		body, _ := io.ReadAll(r.Body)
		if b.delay > 0 {
			time.Sleep(b.delay)
		}
		w.Header().Set("X-Backend", b.Name)
		if r.Method == http.MethodPost {
			_, _ = w.Write(body)
			return
		}
		fmt.Fprintf(w, "%s %s", b.Name, r.URL.Path)
	})}
	go func() { _ = b.srv.Serve(l) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// stop stops the backend gracefully (http.Server.Shutdown).
func (b *liveBackend) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Errorf("stopping %s: %v", b.Name, err)
	}
}

func relConfig(port int, name string, extra string, members ...string) string {
	var ms strings.Builder
	for _, m := range members {
		ms.WriteString("\t\tbalancer_member " + m + "\n")
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	handle /balancer-manager* {
		balancer_manager
	}
	handle {
		balancer %s {
%s
%s	}
	}
}`, port, name, extra, ms.String())
}

// TestReliabilityMemberStopsUnderLoad: 24 clients send 1920 GETs; a third
// of the way in, member b2 stops serving (listener closed, keep-alive
// connections closed, requests in flight finished). Every client request
// succeeds: the connection failures to b2 put it in error (E) and fail over
// to b1 or b3; after its failure no new request reaches it.
func TestReliabilityMemberStopsUnderLoad(t *testing.T) {
	bs := []*liveBackend{
		startLiveBackend(t, "b1", time.Millisecond),
		startLiveBackend(t, "b2", time.Millisecond),
		startLiveBackend(t, "b3", time.Millisecond),
	}
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, relConfig(port, "rstop", "", bs[0].URL, bs[1].URL, bs[2].URL))

	const clients, per = 24, 80
	var stopped atomic.Bool
	var stopAt time.Time
	var once sync.Once
	results := runLoad(t, clients, per, func(_, i int) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/r%d", site, i), nil)
		return req
	}, func(n int64) {
		if n == clients*per/3 {
			once.Do(func() {
				bs[1].stop(t)
				stopAt = time.Now()
				stopped.Store(true)
			})
		}
	})
	if !stopped.Load() {
		t.Fatal("the member was never stopped")
	}
	counts := map[string]int{}
	for _, r := range results {
		if r.err != nil || r.status != 200 {
			t.Fatalf("client %d: request %v..%v failed: status %d, %v", r.client, r.start.Format("15:04:05.000"), r.end.Format("15:04:05.000"), r.status, r.err)
		}
		counts[r.backend]++
		if r.backend == "b2" && r.start.After(stopAt) {
			t.Fatalf("a request started after b2 stopped was answered by b2")
		}
	}
	if counts["b2"] == 0 || counts["b1"] == 0 || counts["b3"] == 0 {
		t.Fatalf("distribution %v: every member should have answered", counts)
	}
	s := memberState(t, "rstop", bs[1].URL)
	if !s.Status.Has(balancer.InError) || s.ErrorTime.IsZero() {
		t.Fatalf("stopped member b2: status %q, error time %v; want Err", s.Status, s.ErrorTime)
	}
	for _, u := range []string{bs[0].URL, bs[2].URL} {
		if st := memberState(t, "rstop", u).Status; st.String() != "Init Ok " {
			t.Fatalf("member %s: %q", u, st)
		}
	}
	// The manager shows it too.
	page := get(t, site+"/balancer-manager").Body
	if !regexp.MustCompile(regexp.QuoteMeta(bs[1].URL) + `</a></td>.*?<td>Init Err </td>`).MatchString(page) {
		t.Fatalf("manager page does not show b2 as Init Err")
	}
	waitIdle(t, "rstop")
	t.Logf("distribution %v", counts)
}

// TestReliabilityMemberSIGKILLUnderLoad: member b2 is a separate process
// (this test binary as a helper) killed with SIGKILL while 24 clients send
// 1920 GETs. Requests in flight to it at the kill may fail (httpd answers
// those 502 too: the member closed without a status line); every request
// that starts after the kill has been reaped succeeds, b2 goes into error,
// and no request is answered by it afterwards.
func TestReliabilityMemberSIGKILLUnderLoad(t *testing.T) {
	b1 := startLiveBackend(t, "b1", time.Millisecond)
	b3 := startLiveBackend(t, "b3", time.Millisecond)
	cmd, b2URL := startHelperBackend(t, "b2")
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	loadCaddyfile(t, relConfig(port, "rkill", "", b1.URL, b2URL, b3.URL))

	const clients, per = 24, 80
	var killedAt atomic.Int64 // unix nanoseconds once the process is reaped
	var once sync.Once
	results := runLoad(t, clients, per, func(_, i int) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/k%d", site, i), nil)
		return req
	}, func(n int64) {
		if n == clients*per/3 {
			once.Do(func() {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Errorf("SIGKILL: %v", err)
				}
				_ = cmd.Wait()
				killedAt.Store(time.Now().UnixNano())
			})
		}
	})
	if killedAt.Load() == 0 {
		t.Fatal("the member was never killed")
	}
	kill := time.Unix(0, killedAt.Load())
	counts := map[string]int{}
	inFlightErrors := 0
	for _, r := range results {
		ok := r.err == nil && r.status == 200
		if !ok {
			if r.start.After(kill) {
				t.Fatalf("client %d: a request started after the kill failed: status %d, %v", r.client, r.status, r.err)
			}
			if r.err == nil && r.status != http.StatusBadGateway {
				t.Fatalf("client %d: request in flight at the kill: status %d; want 502", r.client, r.status)
			}
			inFlightErrors++
			continue
		}
		counts[r.backend]++
		if r.backend == "b2" && r.start.After(kill) {
			t.Fatalf("a request started after the kill was answered by b2")
		}
	}
	if inFlightErrors > clients {
		t.Fatalf("%d failed requests, more than one per client", inFlightErrors)
	}
	if counts["b2"] == 0 {
		t.Fatalf("b2 never answered before the kill: %v", counts)
	}
	if s := memberState(t, "rkill", b2URL); !s.Status.Has(balancer.InError) {
		t.Fatalf("killed member b2: status %q, want Err", s.Status)
	}
	waitIdle(t, "rkill")
	t.Logf("distribution %v, %d requests in flight at the kill failed with 502", counts, inFlightErrors)
}

// startHelperBackend runs this test binary as a backend process named name
// and returns it with its URL.
func startHelperBackend(t *testing.T, name string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReliabilityHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=backend", "CB_NAME="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper backend: %v", err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("helper backend said %q", line)
	}
	return cmd, u
}

// TestReliabilityHelperProcess is not a test: it is the body of the helper
// processes the other tests start (it skips when run normally).
func TestReliabilityHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	// Never outlive a lost parent for long.
	time.AfterFunc(60*time.Second, func() { os.Exit(3) })
	switch mode {
	case "backend":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := os.Getenv("CB_NAME")
		fmt.Printf("listening http://%s\n", l.Addr())
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond)
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "%s %s", name, r.URL.Path)
		}))
	case "persist-writer":
		persistWriter(t, os.Getenv("CB_DIR"))
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

// TestReliabilityDrainUnderLoad: 16 clients, member b1 slow (150 ms); b1 is
// drained through the site handler's balancer-manager (POST w_status_N=1
// with a same-host Referer and the nonce) in the middle of the run. The
// requests b1 had in flight complete with its answer; no request chosen after
// the drain goes to it (its elected count is frozen, and it receives no more
// requests than it had in flight); its busy count falls to zero; a sticky
// request for its route still reaches it, as in httpd.
func TestReliabilityDrainUnderLoad(t *testing.T) {
	b1 := startLiveBackend(t, "b1", 150*time.Millisecond)
	b2 := startLiveBackend(t, "b2", 2*time.Millisecond)
	b3 := startLiveBackend(t, "b3", 2*time.Millisecond)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	mgr := site + "/balancer-manager"
	loadCaddyfile(t, relConfig(port, "rdrain", "\t\tnonce n-drain\n\t\tstickysession ROUTEID",
		b1.URL+" route=r1", b2.URL+" route=r2", b3.URL+" route=r3"))

	const clients, per = 16, 40
	var (
		once                   sync.Once
		drainedAt              time.Time
		busyAtDrain, hitsAtDrn int64
		electedAtDrain         int64
		drainErr               error
	)
	results := runLoad(t, clients, per, func(_, i int) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/d%d", site, i), nil)
		return req
	}, func(n int64) {
		if n != clients*per/3 {
			return
		}
		once.Do(func() {
			body := "b=rdrain&nonce=n-drain&w=" + url.QueryEscape(b1.URL) + "&w_status_N=1"
			req, _ := http.NewRequest(http.MethodPost, mgr, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Referer", mgr)
			resp, err := client.Do(req)
			if err != nil {
				drainErr = err
				return
			}
			resp.Body.Close()
			m := lookupBalancer("rdrain").FindMemberByName(b1.URL)
			if m == nil {
				drainErr = fmt.Errorf("member b1 not found")
				return
			}
			s := m.State()
			drainedAt, busyAtDrain, electedAtDrain = time.Now(), s.Busy, s.Elected
			hitsAtDrn = b1.hits.Load()
			if !s.Status.Has(balancer.Drain) {
				drainErr = fmt.Errorf("after the drain POST b1 is %q", s.Status)
			}
		})
	})
	if drainErr != nil {
		t.Fatal(drainErr)
	}
	if drainedAt.IsZero() {
		t.Fatal("never drained")
	}
	completedAfter := 0
	for _, r := range results {
		if r.err != nil || r.status != 200 {
			t.Fatalf("client %d: status %d, %v", r.client, r.status, r.err)
		}
		if r.backend == "b1" && r.end.After(drainedAt) {
			completedAfter++
		}
		if r.backend == "b1" && r.start.After(drainedAt) {
			t.Fatalf("a request started after the drain was answered by b1")
		}
	}
	s := memberState(t, "rdrain", b1.URL)
	if s.Elected != electedAtDrain {
		t.Fatalf("b1 was elected %d more times after the drain", s.Elected-electedAtDrain)
	}
	if late := b1.hits.Load() - hitsAtDrn; late > busyAtDrain {
		t.Fatalf("b1 received %d requests after the drain with only %d in flight", late, busyAtDrain)
	}
	if busyAtDrain == 0 || completedAfter == 0 {
		t.Fatalf("no request was in flight on b1 at the drain (busy %d, completed after %d): the test did not exercise it",
			busyAtDrain, completedAfter)
	}
	waitIdle(t, "rdrain")
	if s := memberState(t, "rdrain", b1.URL); s.Busy != 0 || s.Status.String() != "Init Drn Ok " {
		t.Fatalf("b1 after the run: busy %d, status %q", s.Busy, s.Status)
	}
	// Sticky requests for the drained member's route still reach it.
	if r := get(t, site+"/sticky", "Cookie: ROUTEID=x.r1"); r.Status != 200 || r.Backend != "b1" {
		t.Fatalf("sticky request for r1 after the drain: %d from %q", r.Status, r.Backend)
	}
	t.Logf("b1: %d in flight at the drain, %d of them completed after it", busyAtDrain, completedAfter)
}

// TestReliabilityPOSTReplay is httpd-tests' failover case (docs/behaviour.md §11.1 tests
// 4-11) under load: the first member is dead, the second a hot standby that
// echoes POST bodies. Every body (8, 64, 2048, 4096 bytes, httpd-tests'
// sizes, plus a 256 KiB one and a chunked one) fails over and comes back
// byte for byte: the body is replayed to the next member after the failed
// connect.
func TestReliabilityPOSTReplay(t *testing.T) {
	echo := startLiveBackend(t, "echo", 0)
	dead := deadURL(t)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	// httpd-tests has retry=1ms, which httpd reads as 1 s; here 50ms is
	// 50 ms, so that a request every 50 ms tries the dead member first
	// again (maxattempts 5: even a slow machine fails over in time).
	loadCaddyfile(t, relConfig(port, "failover", "\t\tmaxattempts 5", dead+" loadfactor=1 retry=50ms", echo.URL+" loadfactor=1 status=H"))

	// The httpd-tests sequence first, one request at a time; each one goes
	// to the dead member first.
	for _, n := range []int{8, 64, 2048, 4096} {
		elected := memberState(t, "failover", dead).Elected
		awaitRetryOver(t, "failover", dead)
		body := strings.Repeat("A", n)
		r := mgPost(t, site+"/echo_post", body)
		if r.Status != 200 || r.Body != body {
			t.Fatalf("POST of %d bytes: %d, %d bytes back", n, r.Status, len(r.Body))
		}
		if s := memberState(t, "failover", dead); s.Elected != elected+1 || !s.Status.Has(balancer.InError) {
			t.Fatalf("POST of %d bytes did not fail over from the dead member (elected %d -> %d, status %q)", n, elected, s.Elected, s.Status)
		}
	}
	electedBefore := memberState(t, "failover", dead).Elected

	// Then under load: random bodies, every one must come back intact.
	sizes := []int{8, 64, 2048, 4096, 256 << 10, -1}
	const clients, per = 16, 12
	bodies := make([][]byte, clients*per)
	for i := range bodies {
		n := sizes[i%len(sizes)]
		if n < 0 {
			n = 10000
		}
		bodies[i] = make([]byte, n)
		_, _ = rand.Read(bodies[i])
	}
	var mu sync.Mutex
	var bad []string
	c := loadClient()
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	for ci := 0; ci < clients; ci++ {
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				k := ci*per + i
				var rd io.Reader = bytes.NewReader(bodies[k])
				if sizes[k%len(sizes)] < 0 {
					rd = io.MultiReader(bytes.NewReader(bodies[k])) // unknown length: chunked
				}
				req, _ := http.NewRequest(http.MethodPost, site+"/echo_post", rd)
				resp, err := c.Do(req)
				if err != nil {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("body %d: %v", k, err))
					mu.Unlock()
					continue
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Equal(got, bodies[k]) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("body %d (%d bytes): status %d, %d bytes back", k, len(bodies[k]), resp.StatusCode, len(got)))
					mu.Unlock()
				}
			}
		}(ci)
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d POSTs were not replayed intact:\n%s", len(bad), clients*per, strings.Join(bad, "\n"))
	}
	replays := memberState(t, "failover", dead).Elected - electedBefore
	if replays == 0 {
		t.Fatalf("no POST of the load run went to the dead member first: nothing was replayed")
	}
	waitIdle(t, "failover")
	t.Logf("%d of %d POSTs under load were replayed after a failed connect", replays, clients*per)
}

// ---- persistence --------------------------------------------------------

func pkConfig(port int, dir, logFile string, members ...string) string {
	var ms strings.Builder
	for _, m := range members {
		ms.WriteString("\t\tbalancer_member " + m + "\n")
	}
	logBlock := ""
	if logFile != "" {
		logBlock = fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t}\n", logFile)
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
%s}
http://127.0.0.1:%d {
	balancer pk {
		persist on
		growth 2
%s	}
}`, dir, logBlock, port, ms.String())
}

// persistWriter is the helper process of TestReliabilityPersistSIGKILL: it
// runs a balancer with persist on and changes it from four goroutines as
// fast as it can, each change written to the state file, until it is
// killed. It prints "ready" after the first write.
func persistWriter(t *testing.T, dir string) {
	port := freePort(t)
	members := strings.Split(os.Getenv("CB_MEMBERS"), ",")
	loadCaddyfile(t, pkConfig(port, dir, "", members...))
	b := lookupBalancer("pk")
	ms := b.Members()
	var once sync.Once
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				m := ms[g%len(ms)]
				lf, set, route := 100+(i*37+g)%9901, i%100, fmt.Sprintf("g%d-%s", g, strings.Repeat("x", i%50))
				e := balancer.Edit{Members: []balancer.MemberEdit{{Name: m.Name(), LoadFactor: &lf, LBSet: &set, Route: &route}}}
				if g == 3 {
					// add and remove a run-time member: the file changes shape.
					if dm := b.FindMemberByName("http://127.0.0.1:9"); dm != nil {
						e.Remove = []string{dm.Name()}
					} else {
						e.Add = []balancer.MemberConfig{{URL: "http://127.0.0.1:9", Status: balancer.Disabled}}
					}
				}
				_, _ = b.Apply(e, balancer.ReasonAPI) // written to the state file
				once.Do(func() { fmt.Println("ready") })
			}
		}(g)
	}
	wg.Wait()
}

var reWriterRoute = regexp.MustCompile(`^g[0-3]-x*$`)

// TestReliabilityPersistSIGKILL: a process writing run-time changes to the
// state file as fast as it can is killed with SIGKILL at three different
// moments. Each time the file left behind is a complete state (the writer
// goes through a temporary file, fsync and rename: certmagic's file
// storage) that a restart restores.
func TestReliabilityPersistSIGKILL(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	members := []string{bs[0].URL, bs[1].URL}
	file := filepath.Join(dir, "balancer", "pk.json")
	for round, after := range []time.Duration{5 * time.Millisecond, 60 * time.Millisecond, 250 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReliabilityHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=persist-writer", "CB_DIR="+dir, "CB_MEMBERS="+strings.Join(members, ","))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: writer did not start: %q %v\n%s", round, line, err, stderr.String())
		}
		time.Sleep(after)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: writer did not die of SIGKILL: %v\n%s", round, err, stderr.String())
		}

		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("round %d: state file: %v", round, err)
		}
		var doc persistFile
		if err := json.Unmarshal(data, &doc); err != nil || doc.Version != persistVersion || doc.Name != "pk" || len(doc.Members) < 2 {
			t.Fatalf("round %d: the state file left by the killed writer is not a complete state (%v):\n%s", round, err, data)
		}
		// A restart restores exactly what the file holds.
		port := freePort(t)
		loadCaddyfile(t, pkConfig(port, dir, "", members...))
		b := lookupBalancer("pk")
		for i, sm := range doc.Members[:2] {
			s := b.States()[i]
			if s.Name != sm.Name || s.LoadFactor != sm.LBFactor || s.LBSet != sm.LBSet || s.Route != sm.Route {
				t.Fatalf("round %d: member %d restored as %+v, file has %+v", round, i, s, sm)
			}
			initial := s.Route == "" && s.LoadFactor == 100 && s.LBSet == 0 // not changed before the kill
			if !initial && (!reWriterRoute.MatchString(s.Route) || s.LoadFactor < 100 || s.LoadFactor > 10000) {
				t.Fatalf("round %d: member %d holds a value the writer never wrote: %+v", round, i, s)
			}
		}
		if r := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); r.Status != 200 {
			t.Fatalf("round %d: after the restart: %d", round, r.Status)
		}
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
		leftovers, _ := os.ReadDir(filepath.Dir(file))
		t.Logf("round %d: killed after %v; %d files in the storage directory (temporary files of interrupted writes are left behind and ignored)", round, after, len(leftovers))
	}
}

// TestReliabilityPersistDamagedFiles: a state file that is truncated, empty,
// not JSON, of another version or balancer, of the wrong shape, a directory,
// or full of out-of-range values is logged and ignored (or, for the values,
// ignored one by one); the balancer starts from its configuration and serves.
func TestReliabilityPersistDamagedFiles(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	file := filepath.Join(dir, "balancer", "pk.json")
	members := []string{bs[0].URL + " route=r1", bs[1].URL + " route=r2"}
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	restart := func() {
		t.Helper()
		_ = caddy.Stop()
		loadCaddyfile(t, pkConfig(port, dir, logFile, members...))
	}

	// A genuine state file to damage.
	restart()
	b := lookupBalancer("pk")
	lf, set := 500, 7
	if _, err := b.Apply(balancer.Edit{Members: []balancer.MemberEdit{{Name: b.Members()[0].Name(),
		LoadFactor: &lf, LBSet: &set, Set: balancer.Disabled}}}, balancer.ReasonAPI); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// It restores.
	restart()
	if s := lookupBalancer("pk").States()[0]; s.LoadFactor != 500 || s.LBSet != 7 || !s.Status.Has(balancer.Disabled) {
		t.Fatalf("the genuine file was not restored: %+v", s)
	}

	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(d map[string]any)) []byte {
		var d map[string]any
		_ = json.Unmarshal(good, &d)
		f(d)
		out, _ := json.Marshal(d)
		return out
	}
	hostile := mutate(func(d map[string]any) {
		p := d["params"].(map[string]any)
		p["lbmethod"], p["timeout"], p["maxattempts"], p["nonce"] = "heartbeat", -5, 1000, strings.Repeat("n", 100)
		p["stickysession"] = strings.Repeat("s", 200)
		for _, mm := range d["members"].([]any) {
			m := mm.(map[string]any)
			m["lbfactor"], m["lbset"], m["route"], m["flags"] = 99999, -1, strings.Repeat("r", 300), "EOX"
			m["hc"] = map[string]any{"hcmethod": "PUT", "hcinterval": 1}
		}
		d["members"] = append(d["members"].([]any),
			map[string]any{"name": "javascript:alert(1)", "dynamic": true, "config": map[string]any{"URL": "javascript:alert(1)"}},
			map[string]any{"name": "http://127.0.0.1:1/<x>", "dynamic": true, "config": map[string]any{"URL": "http://127.0.0.1:1/<x>"}})
	})

	cases := []struct {
		name    string
		content []byte // nil: a directory
		logMsg  string
	}{
		{"truncated", good[:len(good)/2], "saved state is unusable"},
		{"truncated to one byte", good[:1], "saved state is unusable"},
		{"empty", []byte{}, "saved state is unusable"},
		{"null", []byte("null"), "saved state is unusable"},
		{"garbage", []byte("\x00\xff\xfe garbage \x1b[31m"), "saved state is unusable"},
		{"other version", mutate(func(d map[string]any) { d["version"] = 3 }), "saved state is unusable"},
		{"other balancer", mutate(func(d map[string]any) { d["name"] = "other" }), "saved state is unusable"},
		{"wrong shape", []byte(`{"version":1,"name":"pk","members":"x"}`), "saved state is unusable"},
		{"wrong types", mutate(func(d map[string]any) { d["members"].([]any)[0].(map[string]any)["lbfactor"] = "500" }), "saved state is unusable"},
		{"a directory", nil, "reading saved state"},
		{"hostile values", hostile, "restored saved state"},
	}
	for _, c := range cases {
		_ = caddy.Stop()
		_ = os.RemoveAll(file)
		if c.content == nil {
			if err := os.MkdirAll(file, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(file, c.content, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Truncate(logFile, 0)
		restart()
		bal := lookupBalancer("pk")
		v := bal.View()
		if v.LBMethod != "byrequests" || v.Timeout != 0 || len(v.Nonce) != 36 || v.StickySession != "" || len(v.Members) != 2 {
			t.Fatalf("%s: balancer parameters not from the configuration: %+v", c.name, v)
		}
		for i, s := range bal.States() {
			if s.LoadFactor != 100 || s.LBSet != 0 || s.Route != fmt.Sprintf("r%d", i+1) || s.Status.String() != "Init Ok " || s.HC.Method != "" {
				t.Fatalf("%s: member %d not from the configuration: %+v (status %q)", c.name, i, s, s.Status)
			}
		}
		if got := strings.Join(sequence(t, site+"/", 4), " "); strings.Contains(got, "50") {
			t.Fatalf("%s: the balancer does not serve: %s", c.name, got)
		}
		logs, _ := os.ReadFile(logFile)
		if !strings.Contains(string(logs), c.logMsg) {
			t.Fatalf("%s: log lacks %q:\n%s", c.name, c.logMsg, logs)
		}
	}
	// The next change writes a good file over the damaged one.
	_ = caddy.Stop()
	_ = os.WriteFile(file, good[:10], 0o600)
	restart()
	three := 3
	pk := lookupBalancer("pk")
	if _, err := pk.Apply(balancer.Edit{Members: []balancer.MemberEdit{{Name: pk.Members()[1].Name(), LBSet: &three}}}, balancer.ReasonAPI); err != nil {
		t.Fatal(err)
	}
	restart()
	if s := lookupBalancer("pk").States()[1]; s.LBSet != 3 {
		t.Fatalf("a damaged file was not replaced by the next change: %+v", s)
	}
}
