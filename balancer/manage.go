package balancer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is the engine side of the balancer-manager and the JSON admin
// API: run-time edits of members and balancer parameters with httpd 2.4's
// validation ranges (balancer_process_balancer_worker in
// mod_proxy_balancer.c), members added and removed at run time, the
// longest-prefix member lookup, and snapshots for persistence.

// Errors of the run-time edits. The manager answers ErrMemberExists,
// ErrNoFreeSlot and ErrInvalidMember with 400, as httpd does for a failed
// member addition; the JSON API maps them to 409 and 400.
var (
	// ErrMemberExists: a member already matches the URL (AH10164).
	ErrMemberExists = errors.New("a member matching that URL already exists")
	// ErrNoFreeSlot: every member slot (members at configuration + growth) is used (AH10164).
	ErrNoFreeSlot = errors.New("no free member slot (raise growth)")
	// ErrInvalidMember: the URL cannot define a member (AH10163).
	ErrInvalidMember = errors.New("invalid member URL")
	// ErrNotDynamic: only members added at run time can be removed.
	ErrNotDynamic = errors.New("member was not added at run time; remove it from the configuration instead")
	// ErrNotMember: the member is not (any more) in this balancer.
	ErrNotMember = errors.New("not a member of this balancer")
)

// ManagerFlags are the status letters the manager can set and clear
// (w_status_I, _N, _D, _H, _R, _S, _C). E cannot be set or cleared.
const ManagerFlags = "INDHRSC"

// maxWorkerName is the longest worker name httpd accepts (proxy_worker_shared.name_ex).
const maxWorkerName = 383

// MemberView is what the manager and the JSON API show of a member: its
// state plus the parts of its URL and which parameters were configured.
type MemberView struct {
	MemberState
	Scheme   string
	Hostname string
	Port     int
	Path     string
	// RetrySet and TimeoutSet: retry and timeout were configured (the XML
	// shows them only then).
	RetrySet   bool
	TimeoutSet bool
	// Config is the member's configuration (zero for members added at run time
	// beyond their URL).
	Config MemberConfig
}

// View is a consistent picture of a balancer for the manager and the API,
// taken under one lock.
type View struct {
	Name            string
	LBMethod        string
	StickySession   string // cookie name, "" if none
	StickyPath      string // URL parameter name
	StickySeparator byte
	SColonPathDelim bool
	NoFailover      bool
	Timeout         time.Duration
	// MaxAttempts as shown by httpd's manager (s->max_attempts), and whether it
	// is in force (configured, or defaulted because the balancer was configured
	// with more than one member).
	MaxAttempts    int
	MaxAttemptsSet bool
	ForceRecovery  bool
	FailOnStatus   []int
	FailOnTimeout  bool
	Growth         int
	MaxMembers     int
	Nonce          string
	Members        []MemberView
}

// FreeSlots is the number of members that can still be added.
func (v View) FreeSlots() int {
	if n := v.MaxMembers - len(v.Members); n > 0 {
		return n
	}
	return 0
}

// shownMaxAttempts holds b_max values given to balancers whose max_attempts
// is not "set" (one member at configuration, no maxattempts): httpd stores and
// shows them but does not use them (spec §7.3, §13.11). Keyed by *Balancer.
var shownMaxAttempts sync.Map

// maxAttemptsSetLocked reports whether max_attempts is in force: configured,
// or defaulted at start because more than one member was configured.
func (b *Balancer) maxAttemptsSetLocked() bool {
	return b.cfg.MaxAttemptsSet || len(b.cfg.Members) > 1
}

// View returns the balancer's parameters and every member's state.
func (b *Balancer) View() View {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := View{
		Name: b.name, LBMethod: b.method.Name(), StickySession: b.sticky, StickyPath: b.stickyPath,
		StickySeparator: b.sep, SColonPathDelim: b.scolon, NoFailover: b.nofailover, Timeout: b.timeout,
		MaxAttempts: b.maxAttempts, MaxAttemptsSet: b.maxAttemptsSetLocked(), ForceRecovery: b.forceRecovery,
		FailOnStatus: append([]int(nil), b.failOnStatus...), FailOnTimeout: b.failOnTimeout,
		Growth: b.growth, MaxMembers: b.maxMembers, Nonce: b.nonce,
	}
	if !v.MaxAttemptsSet {
		v.MaxAttempts = 0
		if n, ok := shownMaxAttempts.Load(b); ok {
			v.MaxAttempts = n.(int)
		}
	}
	if len(b.members) > v.MaxMembers {
		v.MaxMembers = len(b.members)
	}
	v.Members = make([]MemberView, len(b.members))
	for i, m := range b.members {
		v.Members[i] = m.viewLocked()
	}
	return v
}

func (m *Member) viewLocked() MemberView {
	port, _ := strconv.Atoi(m.port)
	return MemberView{
		MemberState: m.stateLocked(), Scheme: m.scheme, Hostname: m.hostname, Port: port, Path: m.path,
		RetrySet: m.cfg.Retry != nil, TimeoutSet: m.cfg.Timeout != 0, Config: m.cfg,
	}
}

// View returns the member's view.
func (m *Member) View() MemberView {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.viewLocked()
}

// Nonce is the balancer-manager nonce; empty means the manager is read-only
// for this balancer (nonce=None).
func (b *Balancer) Nonce() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nonce
}

// LBMethod is the name of the lbmethod in force.
func (b *Balancer) LBMethod() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.method.Name()
}

// FindMember returns the member whose name is the longest prefix of url, as
// ap_proxy_get_worker does for the manager's w parameter: the scheme://host:port
// part of url is lower-cased first, and the member's name must cover at least
// that part. nil if none matches.
func (b *Balancer) FindMember(url string) *Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.findMemberLocked(url)
}

func (b *Balancer) findMemberLocked(url string) *Member {
	c := strings.IndexByte(url, ':')
	if c < 0 || !strings.HasPrefix(url[c:], "://") || len(url) == c+3 {
		return nil
	}
	hostEnd := len(url)
	if p := strings.IndexByte(url[c+3:], '/'); p >= 0 {
		hostEnd = c + 3 + p
	}
	u := strings.ToLower(url[:hostEnd]) + url[hostEnd:]
	minMatch := hostEnd
	var best *Member
	bestLen := 0
	for _, m := range b.members {
		n := len(m.name)
		if n <= len(u) && n >= minMatch && n > bestLen && u[:n] == m.name {
			best, bestLen = m, n
		}
	}
	return best
}

// FindMemberByRoute returns the first member with that route, nil if none.
func (b *Balancer) FindMemberByRoute(route string) *Member {
	if route == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.members {
		if m.route == route {
			return m
		}
	}
	return nil
}

// FindMemberByName returns the member with exactly that (normalized) name.
func (b *Balancer) FindMemberByName(name string) *Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// hasMemberLocked reports whether m is one of b's members now.
func (b *Balancer) hasMemberLocked(m *Member) bool {
	for _, x := range b.members {
		if x == m {
			return true
		}
	}
	return false
}

// ---- member edits ------------------------------------------------------

// SetLoadFactor sets the member's lbfactor (×100, 100…10000), then runs
// httpd's recalc_factors: every member's lbstatus becomes its lbfactor, and
// the only member of a one-member balancer gets lbfactor 100 whatever was asked.
func (m *Member) SetLoadFactor(lf int) error {
	if lf < 100 || lf > 10000 {
		return fmt.Errorf("loadfactor must be a number between 1..100")
	}
	b := m.b
	b.mu.Lock()
	defer b.unlock()
	m.lbfactor = lf
	b.recalcFactorsLocked()
	return nil
}

// recalcFactorsLocked is recalc_factors (mod_proxy_balancer.c).
func (b *Balancer) recalcFactorsLocked() {
	if len(b.members) == 1 {
		m := b.members[0]
		m.lbfactor = 100
		m.lbstatus = 100
		return
	}
	for _, m := range b.members {
		m.lbstatus = int64(m.lbfactor)
	}
}

// SetLBSet sets the member's lbset, 0…99.
func (m *Member) SetLBSet(n int) error {
	if n < 0 || n > 99 {
		return fmt.Errorf("lbset must be between 0 and 99")
	}
	m.b.mu.Lock()
	defer m.b.unlock()
	m.lbset = n
	return nil
}

// SetRoute sets the member's route as the manager does (w_wr): a value that is
// empty or 64 characters or longer clears it.
func (m *Member) SetRoute(route string) {
	m.b.mu.Lock()
	defer m.b.unlock()
	m.setRoute(managerString(route, 64))
}

// SetRedirect sets the member's redirect route as the manager does (w_rr): a
// value that is empty or 64 characters or longer clears it.
func (m *Member) SetRedirect(route string) {
	m.b.mu.Lock()
	defer m.b.unlock()
	m.redirect = managerString(route, 64)
}

// managerString is httpd's "if (*val && strlen(val) < sizeof(field)) strcpy
// else clear".
func managerString(v string, size int) string {
	if v == "" || len(v) >= size {
		return ""
	}
	return v
}

// SetFlag sets or clears one of the flags the manager controls: I, N, D, H,
// R, S or C (case-insensitive). E cannot be set or cleared this way. reason is
// reported to the OnStatusChange hook (ReasonManager, ReasonAPI).
func (m *Member) SetFlag(letter byte, on bool, reason string) error {
	f, err := managerFlag(letter)
	if err != nil {
		return err
	}
	b := m.b
	b.mu.Lock()
	defer b.unlock()
	old := m.status
	if on {
		m.status |= f
	} else {
		m.status &^= f
	}
	b.noteChange(m, old, reason)
	return nil
}

func managerFlag(letter byte) (Status, error) {
	if letter >= 'a' && letter <= 'z' {
		letter -= 'a' - 'A'
	}
	if strings.IndexByte(ManagerFlags, letter) < 0 {
		return 0, fmt.Errorf("status flag %q cannot be changed at run time (only %s)", letter, ManagerFlags)
	}
	f, _ := FlagForLetter(letter)
	return f, nil
}

// ManagerStatus applies a status change in httpd's `status=` syntax ("+D-N",
// "D", "-H") to cur, limited to the flags the manager controls (I N D H R S
// C). A value with any other letter, or ending in '+' or '-', is an error.
func ManagerStatus(value string, cur Status) (Status, error) {
	set := true
	st := cur
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '+', '-':
			set = c == '+'
			if i == len(value)-1 {
				return cur, fmt.Errorf("status %q ends with %q", value, c)
			}
		default:
			f, err := managerFlag(c)
			if err != nil {
				return cur, err
			}
			if set {
				st |= f
			} else {
				st &^= f
			}
		}
	}
	return st, nil
}

// ApplyStatus applies a status change in httpd's `status=` syntax ("+D-N")
// limited to the flags the manager controls; nothing changes on error.
func (m *Member) ApplyStatus(value, reason string) error {
	if _, err := ManagerStatus(value, 0); err != nil {
		return err
	}
	b := m.b
	b.mu.Lock()
	defer b.unlock()
	old := m.status
	m.status, _ = ManagerStatus(value, m.status)
	b.noteChange(m, old, reason)
	return nil
}

// HealthCheck returns the member's health-check settings.
func (m *Member) HealthCheck() HealthCheck {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.hc
}

// SetHealthCheck replaces the member's health-check settings after checking
// them as the configuration is checked. As in httpd, a method without a
// response (NONE, TCP) drops the condition.
func (m *Member) SetHealthCheck(hc HealthCheck) error {
	hc.Method = strings.ToUpper(hc.Method)
	if hc.Method == "NONE" {
		hc.Method = ""
	}
	if err := hc.Validate(); err != nil {
		return err
	}
	if hc.Method == "" || hc.Method == "TCP" {
		hc.Expr = ""
	}
	m.b.mu.Lock()
	defer m.b.unlock()
	m.hc = hc
	return nil
}

// ---- balancer edits ----------------------------------------------------

// SetLBMethod switches the lbmethod and runs the new method's reset (httpd
// runs it at the next sync; the result is the same). Switching to the method
// in force changes nothing.
func (b *Balancer) SetLBMethod(name string) error {
	method, err := MethodByName(name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.unlock()
	if b.method.Name() != method.Name() {
		b.method = method
		method.Reset(b.members)
	}
	return nil
}

// SetTimeout sets how long requests wait for a usable member, 0…7200 s.
func (b *Balancer) SetTimeout(d time.Duration) error {
	if d < 0 || d > 7200*time.Second {
		return fmt.Errorf("timeout must be between 0 and 7200 seconds")
	}
	b.mu.Lock()
	defer b.unlock()
	b.timeout = d
	return nil
}

// SetMaxAttempts sets the failover limit, 0…99. As httpd's manager (b_max) it
// does not mark the value as set: on a balancer configured with a single
// member and no maxattempts the value is shown but has no effect.
func (b *Balancer) SetMaxAttempts(n int) error {
	if n < 0 || n > 99 {
		return fmt.Errorf("maxattempts must be between 0 and 99")
	}
	b.mu.Lock()
	defer b.unlock()
	if b.maxAttemptsSetLocked() {
		b.maxAttempts = n
	} else {
		shownMaxAttempts.Store(b, n)
	}
	return nil
}

// SetNoFailover sets nofailover (the manager's b_sforce).
func (b *Balancer) SetNoFailover(on bool) {
	b.mu.Lock()
	defer b.unlock()
	b.nofailover = on
}

// SetStickySession sets the sticky session names as the manager's b_ss does:
// "-" clears them; otherwise the value is both cookie and URL parameter name,
// unless it contains '|', which splits it into cookie (before the first '|')
// and parameter (after it). No white space is trimmed. An empty value, or one
// of 63 characters or more, is an error (the manager ignores it).
func (b *Balancer) SetStickySession(v string) error {
	if v == "" {
		return fmt.Errorf("stickysession is empty (use \"-\" to remove it)")
	}
	if len(v) >= 63 {
		return fmt.Errorf("stickysession must be shorter than 63 characters")
	}
	b.mu.Lock()
	defer b.unlock()
	if v == "-" {
		b.setSticky("", "")
		return nil
	}
	b.setSticky(v, v)
	if cookie, path, ok := strings.Cut(v, "|"); ok {
		b.setSticky(cookie, path)
	}
	return nil
}

// AddMember adds a member at run time, as the manager's b_nwrkr does: it must
// not match an existing member (by the longest-prefix rule, or by its
// normalized name), a slot must be free, and the URL must be valid. The new
// member has default parameters, starts Disabled (D) and can be removed again
// with RemoveMember.
func (b *Balancer) AddMember(url string) (*Member, error) {
	return b.AddMemberConfig(MemberConfig{URL: url}, Disabled)
}

// AddMemberConfig is AddMember with parameters: the member gets mc's
// parameters and its status flags are Initialized | mc.Status | extra.
func (b *Balancer) AddMemberConfig(mc MemberConfig, extra Status) (*Member, error) {
	b.mu.Lock()
	defer b.unlock()
	return b.addMemberLocked(mc, extra)
}

func (b *Balancer) addMemberLocked(mc MemberConfig, extra Status) (*Member, error) {
	if b.findMemberLocked(mc.URL) != nil {
		return nil, ErrMemberExists
	}
	if len(b.members) >= b.maxMembers {
		return nil, ErrNoFreeSlot
	}
	m, err := newMember(b, mc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMember, err)
	}
	if len(m.name) > maxWorkerName {
		return nil, fmt.Errorf("%w: name longer than %d characters", ErrInvalidMember, maxWorkerName)
	}
	for _, x := range b.members {
		if x.name == m.name {
			return nil, ErrMemberExists
		}
	}
	m.dynamic = true
	m.status |= extra
	b.members = append(b.members, m)
	return m, nil
}

// RemoveMember removes a member that was added at run time. Requests in
// flight to it finish normally.
func (b *Balancer) RemoveMember(m *Member) error {
	b.mu.Lock()
	defer b.unlock()
	for i, x := range b.members {
		if x != m {
			continue
		}
		if !m.dynamic {
			return ErrNotDynamic
		}
		b.members = append(b.members[:i:i], b.members[i+1:]...)
		return nil
	}
	return ErrNotMember
}

// Dynamic reports whether the member was added at run time.
func (m *Member) Dynamic() bool {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	return m.dynamic
}

// ---- the manager form --------------------------------------------------

// ManagerResult tells what a manager form changed.
type ManagerResult struct {
	// Changed is true when any parameter was applied.
	Changed bool
	// Added is the member added with b_nwrkr, if any.
	Added *Member
}

// ApplyManagerForm applies the balancer-manager's change parameters, after
// the caller has checked the Referer and the nonce, with httpd's parsing and
// validation: worker fields first (when w is not nil), then balancer fields,
// then the member addition (b_nwrkr with b_wyes=1). Invalid values are
// ignored, as httpd ignores them; the only error is a failed member addition
// (ErrMemberExists, ErrNoFreeSlot, ErrInvalidMember), which httpd answers with 400.
func (b *Balancer) ApplyManagerForm(w *Member, p map[string]string) (ManagerResult, error) {
	var res ManagerResult
	b.mu.Lock()
	defer b.unlock()
	if w != nil && w.b == b && b.hasMemberLocked(w) {
		b.applyWorkerFormLocked(w, p, &res)
	}
	b.applyBalancerFormLocked(p, &res)
	if v, ok := p["b_wyes"]; ok && v == "1" {
		if url, ok := p["b_nwrkr"]; ok {
			m, err := b.addMemberLocked(MemberConfig{URL: url}, Disabled)
			if err != nil {
				return res, err
			}
			res.Added, res.Changed = m, true
		}
	}
	return res, nil
}

func (b *Balancer) applyWorkerFormLocked(w *Member, p map[string]string, res *ManagerResult) {
	old := w.status
	if v, ok := p["w_lf"]; ok {
		f := CAtof(v) * 100.0
		if !math.IsNaN(f) && f >= 100 && f < 10001 {
			if lf := int(f); lf >= 100 && lf <= 10000 {
				w.lbfactor = lf
				b.recalcFactorsLocked()
				res.Changed = true
			}
		}
	}
	if v, ok := p["w_wr"]; ok {
		w.setRoute(managerString(v, 64))
		res.Changed = true
	}
	if v, ok := p["w_rr"]; ok {
		w.redirect = managerString(v, 64)
		res.Changed = true
	}
	for i := 0; i < len(ManagerFlags); i++ {
		letter := ManagerFlags[i]
		if v, ok := p["w_status_"+string(letter)]; ok {
			f, _ := FlagForLetter(letter)
			if CAtoi(v) != 0 {
				w.status |= f
			} else {
				w.status &^= f
			}
			res.Changed = true
		}
	}
	if v, ok := p["w_ls"]; ok {
		if n := CAtoi(v); n >= 0 && n <= 99 {
			w.lbset = n
			res.Changed = true
		}
	}
	hc := w.hc
	if v, ok := p["w_hi"]; ok {
		if d, ok := ParseTimeoutParameter(v, "ms"); ok && d >= MinHCInterval {
			hc.Interval = d
		}
	}
	if v, ok := p["w_hp"]; ok {
		if n := CAtoi(v); n >= 1 {
			hc.Passes = n
		}
	}
	if v, ok := p["w_hf"]; ok {
		if n := CAtoi(v); n >= 1 {
			hc.Fails = n
		}
	}
	if v, ok := p["w_hm"]; ok {
		switch u := strings.ToUpper(v); {
		case u == "NONE":
			hc.Method = ""
		case u != "" && ValidHCMethod(u):
			hc.Method = u
		}
	}
	if v, ok := p["w_hu"]; ok {
		hc.URI = managerString(v, 64)
	}
	if v, ok := p["w_he"]; ok {
		// httpd takes the name of a ProxyHCExpr; here hcexpr is the condition
		// itself, so a valid condition is taken and anything else clears it.
		hc.Expr = ""
		if v != "" && len(v) < 256 {
			if _, err := ParseHCExpr(v); err == nil {
				hc.Expr = v
			}
		}
	}
	if m := strings.ToUpper(hc.Method); m == "" || m == "NONE" || m == "TCP" {
		hc.Expr = ""
	}
	if hc != w.hc {
		w.hc = hc
		res.Changed = true
	}
	b.noteChange(w, old, ReasonManager)
}

func (b *Balancer) applyBalancerFormLocked(p map[string]string, res *ManagerResult) {
	if v, ok := p["b_lbm"]; ok && len(v) < 15 && v != b.method.Name() {
		if method, err := MethodByName(v); err == nil {
			b.method = method
			method.Reset(b.members)
			res.Changed = true
		}
	}
	if v, ok := p["b_tmo"]; ok {
		if n := CAtoi(v); n >= 0 && n <= 7200 {
			b.timeout = time.Duration(n) * time.Second
			res.Changed = true
		}
	}
	if v, ok := p["b_max"]; ok {
		if n := CAtoi(v); n >= 0 && n <= 99 {
			if b.maxAttemptsSetLocked() {
				b.maxAttempts = n
			} else {
				shownMaxAttempts.Store(b, n)
			}
			res.Changed = true
		}
	}
	if v, ok := p["b_sforce"]; ok {
		b.nofailover = CAtoi(v) != 0
		res.Changed = true
	}
	if v, ok := p["b_ss"]; ok && v != "" && len(v) < 63 {
		if v == "-" {
			b.setSticky("", "")
		} else {
			b.setSticky(v, v)
			if cookie, path, ok := strings.Cut(v, "|"); ok {
				b.setSticky(cookie, path)
			}
		}
		res.Changed = true
	}
}

// CAtoi is C's atoi: leading white space, an optional sign, then digits up to
// the first non-digit; 0 when there are none. Values beyond the int range are
// clamped.
func CAtoi(s string) int {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n int64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int64(s[i]-'0')
		if n > math.MaxInt32 {
			n = math.MaxInt32 + 1
		}
	}
	if neg {
		n = -n
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	return int(n)
}

// CAtof is C's atof for decimal numbers: leading white space, an optional
// sign, digits with an optional decimal point and exponent, up to the first
// character that does not fit; 0 when there is no number.
func CAtof(s string) float64 {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0
	}
	end := i
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > k {
			end = j
		}
	}
	f, _ := strconv.ParseFloat(s[start:end], 64)
	return f
}

// ParseTimeoutParameter is ap_timeout_parameter_parse: a non-negative integer
// with an optional unit ms, s, mi (minutes) or h; without a unit, defUnit.
func ParseTimeoutParameter(s, defUnit string) (time.Duration, bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	k := j
	for k < len(s) && s[k] >= '0' && s[k] <= '9' {
		k++
	}
	var n int64
	if k > j {
		v, err := strconv.ParseInt(s[i:k], 10, 64)
		if err != nil {
			return 0, false
		}
		n = v
	} else {
		k = i // no digits: strtoi64 leaves endp at the start
	}
	unit := s[k:]
	if unit == "" {
		unit = defUnit
	}
	if n < 0 {
		return 0, false
	}
	const maxN = math.MaxInt64 / int64(time.Hour)
	if n > maxN {
		return 0, false
	}
	switch {
	case strings.HasPrefix(unit, "s"):
		return time.Duration(n) * time.Second, true
	case strings.HasPrefix(unit, "h"):
		return time.Duration(n) * time.Hour, true
	case strings.HasPrefix(unit, "ms"):
		return time.Duration(n) * time.Millisecond, true
	case strings.HasPrefix(unit, "mi"):
		return time.Duration(n) * time.Minute, true
	}
	return 0, false
}

// ---- snapshots for persistence -----------------------------------------

// Snapshot is the run-time state of a balancer worth keeping across a
// restart (httpd's BalancerPersist): the balancer parameters the manager
// edits, each member's parameters and manager flags, the members added at run
// time, and the configuration all this was made under, so that a restore can
// tell what the configuration changed since.
type Snapshot struct {
	Name string `json:"name"`
	// Configured holds the balancer parameters as configured when saved.
	Configured SnapshotParams `json:"configured"`
	// Params holds the balancer parameters in force when saved.
	Params  SnapshotParams   `json:"params"`
	Members []SnapshotMember `json:"members"`
}

// SnapshotParams are balancer parameters that the manager can change.
type SnapshotParams struct {
	LBMethod      string        `json:"lbmethod"`
	StickySession string        `json:"stickysession"`
	StickyPath    string        `json:"stickypath"`
	NoFailover    bool          `json:"nofailover"`
	Timeout       time.Duration `json:"timeout"`
	MaxAttempts   int           `json:"maxattempts"`
	// Nonce is kept unless configured: httpd keeps it across restarts only
	// with BalancerPersist.
	Nonce string `json:"nonce"`
}

// SnapshotMember is one member's saved state.
type SnapshotMember struct {
	Name string `json:"name"`
	// Config is the member's configuration when saved (for a member added at
	// run time: its URL).
	Config   MemberConfig `json:"config"`
	Dynamic  bool         `json:"dynamic,omitempty"`
	LBFactor int          `json:"lbfactor"`
	LBSet    int          `json:"lbset"`
	Route    string       `json:"route,omitempty"`
	Redirect string       `json:"redirect,omitempty"`
	// Flags holds the manager flags (I N D H R S C) that are set, as letters.
	Flags string      `json:"flags"`
	HC    HealthCheck `json:"hc"`
}

// managerMask is the set of flags the manager controls.
const managerMask = IgnoreErrors | Drain | Disabled | HotStandby | HotSpare | Stopped | HCFail

func configuredParams(cfg Config) SnapshotParams {
	p := SnapshotParams{
		LBMethod: cfg.LBMethod, StickySession: cfg.StickySession, StickyPath: cfg.StickyPath,
		NoFailover: cfg.NoFailover, Timeout: cfg.Timeout, MaxAttempts: cfg.MaxAttempts, Nonce: cfg.Nonce,
	}
	if p.LBMethod == "" {
		p.LBMethod = "byrequests"
	}
	if p.StickySession != "" && p.StickyPath == "" {
		p.StickyPath = p.StickySession
	}
	if !cfg.NonceSet {
		p.Nonce = ""
	}
	if !cfg.MaxAttemptsSet {
		p.MaxAttempts = -1
	}
	return p
}

// Snapshot returns the balancer's state for persistence.
func (b *Balancer) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Snapshot{
		Name:       b.name,
		Configured: configuredParams(b.cfg),
		Params: SnapshotParams{
			LBMethod: b.method.Name(), StickySession: b.sticky, StickyPath: b.stickyPath,
			NoFailover: b.nofailover, Timeout: b.timeout, MaxAttempts: b.maxAttempts, Nonce: b.nonce,
		},
	}
	if !b.maxAttemptsSetLocked() {
		s.Params.MaxAttempts = -1
		if n, ok := shownMaxAttempts.Load(b); ok {
			s.Params.MaxAttempts = n.(int)
		}
	}
	for _, m := range b.members {
		s.Members = append(s.Members, SnapshotMember{
			Name: m.name, Config: m.cfg, Dynamic: m.dynamic, LBFactor: m.lbfactor, LBSet: m.lbset,
			Route: m.route, Redirect: m.redirect, Flags: (m.status & managerMask).Letters(), HC: m.hc,
		})
	}
	return s
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	// Params: the balancer parameters were restored (the configuration of the
	// balancer had not changed since the save).
	Params bool
	// Restored lists the configured members whose saved state was applied;
	// Added the members added at run time that were restored; Skipped the
	// saved members left alone because their configuration changed, they are
	// gone from it, or they could not be added back.
	Restored, Added, Skipped []string
}

// Restore applies a saved snapshot to a balancer just built from its
// configuration. Where the configuration changed since the save, the
// configuration wins: for the balancer parameters if any configured balancer
// parameter changed, and for each member whose configuration changed.
// Members added at run time are added back (within the free slots).
func (b *Balancer) Restore(s Snapshot) RestoreReport {
	var rep RestoreReport
	b.mu.Lock()
	defer b.unlock()
	rep.Params = b.restoreParamsLocked(s)
	byName := make(map[string]*Member, len(b.members))
	for _, m := range b.members {
		byName[m.name] = m
	}
	for _, sm := range s.Members {
		m := byName[sm.Name]
		switch {
		case m != nil && !sm.Dynamic && !m.dynamic && memberConfigEqual(m.cfg, sm.Config):
			b.restoreMemberLocked(m, sm)
			rep.Restored = append(rep.Restored, sm.Name)
		case m == nil && sm.Dynamic:
			nm, err := b.addMemberLocked(sm.Config, 0)
			if err != nil || nm.name != sm.Name {
				if nm != nil {
					b.members = b.members[:len(b.members)-1]
				}
				rep.Skipped = append(rep.Skipped, sm.Name)
				continue
			}
			b.restoreMemberLocked(nm, sm)
			rep.Added = append(rep.Added, sm.Name)
		default:
			rep.Skipped = append(rep.Skipped, sm.Name)
		}
	}
	return rep
}

// RestoreParams applies only the balancer parameters of a snapshot (lbmethod,
// stickysession, nofailover, timeout, maxattempts, nonce), and only if the
// balancer's configured parameters are the same as when the snapshot was
// taken. It reports whether it applied them. A config reload uses it to keep
// parameters changed at run time.
func (b *Balancer) RestoreParams(s Snapshot) bool {
	b.mu.Lock()
	defer b.unlock()
	return b.restoreParamsLocked(s)
}

func (b *Balancer) restoreParamsLocked(s Snapshot) bool {
	if s.Configured != configuredParams(b.cfg) {
		return false
	}
	p := s.Params
	if method, err := MethodByName(p.LBMethod); err == nil && method.Name() != b.method.Name() {
		b.method = method
		method.Reset(b.members)
	}
	if len(p.StickySession) < 64 && len(p.StickyPath) < 64 {
		b.setSticky(p.StickySession, p.StickyPath)
	}
	b.nofailover = p.NoFailover
	if p.Timeout >= 0 && p.Timeout <= 7200*time.Second {
		b.timeout = p.Timeout
	}
	if p.MaxAttempts >= 0 && p.MaxAttempts <= 99 {
		if b.maxAttemptsSetLocked() {
			b.maxAttempts = p.MaxAttempts
		} else {
			shownMaxAttempts.Store(b, p.MaxAttempts)
		}
	}
	if !b.cfg.NonceSet && p.Nonce != "" && len(p.Nonce) <= 36 {
		b.nonce = p.Nonce
	}
	return true
}

func (b *Balancer) restoreMemberLocked(m *Member, sm SnapshotMember) {
	if sm.LBFactor >= 100 && sm.LBFactor <= 10000 {
		m.lbfactor = sm.LBFactor
	}
	if sm.LBSet >= 0 && sm.LBSet <= 99 {
		m.lbset = sm.LBSet
	}
	if len(sm.Route) < 64 {
		m.setRoute(sm.Route)
	}
	if len(sm.Redirect) < 64 {
		m.redirect = sm.Redirect
	}
	old := m.status
	st := m.status &^ managerMask
	for i := 0; i < len(sm.Flags); i++ {
		if f, err := managerFlag(sm.Flags[i]); err == nil {
			st |= f
		}
	}
	m.status = st
	if sm.HC.Validate() == nil {
		m.hc = sm.HC
	}
	b.noteChange(m, old, ReasonManager)
}
