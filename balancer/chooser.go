package balancer

import "time"

// bestWorker is proxy_balancer_get_best_worker (proxy_util.c): lbsets from the
// lowest; within a set the regular usable members compete through the
// lbmethod, hot spares are admitted one for one for unusable or draining
// regular members, and hot standbys compete only when the set produced no
// winner. Draining members are never chosen here. Ties go to the first member
// in configuration order because the comparisons are strict. Caller holds the
// balancer lock.
func bestWorker(members []*Member, method Method, now time.Time) *Member {
	var (
		best   *Member
		st     selection
		maxSet int
		// scratch space for the common case, to avoid allocating
		spareBuf, standbyBuf [8]*Member
	)
	for set := 0; best == nil && set <= maxSet; set++ {
		unusable := 0
		spares, standbys := spareBuf[:0], standbyBuf[:0]
		for _, m := range members {
			if m.lbset > maxSet {
				maxSet = m.lbset
			}
			if m.lbset != set {
				continue
			}
			if m.status&Drain != 0 {
				if m.status&(HotSpare|HotStandby) == 0 {
					unusable++
				}
				continue
			}
			if !m.isUsable() {
				m.retryWorker(now)
			}
			switch {
			case m.status&HotSpare != 0:
				if m.isUsable() {
					spares = append(spares, m)
				}
			case m.status&HotStandby != 0:
				if m.isUsable() {
					standbys = append(standbys, m)
				}
			case m.isUsable():
				if method.isBest(m, best, &st) {
					best = m
				}
			default:
				unusable++
			}
		}
		for i := 0; i < len(spares) && i < unusable; i++ {
			if method.isBest(spares[i], best, &st) {
				best = spares[i]
			}
		}
		if best == nil {
			for _, m := range standbys {
				if method.isBest(m, best, &st) {
					best = m
				}
			}
		}
	}
	if best != nil {
		method.chosen(best, &st)
	}
	return best
}
