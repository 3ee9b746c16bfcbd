package balancer

// bestWorker is proxy_balancer_get_best_worker (proxy_util.c): lbsets from the
// lowest; within a set the regular usable members compete through the
// lbmethod, hot spares are admitted one for one for unusable or draining
// regular members, and hot standbys compete only when the set produced no
// winner. Draining members are never chosen here. Ties go to the first member
// in configuration order because the comparisons are strict. Caller holds the
// balancer lock.
//
// httpd collects the set's usable spares and standbys in arrays while it walks
// the set; here they are found again by further walks over the set, which
// only run when they can matter (an unusable regular member and a usable
// spare; no winner and a usable standby), so that a selection never
// allocates. The order in which members are offered to the lbmethod is
// httpd's. With ramp, a member ramps up (slowstart.go) and the lbmethod
// compares the members' weights instead of their lbfactors.
func bestWorker(members []*Member, method Method, now *clock, ramp bool) *Member {
	var (
		best   *Member
		st     selection
		maxSet int
	)
	kind := kindOf(method)
	if ramp {
		kind = kind.ramping()
	}
	for set := 0; best == nil && set <= maxSet; set++ {
		unusable, spares, standbys := 0, 0, 0
		for _, m := range members {
			if m.lbset != set {
				if m.lbset > maxSet {
					maxSet = m.lbset
				}
				continue
			}
			if m.status&(Initialized|unusableMask|Drain|HotSpare|HotStandby) == Initialized {
				// The common case, a usable regular member, with one test;
				// kind.isBest spelled out so that it is inlined here.
				var better bool
				switch kind {
				case kindByRequests:
					better = byRequests{}.isBest(m, best, &st)
				case kindByBusyness:
					better = byBusyness{}.isBest(m, best, &st)
				case kindByTraffic:
					better = byTraffic{}.isBest(m, best, &st)
				default:
					better = kind.isBest(m, best, &st)
				}
				if better {
					best = m
				}
				continue
			}
			if m.status&Drain != 0 {
				if m.status&(HotSpare|HotStandby) == 0 {
					unusable++
				}
				continue
			}
			if !m.isUsable() {
				if m.status&InError != 0 {
					m.retryWorker(now)
				}
				if !m.isUsable() {
					if m.status&(HotSpare|HotStandby) == 0 {
						unusable++
					}
					continue
				}
			}
			switch {
			case m.status&HotSpare != 0:
				spares++
			case m.status&HotStandby != 0:
				standbys++
			default:
				if kind.isBest(m, best, &st) {
					best = m
				}
			}
		}
		if unusable > 0 && spares > 0 {
			// The first `unusable` usable spares of the set, in order.
			admit := min(unusable, spares)
			for _, m := range members {
				if admit == 0 {
					break
				}
				if m.lbset != set || m.status&Drain != 0 || m.status&HotSpare == 0 || !m.isUsable() {
					continue
				}
				admit--
				if kind.isBest(m, best, &st) {
					best = m
				}
			}
		}
		if best == nil && standbys > 0 {
			for _, m := range members {
				if m.lbset != set || m.status&(Drain|HotSpare) != 0 || m.status&HotStandby == 0 || !m.isUsable() {
					continue
				}
				if kind.isBest(m, best, &st) {
					best = m
				}
			}
		}
	}
	if best != nil {
		kind.chosen(best, &st)
	}
	return best
}
