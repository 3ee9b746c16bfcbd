package balancer

// Hooks for callers that keep a member's availability and load elsewhere: the
// lb_policy modules, where Caddy's reverse_proxy owns health and in-flight
// counts.

// SyncExternal sets, under one lock, each member's HcFl flag from down(i) and
// its busy count from busy(i), i being the member's index in configuration
// order. Caddy's own health checks take the place of mod_proxy_hcheck here.
func (b *Balancer) SyncExternal(down func(i int) bool, busy func(i int) int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.members {
		if down(i) {
			m.status |= HCFail
		} else {
			m.status &^= HCFail
		}
		if busy != nil {
			m.busy.Store(busy(i))
		}
	}
}

// Index is the member's position in configuration order, -1 if it left the balancer.
func (m *Member) Index() int {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	if i := m.index; i < len(m.b.members) && m.b.members[i] == m {
		return i // where it was last found: members rarely move
	}
	for i, o := range m.b.members {
		if o == m {
			m.index = i
			return i
		}
	}
	return -1
}
