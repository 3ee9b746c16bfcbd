package balancer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Shared helpers of the engine tests. Expected values in the tests are taken
// from docs/behaviour.md (httpd 2.4 behaviour), not from running the code.

// testClock is a replaceable Balancer.Now. Every call returns the current time
// and then advances it by step (0: the clock only moves when a test sets t),
// which mimics httpd's microsecond clock moving between two attempts.
type testClock struct {
	t    time.Time
	step time.Duration
}

func (c *testClock) Now() time.Time {
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// testEpoch is a realistic "now": far more than any retry period after the Unix
// epoch, so that a configured status=E (error_time 0) has expired.
var testEpoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// cfgMember is a member http://<host> with the given status= value.
func cfgMember(t *testing.T, host, status string) MemberConfig {
	t.Helper()
	st, err := ParseStatus(status, 0)
	if err != nil {
		t.Fatalf("status %q: %v", status, err)
	}
	return MemberConfig{URL: "http://" + host, Status: st}
}

func durPtr(d time.Duration) *time.Duration { return &d }

// newTestBalancer builds a balancer with a fake clock (testEpoch if clk is nil).
// Config.ForceRecovery is false when zero while httpd defaults to On, so tests
// that mean "default settings" set it to true explicitly.
func newTestBalancer(t *testing.T, cfg Config, clk *testClock) *Balancer {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if clk == nil {
		clk = &testClock{t: testEpoch}
	}
	b.Now = clk.Now
	return b
}

// memberLabel is the member's host (the test's short name).
func memberLabel(m *Member) string {
	if m == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(m.Name(), "http://")
}

// memberByLabel finds a member by label.
func memberByLabel(t *testing.T, b *Balancer, l string) *Member {
	t.Helper()
	for _, m := range b.Members() {
		if memberLabel(m) == l {
			return m
		}
	}
	t.Fatalf("no member %q", l)
	return nil
}

func stateOf(t *testing.T, b *Balancer, l string) MemberState {
	t.Helper()
	return memberByLabel(t, b, l).State()
}

// pickN runs n complete requests with no failure (Pick, then Release at the end
// of the request) and returns the chosen members' labels; "ERR" for an error.
func pickN(t *testing.T, b *Balancer, n int, req *Request) []string {
	t.Helper()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		p, err := b.Pick(context.Background(), req)
		if err != nil {
			out = append(out, "ERR")
			continue
		}
		out = append(out, memberLabel(p.Member))
		p.Member.Release()
	}
	return out
}

// errTestConnect marks a request whose last attempt could not connect (the client
// gets 503 from the scheme handler).
var errTestConnect = errors.New("connect failed")

// simRequest simulates one client request through the glue's failover loop
// (proxy_handler, docs/behaviour.md §3 / §3.7): Pick, try to connect; a member listed in
// dead refuses the connection (ConnectFailed); continue while the member is
// not usable and attempts < MaxAttempts. Every picked member is released at the
// end of the whole request. It returns every attempted member in order, the
// last Pick, and nil, ErrNoMember/ErrNoFailover (503 before an attempt), or
// errTestConnect (503 after a failed attempt).
func simRequest(t *testing.T, b *Balancer, req *Request, dead map[string]bool) (tries []string, last Pick, err error) {
	t.Helper()
	var picked []*Member
	defer func() {
		for _, m := range picked {
			m.Release()
		}
	}()
	attempts := 0
	for {
		p, err := b.Pick(context.Background(), req)
		if err != nil {
			return tries, p, err
		}
		last = p
		picked = append(picked, p.Member)
		l := memberLabel(p.Member)
		tries = append(tries, l)
		if !dead[l] {
			p.Member.ConnectOK()
			return tries, p, nil
		}
		usable := p.Member.ConnectFailed()
		if usable != p.Member.Usable() {
			t.Fatalf("ConnectFailed reported usable=%v but Usable()=%v", usable, p.Member.Usable())
		}
		if usable || !(b.MaxAttempts() > attempts) {
			return tries, p, errTestConnect
		}
		attempts++
	}
}

// servedBy runs n requests through simRequest and returns the member that finally
// served each one ("503" when none did).
func servedBy(t *testing.T, b *Balancer, n int, req *Request, dead map[string]bool) []string {
	t.Helper()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		tries, _, err := simRequest(t, b, req, dead)
		if err != nil {
			out = append(out, "503")
			continue
		}
		out = append(out, tries[len(tries)-1])
	}
	return out
}

func words(s string) []string { return strings.Fields(s) }

func repeatWords(s string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, words(s)...)
	}
	return out
}

func wantSeq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, " "), strings.Join(want, " "))
	}
}

// wantStatusString checks the status string a user sees for a member.
func wantStatusString(t *testing.T, b *Balancer, l, want string) {
	t.Helper()
	if got := stateOf(t, b, l).Status.String(); got != want {
		t.Errorf("%s status = %q, want %q", l, got, want)
	}
}

// wantLBStatus checks the lbstatus values of the listed members.
func wantLBStatus(t *testing.T, b *Balancer, what string, labels []string, want []int64) {
	t.Helper()
	for i, l := range labels {
		if got := stateOf(t, b, l).LBStatus; got != want[i] {
			t.Errorf("%s: lbstatus %s = %d, want %d", what, l, got, want[i])
		}
	}
}

func countOf(s []string, l string) int {
	n := 0
	for _, x := range s {
		if x == l {
			n++
		}
	}
	return n
}
