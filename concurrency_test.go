package caddybalancer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/api"
	"github.com/lbset/caddy-balancer/balancer"
)

// Concurrency tests, meant for the race detector as well as the normal run:
//
//	go test -race -count=1 -run Concurrency .
//
// The balancer-manager (site handler and admin endpoint) and the JSON API
// change flags, load factors, lbsets, the lbmethod and other balancer
// parameters, and add and remove members, from several goroutines while
// traffic flows and a sampler reads the state. Properties: no race, no
// panic, no failed client request, counters never negative, busy back to 0
// at the end, and a final state that the writes allow: each field written by
// one goroutine holds that goroutine's last value, a field written by two
// holds the last value of one of them; the persisted file holds the final
// state.

// ccHTTP is the client of the writers and the sampler.
var ccHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func ccDo(method, u, body string, headers ...string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := ccHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// ccErrors collects failures from goroutines; the test reports them.
type ccErrors struct {
	mu   sync.Mutex
	errs []string
}

func (e *ccErrors) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errs) < 20 {
		e.errs = append(e.errs, fmt.Sprintf(format, args...))
	}
}

func (e *ccErrors) check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errs) > 0 {
		t.Fatalf("%d failures, first ones:\n%s", len(e.errs), strings.Join(e.errs, "\n"))
	}
}

// checkCounters checks the engine's counters of every member.
func checkCounters(b *balancer.Balancer, errs *ccErrors) {
	for _, s := range b.States() {
		if s.Busy < 0 || s.Elected < 0 || s.Transfer < 0 || s.Read < 0 || s.Retries < 0 {
			errs.add("member %s: negative counter: busy %d elected %d to %d from %d retries %d",
				s.Name, s.Busy, s.Elected, s.Transfer, s.Read, s.Retries)
		}
		if s.LoadFactor < 100 || s.LoadFactor > 10000 || s.LBSet < 0 || s.LBSet > 99 {
			errs.add("member %s: loadfactor %d lbset %d out of range", s.Name, s.LoadFactor, s.LBSet)
		}
	}
}

func TestConcurrencyManagementUnderTraffic(t *testing.T) {
	bs := startBackends(t, 4)
	port, aport := freePort(t), freePort(t)
	dir := t.TempDir()
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := fmt.Sprintf("http://127.0.0.1:%d", aport)
	siteMgr, adminMgr, apiURL := site+"/balancer-manager", admin+"/balancer-manager", admin+"/balancers/cc"
	const nonce = "n-cc"
	loadCaddyfile(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	handle /balancer-manager* {
		balancer_manager
	}
	handle {
		balancer cc {
			nonce %s
			persist on
			stickysession JSESSIONID
			growth 2
			balancer_member %s route=r1
			balancer_member %s route=r2
			balancer_member %s route=r3
		}
	}
}`, aport, dir, port, nonce, bs[0].URL, bs[1].URL, bs[2].URL))
	b := lookupBalancer("cc")
	form := func(w string) string { return "b=cc&nonce=" + nonce + "&w=" + url.QueryEscape(w) }
	siteRef := "Referer: " + siteMgr

	const ops = 60
	var errs ccErrors
	var writers sync.WaitGroup
	// Last values written, per writer (read after writers.Wait).
	var (
		w1LF, w1D, w1N   int
		w2LF, w2Set, w2H int
		w3Method         string
		w3Timeout        int
		w4Max, w4Force   int
		w5Set, w6Set     int
		w7Present        bool
		w8Route          string
		methods          = []string{"byrequests", "bybusyness", "bytraffic"}
		writerFailed     atomic.Int64
		writerOK         = func(code int, err error, want ...int) bool {
			return err == nil && (code == want[0] || len(want) > 1 && code == want[1])
		}
		reportWriter = func(who string, i, code int, body string, err error) {
			writerFailed.Add(1)
			errs.add("%s op %d: %d %v %.200s", who, i, code, err, body)
		}
		memberURL          = func(u string) string { return apiURL + "/members/" + url.PathEscape(u) }
		startWriter        = func(f func()) { writers.Add(1); go func() { defer writers.Done(); f() }() }
		trafficDone        = make(chan struct{})
		trafficWG, sampler sync.WaitGroup
	)
	// W1: the site manager edits b2: load factor, Disabled, Drain.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			lf, d, n := 1+i%10, i%2, (i/2)%2
			code, body, err := ccDo("POST", siteMgr, fmt.Sprintf("%s&w_lf=%d&w_status_D=%d&w_status_N=%d", form(bs[1].URL), lf, d, n), siteRef)
			if !writerOK(code, err, 200) {
				reportWriter("W1", i, code, body, err)
				return
			}
			w1LF, w1D, w1N = lf, d, n
		}
	})
	// W2: the JSON API edits r3: load factor, lbset, hot standby.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			lf, set, h := 1+i%7, i%3, i%2
			sign := "-"
			if h == 1 {
				sign = "+"
			}
			code, body, err := ccDo("PATCH", apiURL+"/members/r3", fmt.Sprintf(`{"loadfactor": %d, "lbset": %d, "status": "%sH"}`, lf, set, sign))
			if !writerOK(code, err, 200) {
				reportWriter("W2", i, code, body, err)
				return
			}
			w2LF, w2Set, w2H = lf, set, h
		}
	})
	// W3: the JSON API switches the lbmethod and sets the timeout.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			m, tmo := methods[i%3], i%3
			code, body, err := ccDo("PATCH", apiURL, fmt.Sprintf(`{"lbmethod": %q, "timeout": %d}`, m, tmo))
			if !writerOK(code, err, 200) {
				reportWriter("W3", i, code, body, err)
				return
			}
			w3Method, w3Timeout = m, tmo
		}
	})
	// W4: the admin manager sets maxattempts and nofailover.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			mx, f := i%6, i%2
			code, body, err := ccDo("POST", adminMgr, fmt.Sprintf("b=cc&nonce=%s&b_max=%d&b_sforce=%d", nonce, mx, f))
			if !writerOK(code, err, 200) {
				reportWriter("W4", i, code, body, err)
				return
			}
			w4Max, w4Force = mx, f
		}
	})
	// W5 and W6: b1's lbset from the site manager (1..49) and the JSON API
	// (50..99) at the same time.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			set := 1 + i%49
			code, body, err := ccDo("POST", siteMgr, fmt.Sprintf("%s&w_ls=%d", form(bs[0].URL), set), siteRef)
			if !writerOK(code, err, 200) {
				reportWriter("W5", i, code, body, err)
				return
			}
			w5Set = set
		}
	})
	startWriter(func() {
		for i := 0; i < ops; i++ {
			set := 50 + i%50
			code, body, err := ccDo("PATCH", memberURL(bs[0].URL), fmt.Sprintf(`{"lbset": %d}`, set))
			if !writerOK(code, err, 200) {
				reportWriter("W6", i, code, body, err)
				return
			}
			w6Set = set
		}
	})
	// W7: the JSON API adds b4 (enabled) and removes it again.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			if i%2 == 0 {
				code, body, err := ccDo("POST", apiURL+"/members", fmt.Sprintf(`{"url": %q, "route": "r4", "status": "-D"}`, bs[3].URL))
				if !writerOK(code, err, 201) {
					reportWriter("W7 add", i, code, body, err)
					return
				}
				w7Present = true
			} else {
				code, body, err := ccDo("DELETE", memberURL(bs[3].URL), "")
				if !writerOK(code, err, 204) {
					reportWriter("W7 remove", i, code, body, err)
					return
				}
				w7Present = false
			}
		}
	})
	// W8: the admin manager changes b2's route and redirect, which sticky
	// traffic below looks up.
	startWriter(func() {
		for i := 0; i < ops; i++ {
			route := fmt.Sprintf("r2v%d", i%5)
			code, body, err := ccDo("POST", adminMgr, fmt.Sprintf("%s&w_wr=%s&w_rr=r1", form(bs[1].URL), route))
			if !writerOK(code, err, 200) {
				reportWriter("W8", i, code, body, err)
				return
			}
			w8Route = route
		}
	})

	// Traffic: GETs (some sticky) and POSTs until the writers are done.
	var requests, failures atomic.Int64
	c := loadClient()
	defer c.CloseIdleConnections()
	for ci := 0; ci < 16; ci++ {
		trafficWG.Add(1)
		go func(ci int) {
			defer trafficWG.Done()
			for i := 0; ; i++ {
				select {
				case <-trafficDone:
					return
				default:
				}
				var req *http.Request
				switch i % 4 {
				case 0:
					req, _ = http.NewRequest("POST", fmt.Sprintf("%s/p%d", site, i), strings.NewReader(strings.Repeat("x", 100*ci)))
				case 1:
					req, _ = http.NewRequest("GET", fmt.Sprintf("%s/s%d", site, i), nil)
					req.Header.Set("Cookie", fmt.Sprintf("JSESSIONID=a.r%d", 1+i%4))
				default:
					req, _ = http.NewRequest("GET", fmt.Sprintf("%s/g%d", site, i), nil)
				}
				requests.Add(1)
				resp, err := c.Do(req)
				if err != nil {
					failures.Add(1)
					errs.add("traffic: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					errs.add("traffic: %s %s: %d", req.Method, req.URL.Path, resp.StatusCode)
				}
			}
		}(ci)
	}
	// Sampler: the engine's counters, the JSON API and the manager pages.
	var samples atomic.Int64
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for i := 0; ; i++ {
			select {
			case <-trafficDone:
				return
			default:
			}
			checkCounters(b, &errs)
			samples.Add(1)
			switch i % 20 {
			case 0:
				code, body, err := ccDo("GET", apiURL, "")
				var ab api.Balancer
				if err != nil || code != 200 || json.Unmarshal([]byte(body), &ab) != nil {
					errs.add("sampler: API GET: %d %v", code, err)
					continue
				}
				for _, m := range ab.Members {
					if m.Busy < 0 || m.Elected < 0 {
						errs.add("sampler: API shows member %s busy %d elected %d", m.Name, m.Busy, m.Elected)
					}
				}
			case 5:
				if code, _, err := ccDo("GET", adminMgr+"?xml=1", ""); err != nil || code != 200 {
					errs.add("sampler: XML: %d %v", code, err)
				}
			case 10:
				if code, _, err := ccDo("GET", siteMgr+"?b=cc&w="+url.QueryEscape(bs[1].URL), "", siteRef); err != nil || code != 200 {
					errs.add("sampler: page: %d %v", code, err)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	writers.Wait()
	close(trafficDone)
	trafficWG.Wait()
	sampler.Wait()
	errs.check(t)
	if writerFailed.Load() > 0 {
		t.Fatal("a writer failed")
	}
	waitIdle(t, "cc")
	checkCounters(b, &errs)
	errs.check(t)

	// The final state is the one the writes allow.
	v := b.View()
	byName := map[string]balancer.MemberView{}
	for _, m := range v.Members {
		byName[m.Name] = m
	}
	m1, m2, m3 := byName[bs[0].URL], byName[bs[1].URL], byName[bs[2].URL]
	_, m4 := byName[bs[3].URL]
	flag := func(m balancer.MemberView, f balancer.Status) int {
		if m.Status.Has(f) {
			return 1
		}
		return 0
	}
	var problems []string
	want := func(what string, got, exp any) {
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			problems = append(problems, fmt.Sprintf("%s = %v, want %v", what, got, exp))
		}
	}
	want("b2 loadfactor", m2.LoadFactor, w1LF*100)
	want("b2 D", flag(m2, balancer.Disabled), w1D)
	want("b2 N", flag(m2, balancer.Drain), w1N)
	want("b2 route", m2.Route, w8Route)
	want("b2 redirect", m2.Redirect, "r1")
	want("r3 loadfactor", m3.LoadFactor, w2LF*100)
	want("r3 lbset", m3.LBSet, w2Set)
	want("r3 H", flag(m3, balancer.HotStandby), w2H)
	want("lbmethod", v.LBMethod, w3Method)
	want("timeout", v.Timeout, time.Duration(w3Timeout)*time.Second)
	want("maxattempts", v.MaxAttempts, w4Max)
	want("nofailover", v.NoFailover, w4Force == 1)
	want("b4 present", m4, w7Present)
	if m1.LBSet != w5Set && m1.LBSet != w6Set {
		problems = append(problems, fmt.Sprintf("b1 lbset = %d, want the last of W5 (%d) or W6 (%d)", m1.LBSet, w5Set, w6Set))
	}
	for _, m := range v.Members {
		if m.Status.Has(balancer.InError) {
			problems = append(problems, fmt.Sprintf("member %s is in error: no member was down", m.Name))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("final state not allowed by the writes:\n%s", strings.Join(problems, "\n"))
	}

	// The persisted state is the final state, not an older one.
	data, err := os.ReadFile(filepath.Join(dir, "balancer", "cc.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc persistFile
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	live := b.Snapshot()
	gotJS, _ := json.Marshal(doc.Snapshot)
	wantJS, _ := json.Marshal(live)
	if string(gotJS) != string(wantJS) {
		t.Fatalf("the state file is not the final state:\nfile %s\nlive %s", gotJS, wantJS)
	}
	t.Logf("%d requests (%d failed), %d samples, %d writes", requests.Load(), failures.Load(), samples.Load(), 8*ops)
}

// TestConcurrencyReloadUnderTraffic: config reloads (same balancer, the
// configuration of one member changed back and forth) while traffic flows
// and the JSON API changes the balancer: no race, no HTTP error, run-time
// changes kept across the reloads, busy back to 0. Connection resets are
// tolerated: Caddy's reload opens a new listening socket (SO_REUSEPORT) and
// closes the old one, which resets connections still queued on it and
// keep-alive connections that race the old server's shutdown; that is
// Caddy's, not the balancer's.
func TestConcurrencyReloadUnderTraffic(t *testing.T) {
	bs := startBackends(t, 3)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := func(aport int, lf string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	balancer rl2 {
		growth 1
		balancer_member %s route=r1
		balancer_member %s route=r2 loadfactor=%s
	}
}`, aport, port, bs[0].URL, bs[1].URL, lf)
	}
	aport := freePort(t)
	loadCaddyfile(t, cfg(aport, "1"))
	var errs ccErrors
	stop := make(chan struct{})
	var wg sync.WaitGroup
	c := loadClient()
	defer c.CloseIdleConnections()
	var requests, resets atomic.Int64
	for ci := 0; ci < 16; ci++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				requests.Add(1)
				resp, err := c.Get(site + "/")
				if err != nil {
					if !strings.Contains(err.Error(), "reset by peer") && !strings.Contains(err.Error(), "EOF") &&
						!strings.Contains(err.Error(), "broken pipe") {
						errs.add("traffic: %v", err)
					}
					resets.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.add("traffic: %d", resp.StatusCode)
				}
			}
		}()
	}
	// Run-time change to keep: r1 in lbset 2, then reloads.
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/balancers/rl2", aport)
	if code, body, err := ccDo("PATCH", apiURL+"/members/r1", `{"lbset": 2}`); err != nil || code != 200 {
		t.Fatalf("PATCH: %d %v %s", code, err, body)
	}
	for i := 0; i < 6; i++ {
		checkCounters(lookupBalancer("rl2"), &errs)
		aport = freePort(t)
		loadCaddyfile(t, cfg(aport, fmt.Sprint(1+i%2)))
		apiURL = fmt.Sprintf("http://127.0.0.1:%d/balancers/rl2", aport)
		if code, _, err := ccDo("PATCH", apiURL, fmt.Sprintf(`{"lbmethod": %q}`, []string{"bybusyness", "byrequests"}[i%2])); err != nil || code != 200 {
			errs.add("PATCH after reload %d: %d %v", i, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	errs.check(t)
	waitIdle(t, "rl2")
	checkCounters(lookupBalancer("rl2"), &errs)
	errs.check(t)
	if s := memberState(t, "rl2", bs[0].URL); s.LBSet != 2 {
		t.Fatalf("the run-time lbset of r1 was lost across reloads: %+v", s)
	}
	if resets.Load() > requests.Load()/4 {
		t.Fatalf("%d of %d requests had their connection reset", resets.Load(), requests.Load())
	}
	t.Logf("%d requests across 6 reloads, %d connections reset by Caddy's listener swap", requests.Load(), resets.Load())
}

// slowStorage is an in-memory kvStorage whose writes take a while, so that
// writers queue up behind one another.
type slowStorage struct {
	delay  time.Duration
	mu     sync.Mutex
	data   map[string][]byte
	writes int
}

func (s *slowStorage) Store(_ context.Context, key string, value []byte) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = append([]byte(nil), value...)
	s.writes++
	return nil
}

func (s *slowStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.data[key]; ok {
		return v, nil
	}
	return nil, fs.ErrNotExist
}

// TestConcurrencyPersistLastWriteWins: when several changes are persisted at
// the same time, the state stored last is the balancer's final state, never
// an older snapshot that lost the race to the storage lock.
func TestConcurrencyPersistLastWriteWins(t *testing.T) {
	b, err := balancer.New(balancer.Config{Name: "lww", Members: []balancer.MemberConfig{
		{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st := &slowStorage{data: map[string][]byte{}}
	e := &registryEntry{name: "lww", bal: b}
	e.persist.on, e.persist.storage, e.persist.logger = true, st, zap.NewNop()
	b.SetOnEdit(func(*balancer.Balancer, balancer.Edit, string) { e.save() })
	ms := b.Members()
	for round := 0; round < 6; round++ {
		// Fast and slow writes: the storage lock barges or queues.
		st.delay = time.Duration(round%2) * 100 * time.Microsecond
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					n := (g*10 + i + round) % 100
					_, _ = b.Apply(balancer.Edit{Members: []balancer.MemberEdit{{Name: ms[g%2].Name(), LBSet: &n}}}, balancer.ReasonAPI)
				}
			}(g)
		}
		wg.Wait()
		var doc persistFile
		if err := json.Unmarshal(st.data[persistKey("lww")], &doc); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(doc.Snapshot)
		want, _ := json.Marshal(b.Snapshot())
		if string(got) != string(want) {
			t.Fatalf("round %d: the stored state is older than the final one:\nstored %s\nfinal  %s", round, got, want)
		}
	}
}
