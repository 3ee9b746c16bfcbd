package manager

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// C-style numerics: the manager's form values are read with C's atoi and atof
// and apr's ap_timeout_parameter_parse, as httpd's
// balancer_process_balancer_worker reads them, so that "2abc", " 7" or "1e2"
// mean what they mean to httpd.

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

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
