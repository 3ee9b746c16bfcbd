package balancer

import (
	"strings"
	"sync/atomic"
	"time"
)

// Health-check defaults and limits (mod_proxy_hcheck).
const (
	// DefaultHCInterval is the time between two checks of a member.
	DefaultHCInterval = 30 * time.Second
	// MinHCInterval is the smallest hcinterval accepted (httpd: 100ms, the
	// watchdog's tick).
	MinHCInterval = 100 * time.Millisecond
)

// HCMethods are the health-check methods, hcmethod's values besides NONE.
var HCMethods = []string{"TCP", "OPTIONS", "HEAD", "GET", "OPTIONS11", "HEAD11", "GET11"}

// ValidHCMethod reports whether m is a valid hcmethod (case-insensitive),
// including NONE and the empty string (no checks).
func ValidHCMethod(m string) bool {
	m = strings.ToUpper(m)
	if m == "" || m == "NONE" {
		return true
	}
	for _, v := range HCMethods {
		if v == m {
			return true
		}
	}
	return false
}

// Validate checks a member's health-check settings as httpd's
// set_worker_hc_param does, and parses the hcexpr condition.
func (hc HealthCheck) Validate() error {
	if !ValidHCMethod(hc.Method) {
		return paramErr("hcmethod", hc.Method)
	}
	if hc.Interval != 0 && hc.Interval < MinHCInterval {
		return paramErr("hcinterval", hc.Interval)
	}
	if hc.Passes < 0 {
		return paramErr("hcpasses", hc.Passes)
	}
	if hc.Fails < 0 {
		return paramErr("hcfails", hc.Fails)
	}
	if len(hc.URI) > MaxHCURILen {
		return paramErr("hcuri", hc.URI)
	}
	if hc.Expr != "" {
		if _, err := ParseHCExpr(hc.Expr); err != nil {
			return err
		}
	}
	return nil
}

// Enabled reports whether the member is to be checked (a method other than NONE).
func (hc HealthCheck) Enabled() bool {
	m := strings.ToUpper(hc.Method)
	return m != "" && m != "NONE"
}

// WithDefaults returns hc with the method upper-cased and the defaults
// applied: interval 30s, passes and fails at least 1 (0 acts as 1).
func (hc HealthCheck) WithDefaults() HealthCheck {
	hc.Method = strings.ToUpper(hc.Method)
	if hc.Interval <= 0 {
		hc.Interval = DefaultHCInterval
	}
	if hc.Passes < 1 {
		hc.Passes = 1
	}
	if hc.Fails < 1 {
		hc.Fails = 1
	}
	return hc
}

// hcState is a member's health-check bookkeeping. inFlight and updated are
// guarded by the balancer's lock.
type hcState struct {
	inFlight bool
	updated  time.Time // end of the last check; zero: never checked

	passed atomic.Int64 // checks passed, ever
	failed atomic.Int64 // checks failed, ever
}

// HCTask is one check to run: the member and what to send it.
type HCTask struct {
	Member *Member
	// Check holds the member's settings with the defaults applied (method
	// upper-case, interval, passes and fails ≥ 1).
	Check HealthCheck
	// Scheme, Hostname, Port and Dial (host:port) address the member.
	Scheme, Hostname, Port, Dial string
	// Target is the request target of an HTTP check: the member's path, then
	// '/' if the member has a path and hcuri is not empty, then hcuri.
	Target string
	// Timeout is the member's own timeout, 0 if none.
	Timeout time.Duration
}

// HCTarget is the request target of a HEAD or GET check of a member with URL
// path memberPath and hcuri uri (create_hcheck_req): path + "/" (only when
// both are non-empty) + uri. It is sent as is, even when empty or relative.
func HCTarget(memberPath, uri string) string {
	if memberPath != "" && uri != "" {
		return memberPath + "/" + uri
	}
	return memberPath + uri
}

// HCDue returns the members due for a check at now, and marks each as having
// a check in flight, as hc_watchdog_callback does: a member is due when it is
// not stopped (S), has a method, has no check in flight and its last check
// ended more than hcinterval ago (members never checked are due at once). D,
// I, H, R, N and E do not prevent checks. Every returned task must be ended
// with HCResult.
func (b *Balancer) HCDue(now time.Time) []HCTask {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []HCTask
	for _, m := range b.members {
		if m.status&Stopped != 0 || !m.hc.Enabled() || m.hcs.inFlight {
			continue
		}
		hc := m.hc.WithDefaults()
		if !m.hcs.updated.IsZero() && !now.After(m.hcs.updated.Add(hc.Interval)) {
			continue
		}
		m.hcs.inFlight = true
		out = append(out, HCTask{
			Member: m, Check: hc,
			Scheme: m.scheme, Hostname: m.hostname, Port: m.port, Dial: m.dial,
			Target: HCTarget(m.path, hc.URI), Timeout: m.timeout,
		})
	}
	return out
}

// NextHCDue returns when the next member will be due for a check, or the zero
// time if no member has checks enabled (or all are in flight or stopped).
func (b *Balancer) NextHCDue() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Time
	for _, m := range b.members {
		if m.status&Stopped != 0 || !m.hc.Enabled() || m.hcs.inFlight {
			continue
		}
		t := m.hcs.updated
		if !t.IsZero() {
			t = t.Add(m.hc.WithDefaults().Interval)
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// HCResult records the outcome of a check of m that ended at now and runs
// mod_proxy_hcheck's state machine (hc_check):
//
//   - a member with C or E: a pass counts (pcount++); at hcpasses passes C and
//     E are cleared and pcount goes back to 0. A failure changes nothing.
//   - a healthy member: a failure sets error_time and counts (fcount++); at
//     hcfails failures C is set and fcount goes back to 0. A pass changes
//     nothing (fcount is not reset, so failures need not be consecutive).
//
// hcpasses and hcfails of 0 act as 1.
func (m *Member) HCResult(pass bool, now time.Time) {
	if pass {
		m.hcs.passed.Add(1)
	} else {
		m.hcs.failed.Add(1)
	}
	b := m.b
	b.mu.Lock()
	defer b.unlock()
	m.hcs.inFlight = false
	m.hcs.updated = now
	hc := m.hc.WithDefaults()
	old := m.status
	if m.status&(HCFail|InError) != 0 {
		if pass {
			m.pcount++
			if m.pcount >= hc.Passes {
				m.status &^= HCFail | InError
				m.pcount = 0
			}
		}
	} else if !pass {
		m.errorTime.Store(now.UnixNano())
		m.fcount++
		if m.fcount >= hc.Fails {
			m.status |= HCFail
			m.fcount = 0
		}
	}
	b.noteChange(m, old, ReasonHealthCheck)
}

// HCCounts returns how many checks of the member passed and failed, ever.
func (m *Member) HCCounts() (passed, failed int64) {
	return m.hcs.passed.Load(), m.hcs.failed.Load()
}

// HCLastCheck returns when the member's last check ended (zero if never) and
// whether a check is in flight.
func (m *Member) HCLastCheck() (t time.Time, inFlight bool) {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.hcs.updated, m.hcs.inFlight
}

// HCCancel ends a check of m that HCDue handed out without recording an
// outcome (the checker was stopped), so that the member can be checked again.
func (m *Member) HCCancel() {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	m.hcs.inFlight = false
}

// canonical returns hc with the method upper-cased and NONE written as "".
func (hc HealthCheck) canonical() HealthCheck {
	hc.Method = strings.ToUpper(hc.Method)
	if hc.Method == "NONE" {
		hc.Method = ""
	}
	return hc
}

// hasResponse reports whether the method reads a response that a condition
// can test (not none, not TCP).
func (hc HealthCheck) hasResponse() bool {
	m := strings.ToUpper(hc.Method)
	return m != "" && m != "NONE" && m != "TCP"
}
