package balancer

import (
	"fmt"
	"strings"
)

// Status is a member's set of status flags, httpd's PROXY_WORKER_* bits
// (mod_proxy.h). The bit values are httpd's own.
type Status uint16

// The twelve flags of httpd 2.4, with the letter used by `status=` and the
// balancer-manager, and the token shown in the status string.
const (
	Initialized  Status = 0x0001 // O, "Init"
	IgnoreErrors Status = 0x0002 // I, "Ign"
	Drain        Status = 0x0004 // N, "Drn"
	Generic      Status = 0x0008 // G, "Gen"
	InShutdown   Status = 0x0010 // U, "Shut"
	Disabled     Status = 0x0020 // D, "Dis"
	Stopped      Status = 0x0040 // S, "Stop"
	InError      Status = 0x0080 // E, "Err"
	HotStandby   Status = 0x0100 // H, "Stby"
	Free         Status = 0x0200 // F, "Free"
	HCFail       Status = 0x0400 // C, "HcFl"
	HotSpare     Status = 0x0800 // R, "Spar"
)

// unusableMask is PROXY_WORKER_NOT_USABLE_BITMAP: any of these makes a member unusable.
const unusableMask = InShutdown | Disabled | Stopped | InError | HCFail

type flagInfo struct {
	flag   Status
	letter byte
	token  string
}

// flagTable is in the order httpd prints the status string (ap_proxy_parse_wstatus).
var flagTable = [...]flagInfo{
	{Initialized, 'O', "Init "},
	{IgnoreErrors, 'I', "Ign "},
	{Drain, 'N', "Drn "},
	{Generic, 'G', "Gen "},
	{InShutdown, 'U', "Shut "},
	{Disabled, 'D', "Dis "},
	{Stopped, 'S', "Stop "},
	{InError, 'E', "Err "},
	{HotStandby, 'H', "Stby "},
	{HotSpare, 'R', "Spar "},
	{Free, 'F', "Free "},
	{HCFail, 'C', "HcFl "},
}

// FlagForLetter returns the flag for a status letter (case-insensitive).
func FlagForLetter(c byte) (Status, bool) {
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	for _, f := range flagTable {
		if f.letter == c {
			return f.flag, true
		}
	}
	return 0, false
}

// Usable reports PROXY_WORKER_IS_USABLE: initialized and none of U, D, S, E, C.
func (s Status) Usable() bool {
	return s&Initialized != 0 && s&unusableMask == 0
}

// Has reports whether every flag of f is set.
func (s Status) Has(f Status) bool { return s&f == f }

// String renders httpd's status string (ap_proxy_parse_wstatus): the token of
// every set flag in table order, "??? " when none is set, then "Ok " when the
// member is usable. The result always ends with a space, e.g. "Init Ok ".
func (s Status) String() string {
	var b strings.Builder
	for _, f := range flagTable {
		if s&f.flag != 0 {
			b.WriteString(f.token)
		}
	}
	if b.Len() == 0 {
		b.WriteString("??? ")
	}
	if s.Usable() {
		b.WriteString("Ok ")
	}
	return b.String()
}

// Letters renders the set flags as letters in table order, e.g. "OH".
func (s Status) Letters() string {
	var b strings.Builder
	for _, f := range flagTable {
		if s&f.flag != 0 {
			b.WriteByte(f.letter)
		}
	}
	return b.String()
}

// ParseStatus applies an httpd `status=` value to cur (set_worker_param, key
// "status"): walking left to right, '+' switches to setting, '-' to clearing,
// and every other character is a flag letter (case-insensitive) set or cleared
// in the current mode; the mode starts as setting. An unknown letter, or a value
// ending in '+' or '-', is an error. httpd hands the character after a sign
// straight to ap_proxy_set_wstatus, so two signs in a row ("+-H") are an error
// as well. An empty value changes nothing.
func ParseStatus(value string, cur Status) (Status, error) {
	set := true
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch c {
		case '+':
			set = true
			if i == len(value)-1 {
				return cur, fmt.Errorf("unknown status parameter option %q: ends with '+'", value)
			}
			if n := value[i+1]; n == '+' || n == '-' {
				return cur, fmt.Errorf("unknown status parameter option %q: a flag letter must follow '+'", value)
			}
		case '-':
			set = false
			if i == len(value)-1 {
				return cur, fmt.Errorf("unknown status parameter option %q: ends with '-'", value)
			}
			if n := value[i+1]; n == '+' || n == '-' {
				return cur, fmt.Errorf("unknown status parameter option %q: a flag letter must follow '-'", value)
			}
		default:
			f, ok := FlagForLetter(c)
			if !ok {
				return cur, fmt.Errorf("unknown status parameter option %q: no flag %q (valid: +/- and O I N G U D S E H F C R)", value, c)
			}
			if set {
				cur |= f
			} else {
				cur &^= f
			}
		}
	}
	return cur, nil
}
