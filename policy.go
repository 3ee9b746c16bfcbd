package caddybalancer

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
)

func init() {
	caddy.RegisterModule(new(ByRequestsSelection))
	caddy.RegisterModule(new(ByBusynessSelection))
	caddy.RegisterModule(new(ByTrafficSelection))
}

// PolicyMember gives one upstream of a plain reverse_proxy the balancer
// attributes of an httpd BalancerMember.
type PolicyMember struct {
	// Address is the upstream's dial address as written in `to` (host:port).
	Address string `json:"address"`
	// LoadFactor is the weight, 1 to 100. Default 1.
	LoadFactor float64 `json:"loadfactor,omitempty"`
	// LBSet is the tier, 0 to 99; lower sets are used first.
	LBSet int `json:"lbset,omitempty"`
	// Route is the member's route (shown for reference; the lb_policy form has
	// no sticky sessions: use the balancer handler for those).
	Route string `json:"route,omitempty"`
	// Status holds httpd flags: +H (hot standby), +R (hot spare), +D ...
	Status string `json:"status,omitempty"`
}

// policy is an httpd lbmethod as a reverse_proxy selection policy. Upstreams
// that Caddy considers unavailable (its health checks, max_requests) are
// treated as httpd treats a member that fails its health check (HcFl).
type policy struct {
	// Members holds balancer attributes by upstream address; upstreams not
	// listed are regular members with loadfactor 1 in lbset 0.
	Members []PolicyMember `json:"members,omitempty"`

	method string
	byAddr map[string]balancer.MemberConfig

	mu      sync.Mutex
	bal     *balancer.Balancer
	poolPtr *reverseproxy.Upstream
	poolLen int
}

func (p *policy) provision(method string) error {
	p.method = method
	p.byAddr = make(map[string]balancer.MemberConfig, len(p.Members))
	for _, pm := range p.Members {
		if pm.Address == "" {
			return fmt.Errorf("lb_policy %s: balancer_member needs an address", method)
		}
		mc, err := config.Member{URL: "http://" + pm.Address, LoadFactor: pm.LoadFactor, LBSet: pm.LBSet, Route: pm.Route, Status: pm.Status}.Engine()
		if err != nil {
			return fmt.Errorf("lb_policy %s: balancer_member %s: %w", method, pm.Address, err)
		}
		pm.Address = normalizeAddr(pm.Address)
		if _, dup := p.byAddr[pm.Address]; dup {
			return fmt.Errorf("lb_policy %s: balancer_member %s is given twice", method, pm.Address)
		}
		p.byAddr[pm.Address] = mc
	}
	return nil
}

// balancerFor returns the engine balancer for this pool, building it again when
// the pool changed. Caller holds p.mu.
func (p *policy) balancerFor(pool reverseproxy.UpstreamPool) (*balancer.Balancer, error) {
	if p.bal != nil && p.poolLen == len(pool) && p.poolPtr == pool[0] {
		return p.bal, nil
	}
	cfg := balancer.Config{Name: "lb_policy", LBMethod: p.method, ForceRecovery: true}
	for i, u := range pool {
		mc, ok := p.byAddr[u.Dial]
		if !ok {
			mc = balancer.MemberConfig{}
		}
		// Members are keyed by position: the same address may appear twice.
		mc.URL = fmt.Sprintf("http://member-%d.invalid", i)
		cfg.Members = append(cfg.Members, mc)
	}
	b, err := balancer.New(cfg)
	if err != nil {
		return nil, err
	}
	p.bal, p.poolPtr, p.poolLen = b, pool[0], len(pool)
	return b, nil
}

func (p *policy) selectUpstream(pool reverseproxy.UpstreamPool, r *http.Request) *reverseproxy.Upstream {
	u, _ := p.pick(pool, r)
	return u
}

// pick selects an upstream and returns it with its engine member.
func (p *policy) pick(pool reverseproxy.UpstreamPool, r *http.Request) (*reverseproxy.Upstream, *balancer.Member) {
	if len(pool) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	b, err := p.balancerFor(pool)
	p.mu.Unlock()
	if err != nil {
		return nil, nil
	}
	b.SyncExternal(
		func(i int) bool { return !pool[i].Available() },
		func(i int) int64 { return int64(pool[i].NumRequests()) },
	)
	pick, err := b.Pick(r.Context(), nil)
	if err != nil {
		return nil, nil
	}
	// Caddy counts the request in flight itself; the engine's busy count is
	// taken from it on every selection.
	pick.Member.Release()
	i := pick.Member.Index()
	if i < 0 || i >= len(pool) {
		return nil, nil
	}
	return pool[i], pick.Member
}

// ByRequestsSelection is httpd's lbmethod=byrequests as an lb_policy:
// weighted round robin on loadfactor with lbsets, hot spares and standbys.
type ByRequestsSelection struct{ policy }

// ByBusynessSelection is httpd's lbmethod=bybusyness as an lb_policy: fewest
// requests in flight, ties broken as byrequests does.
type ByBusynessSelection struct{ policy }

// ByTrafficSelection is httpd's lbmethod=bytraffic as an lb_policy. A
// selection policy does not see the bytes a request moves, so it balances on
// the request bodies' Content-Length it sees; use the balancer handler, which
// counts every byte, for true bytraffic.
type ByTrafficSelection struct{ policy }

// CaddyModule returns the Caddy module information.
func (*ByRequestsSelection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.selection_policies.byrequests", New: func() caddy.Module { return new(ByRequestsSelection) }}
}

// CaddyModule returns the Caddy module information.
func (*ByBusynessSelection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.selection_policies.bybusyness", New: func() caddy.Module { return new(ByBusynessSelection) }}
}

// CaddyModule returns the Caddy module information.
func (*ByTrafficSelection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.selection_policies.bytraffic", New: func() caddy.Module { return new(ByTrafficSelection) }}
}

// Provision validates the member attributes.
func (s *ByRequestsSelection) Provision(caddy.Context) error { return s.provision("byrequests") }

// Provision validates the member attributes.
func (s *ByBusynessSelection) Provision(caddy.Context) error { return s.provision("bybusyness") }

// Provision validates the member attributes.
func (s *ByTrafficSelection) Provision(caddy.Context) error { return s.provision("bytraffic") }

// Select implements reverseproxy.Selector.
func (s *ByRequestsSelection) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	return s.selectUpstream(pool, r)
}

// Select implements reverseproxy.Selector.
func (s *ByBusynessSelection) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	return s.selectUpstream(pool, r)
}

// Select implements reverseproxy.Selector.
func (s *ByTrafficSelection) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	u, m := s.pick(pool, r)
	if m != nil && r.ContentLength > 0 {
		m.AddTraffic(r.ContentLength, 0)
	}
	return u
}

// normalizeAddr turns an upstream as written in `to` or in balancer_member
// (host:port, or scheme://host:port) into reverse_proxy's dial address.
func normalizeAddr(a string) string {
	if _, rest, ok := strings.Cut(a, "://"); ok {
		a = strings.TrimSuffix(rest, "/")
	}
	return a
}

// policyMemberKeys are the BalancerMember keys that apply to an lb_policy.
var policyMemberKeys = map[string]bool{"loadfactor": true, "lbset": true, "route": true, "status": true}

// unmarshal reads
//
//	lb_policy byrequests|bybusyness|bytraffic {
//		balancer_member <address> [loadfactor=N] [lbset=N] [route=R] [status=+H]
//		balancer_member <address> {
//			loadfactor 2
//			status     +R
//		}
//	}
func (p *policy) unmarshal(d *caddyfile.Dispenser) error {
	d.Next() // the policy name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "balancer_member" {
			return d.Errf("lb_policy: unknown subdirective %q (want balancer_member)", d.Val())
		}
		if !d.NextArg() {
			return d.Errf("balancer_member: missing upstream address")
		}
		addr := normalizeAddr(d.Val())
		if seen[addr] {
			return d.Errf("balancer_member %s: given twice", addr)
		}
		seen[addr] = true
		var m config.Member
		set := func(key, val string) error {
			key = strings.ToLower(key)
			if !policyMemberKeys[key] {
				return d.Errf("balancer_member %s: %s does not apply to an lb_policy member (loadfactor, lbset, route, status do)", addr, key)
			}
			if err := m.SetParam(key, val); err != nil {
				return d.Errf("balancer_member %s: %v", addr, err)
			}
			return nil
		}
		for d.NextArg() {
			k, v, ok := strings.Cut(d.Val(), "=")
			if !ok {
				return d.Errf("balancer_member %s: want key=value, got %q", addr, d.Val())
			}
			if err := set(k, v); err != nil {
				return err
			}
		}
		for n := d.Nesting(); d.NextBlock(n); {
			key := d.Val()
			if !d.NextArg() {
				return d.Errf("balancer_member %s: %s needs a value", addr, key)
			}
			if err := set(key, d.Val()); err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		}
		p.Members = append(p.Members, PolicyMember{Address: addr, LoadFactor: m.LoadFactor, LBSet: m.LBSet, Route: m.Route, Status: m.Status})
	}
	return nil
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens.
func (s *ByRequestsSelection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { return s.unmarshal(d) }

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens.
func (s *ByBusynessSelection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { return s.unmarshal(d) }

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens.
func (s *ByTrafficSelection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { return s.unmarshal(d) }

// Interface guards
var (
	_ reverseproxy.Selector = (*ByRequestsSelection)(nil)
	_ reverseproxy.Selector = (*ByBusynessSelection)(nil)
	_ reverseproxy.Selector = (*ByTrafficSelection)(nil)
	_ caddy.Provisioner     = (*ByRequestsSelection)(nil)
	_ caddy.Provisioner     = (*ByBusynessSelection)(nil)
	_ caddy.Provisioner     = (*ByTrafficSelection)(nil)

	_ caddyfile.Unmarshaler = (*ByRequestsSelection)(nil)
	_ caddyfile.Unmarshaler = (*ByBusynessSelection)(nil)
	_ caddyfile.Unmarshaler = (*ByTrafficSelection)(nil)
)
