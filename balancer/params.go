package balancer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The limits of every balancer and member parameter, and the one check of
// each rule. Every front door (Caddyfile, JSON config, JSON admin API,
// balancer-manager form, httpd adapter, persisted state, fleet sync) parses
// its own syntax and then calls these checks; it only adds where the value came
// from (file:line, form key, JSON field). The ranges are httpd's
// (set_balancer_param and set_worker_param in mod_proxy.c for the
// configuration, balancer_process_balancer_worker in mod_proxy_balancer.c for
// run-time changes); docs/behaviour.md §6 and §7.3 list them.
const (
	// MaxNameLen is the longest balancer name, without "balancer://".
	MaxNameLen = 95
	// MinLoadFactor and MaxLoadFactor bound loadfactor; decimals are kept
	// ×100 as httpd keeps them (lbfactor 100 … 10000).
	MinLoadFactor = 1
	MaxLoadFactor = 100
	// MaxLBSet is the highest lbset; lbsets start at 0.
	MaxLBSet = 99
	// MaxRouteLen is the longest route or redirect (httpd's char[64]).
	MaxRouteLen = 63
	// MaxStickyLen is the longest sticky session cookie or URL parameter name.
	MaxStickyLen = 63
	// MaxHCURILen is the longest hcuri.
	MaxHCURILen = 63
	// MaxGrowth is the most member slots that can be reserved for members
	// added at run time.
	MaxGrowth = 100
	// MaxNonceLen is the longest manager nonce (a UUID's length).
	MaxNonceLen = 36
	// MaxRuntimeMaxAttempts is the highest maxattempts a run-time change
	// (manager, JSON API) accepts; the configuration accepts any
	// non-negative number, as httpd does.
	MaxRuntimeMaxAttempts = 99
	// MaxRuntimeTimeout is the longest balancer timeout a run-time change
	// accepts.
	MaxRuntimeTimeout = 7200 * time.Second
	// MaxMemberNameLen is the longest member URL (proxy_worker_shared.name_ex).
	MaxMemberNameLen = 383
	// MaxSlowStart is the longest slow-start window (slowstart.go); it keeps
	// the ramp's arithmetic (lbfactor × elapsed nanoseconds) within int64.
	MaxSlowStart = 24 * time.Hour
	// MaxDrainWait is the longest a drain request waits for a member to
	// empty (drain.go); it bounds the admin connections a script holds.
	MaxDrainWait = time.Hour
)

// ParamError is a parameter value that breaks its rule. Its message is the
// rule and the value: `loadfactor must be a number from 1 to 100, not 150`.
type ParamError struct {
	// Param is the parameter's name, httpd's (loadfactor, lbset, route, ...).
	Param string
	// Rule is what the value must be ("a number from 1 to 100").
	Rule string
	// Value is the offending value as written, quoted when it is a string.
	Value string
}

func (e *ParamError) Error() string {
	if e.Value == "" {
		return e.Param + " must be " + e.Rule
	}
	return e.Param + " must be " + e.Rule + ", not " + e.Value
}

// The rule of each parameter, stated once. The keys are the parameter names,
// with "runtime " before those whose run-time range differs from the
// configuration's.
var rules = map[string]string{
	"balancer name":       "a name of 1 to 95 characters without white space, '/', ':', '?' or '#'",
	"lbmethod":            "byrequests, bytraffic or bybusyness",
	"stickysession":       "a cookie name and an optional |<URL parameter>, each shorter than 64 characters",
	"stickysessionsep":    "a single character or Off",
	"maxattempts":         "a number of 0 or more",
	"runtime maxattempts": "a number from 0 to 99",
	"timeout":             "a positive duration (a number of seconds or a duration such as 1500ms)",
	"runtime timeout":     "a duration from 0 to 7200s",
	"failonstatus":        "HTTP response codes from 100 to 599",
	"growth":              "a number from 1 to 100",
	"growth_allow":        "host names, IP addresses or CIDR ranges (10.0.0.0/8)",
	"nonce":               "at most 36 characters, or None",
	"loadfactor":          "a number from 1 to 100",
	"lbset":               "a number from 0 to 99",
	"route":               "shorter than 64 characters",
	"redirect":            "shorter than 64 characters",
	"retry":               "a duration of 0 or more (a number of seconds or a duration such as 500ms)",
	"hcmethod":            "one of NONE, TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11",
	"hcinterval":          "at least 100ms (a number of seconds or a duration such as 500ms)",
	"hcpasses":            "a number of 0 or more",
	"hcfails":             "a number of 0 or more",
	"hcuri":               "shorter than 64 characters",
	"scolonpathdelim":     "On or Off",
	"nofailover":          "On or Off",
	"failontimeout":       "On or Off",
	"forcerecovery":       "On or Off",
	"persist":             "On or Off",
	"slowstart":           "a duration from 0 to 24h (a number of seconds or a duration such as 30s; 0 is off)",
	"wait":                "a duration from 0 to 1h (a number of seconds or a duration such as 30s)",
}

// Invalid returns the error for a value of param that breaks its rule, or
// could not be read at all ("abc" for a number): front doors that parse a
// parameter from text report a parse failure with it, so that the message
// is the same rule however the value was wrong. param is a parameter name
// (loadfactor, lbset, timeout, ...); value is quoted.
func Invalid(param, value string) *ParamError {
	return invalid(param, strconv.Quote(value))
}

func invalid(param, value string) *ParamError {
	rule, ok := rules[param]
	if !ok {
		panic("balancer: no rule for parameter " + param)
	}
	return &ParamError{Param: strings.TrimPrefix(param, "runtime "), Rule: rule, Value: value}
}

func paramErr(param string, value any) *ParamError {
	var v string
	switch x := value.(type) {
	case string:
		v = strconv.Quote(x)
	case time.Duration:
		v = x.String()
	default:
		v = fmt.Sprint(x)
	}
	return invalid(param, v)
}

// CheckName checks a balancer name (without "balancer://").
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || strings.ContainsAny(name, " \t\r\n/:?#") {
		return paramErr("balancer name", name)
	}
	return nil
}

// LoadFactor checks a loadfactor and returns it ×100 (httpd's lbfactor):
// 1.5 is 150. Decimals beyond the second are dropped, as httpd drops them.
func LoadFactor(f float64) (int, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 2*MaxLoadFactor {
		return 0, paramErr("loadfactor", f)
	}
	lf := int(f * 100)
	if err := CheckLBFactor(lf); err != nil {
		return 0, paramErr("loadfactor", f)
	}
	return lf, nil
}

// CheckLBFactor checks a loadfactor given ×100 (100 … 10000).
func CheckLBFactor(lf int) error {
	if lf < MinLoadFactor*100 || lf > MaxLoadFactor*100 {
		return paramErr("loadfactor", float64(lf)/100)
	}
	return nil
}

// CheckLBSet checks an lbset.
func CheckLBSet(n int) error {
	if n < 0 || n > MaxLBSet {
		return paramErr("lbset", n)
	}
	return nil
}

// CheckRoute checks a route or a redirect (param names which).
func CheckRoute(param, route string) error {
	if len(route) > MaxRouteLen {
		return paramErr(param, route)
	}
	return nil
}

// CheckStickySession checks the sticky session cookie and URL parameter names.
func CheckStickySession(cookie, path string) error {
	if len(cookie) > MaxStickyLen || len(path) > MaxStickyLen {
		return paramErr("stickysession", cookie+"|"+path)
	}
	return nil
}

// CheckMaxAttempts checks a configured maxattempts.
func CheckMaxAttempts(n int) error {
	if n < 0 {
		return paramErr("maxattempts", n)
	}
	return nil
}

// CheckTimeout checks a balancer timeout (the wait for a usable member) or a
// member timeout (the wait for its response headers), when one is given.
func CheckTimeout(d time.Duration) error {
	if d <= 0 {
		return paramErr("timeout", d)
	}
	return nil
}

// CheckFailOnStatus checks one failonstatus code.
func CheckFailOnStatus(code int) error {
	if code < 100 || code > 599 {
		return paramErr("failonstatus", code)
	}
	return nil
}

// CheckGrowth checks growth, the member slots for members added at run
// time, when it is given (0 means none).
func CheckGrowth(n int) error {
	if n < 1 || n > MaxGrowth {
		return paramErr("growth", n)
	}
	return nil
}

// CheckNonce checks a configured manager nonce.
func CheckNonce(nonce string) error {
	if len(nonce) > MaxNonceLen {
		return paramErr("nonce", nonce)
	}
	return nil
}

// CheckRetry checks a member's retry period; 0 retries on every request.
func CheckRetry(d time.Duration) error {
	if d < 0 {
		return paramErr("retry", d)
	}
	return nil
}

// CheckRuntimeMaxAttempts checks a maxattempts changed at run time.
func CheckRuntimeMaxAttempts(n int) error {
	if n < 0 || n > MaxRuntimeMaxAttempts {
		return paramErr("runtime maxattempts", n)
	}
	return nil
}

// CheckRuntimeTimeout checks a balancer timeout changed at run time.
func CheckRuntimeTimeout(d time.Duration) error {
	if d < 0 || d > MaxRuntimeTimeout {
		return paramErr("runtime timeout", d)
	}
	return nil
}

// CheckSlowStart checks a slow-start window, balancer-wide or a member's
// own; 0 turns slow start off.
func CheckSlowStart(d time.Duration) error {
	if d < 0 || d > MaxSlowStart {
		return paramErr("slowstart", d)
	}
	return nil
}

// CheckDrainWait checks how long a drain request is to wait for the member
// to empty.
func CheckDrainWait(d time.Duration) error {
	if d < 0 || d > MaxDrainWait {
		return paramErr("wait", d)
	}
	return nil
}

// validate checks a balancer configuration, with the rules above.
func (cfg *Config) validate() error {
	if err := CheckName(cfg.Name); err != nil {
		return err
	}
	if _, err := MethodByName(cfg.LBMethod); err != nil {
		return err
	}
	if err := CheckStickySession(cfg.StickySession, cfg.StickyPath); err != nil {
		return err
	}
	if err := CheckMaxAttempts(cfg.MaxAttempts); err != nil {
		return err
	}
	if cfg.Timeout != 0 {
		if err := CheckTimeout(cfg.Timeout); err != nil {
			return err
		}
	}
	for _, c := range cfg.FailOnStatus {
		if err := CheckFailOnStatus(c); err != nil {
			return err
		}
	}
	if cfg.Growth != 0 {
		if err := CheckGrowth(cfg.Growth); err != nil {
			return err
		}
	}
	if _, err := parseAllowList(cfg.GrowthAllow); err != nil {
		return err
	}
	if err := CheckSlowStart(cfg.SlowStart); err != nil {
		return err
	}
	return CheckNonce(cfg.Nonce)
}

// validate checks a member configuration, with the rules above.
func (mc MemberConfig) validate() error {
	if mc.LoadFactor != 0 {
		if err := CheckLBFactor(mc.LoadFactor); err != nil {
			return err
		}
	}
	if err := CheckLBSet(mc.LBSet); err != nil {
		return err
	}
	if err := CheckRoute("route", mc.Route); err != nil {
		return err
	}
	if err := CheckRoute("redirect", mc.Redirect); err != nil {
		return err
	}
	if mc.Retry != nil {
		if err := CheckRetry(*mc.Retry); err != nil {
			return err
		}
	}
	if mc.Timeout != 0 {
		if err := CheckTimeout(mc.Timeout); err != nil {
			return err
		}
	}
	if mc.SlowStart != nil {
		if err := CheckSlowStart(*mc.SlowStart); err != nil {
			return err
		}
	}
	return mc.HealthCheck.Validate()
}
