package balancer

import (
	"net/netip"
	"strings"
)

// growth_allow: the hosts members added at run time may point at. The
// engine keeps and checks the list; the plugin's member policy (which also
// refuses this Caddy's own listeners) resolves names and asks GrowthAllows.

// allowList is a parsed growth_allow.
type allowList struct {
	names    []string // lower-cased host names
	prefixes []netip.Prefix
}

// parseAllowList reads growth_allow entries: host names, IP addresses or
// CIDR ranges.
func parseAllowList(entries []string) (allowList, error) {
	var l allowList
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			l.prefixes = append(l.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			l.prefixes = append(l.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if !validHostName(e) {
			return l, paramErr("growth_allow", e)
		}
		l.names = append(l.names, strings.ToLower(e))
	}
	return l, nil
}

// CheckGrowthAllow checks growth_allow entries: host names, IP addresses or
// CIDR ranges.
func CheckGrowthAllow(entries []string) error {
	_, err := parseAllowList(entries)
	return err
}

// validHostName reports whether s is a DNS host name: labels of letters,
// digits and '-' (and '_'), separated by dots.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// GrowthAllows reports whether a member added at run time may point at host,
// whose addresses are ips (a host that is an IP address passes itself): the
// balancer has no growth_allow, or host is one of its names, or every
// address is within one of its ranges.
func (b *Balancer) GrowthAllows(host string, ips []netip.Addr) bool {
	b.mu.Lock()
	l := b.allow
	b.mu.Unlock()
	if len(l.names) == 0 && len(l.prefixes) == 0 {
		return true
	}
	for _, n := range l.names {
		if strings.EqualFold(n, host) {
			return true
		}
	}
	if len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		ok := false
		for _, p := range l.prefixes {
			if p.Contains(ip.Unmap()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
