package balancer

import (
	"fmt"
	"sort"
)

// Method is an lbmethod provider (httpd's proxy_balancer_method): it supplies
// the is_best comparison used by the chooser and the reset run when a balancer
// switches to it.
type Method interface {
	// Name is the provider name: byrequests, bytraffic or bybusyness.
	Name() string
	// Reset is the provider's reset, run when a balancer switches to it.
	Reset(members []*Member)
	isBest(c, best *Member, st *selection) bool
	chosen(winner *Member, st *selection)
}

// methodKind names a built-in lbmethod, so that the chooser calls its
// comparison directly (inlined, with the scratch state on the stack) instead
// of through the Method interface.
type methodKind uint8

const (
	kindByRequests methodKind = iota
	kindByBusyness
	kindByTraffic
	// The same while a member ramps up (slowstart.go): the comparisons use
	// the members' weights.
	kindByRequestsRamp
	kindByBusynessRamp
	kindByTrafficRamp
)

// ramping is the kind's slow-start variant.
func (k methodKind) ramping() methodKind { return k + kindByRequestsRamp }

func kindOf(m Method) methodKind {
	switch m.(type) {
	case byBusyness:
		return kindByBusyness
	case byTraffic:
		return kindByTraffic
	default:
		return kindByRequests
	}
}

func (k methodKind) isBest(c, best *Member, st *selection) bool {
	switch k {
	case kindByBusyness:
		return byBusyness{}.isBest(c, best, st)
	case kindByTraffic:
		return byTraffic{}.isBest(c, best, st)
	case kindByRequestsRamp:
		return byRequests{}.isBestRamp(c, best, st)
	case kindByBusynessRamp:
		return byBusyness{}.isBestRamp(c, best, st)
	case kindByTrafficRamp:
		return byTraffic{}.isBestRamp(c, best, st)
	default:
		return byRequests{}.isBest(c, best, st)
	}
}

func (k methodKind) chosen(w *Member, st *selection) {
	switch k {
	case kindByBusyness, kindByBusynessRamp:
		byBusyness{}.chosen(w, st)
	case kindByTraffic, kindByTrafficRamp:
		byTraffic{}.chosen(w, st)
	default:
		byRequests{}.chosen(w, st)
	}
}

// selection is the per-selection scratch state of the lbmethods. The current
// best member's keys are kept here so that a comparison does not reload them
// from the member (its lbstatus cannot change during the walk: every member
// is offered at most once).
type selection struct {
	total int64
	min   int64 // bytraffic: the best member's traffic
	lb    int64 // byrequests, bybusyness: the best member's lbstatus
	busy  int64 // bybusyness: the best member's busy count
	// bybusyness while a member ramps: the best member's busy × lbfactor
	// and its weight.
	busyLF, weight int64
}

var methods = map[string]Method{
	"byrequests": byRequests{},
	"bytraffic":  byTraffic{},
	"bybusyness": byBusyness{},
}

// MethodByName returns the lbmethod of that name.
func MethodByName(name string) (Method, error) {
	m, ok := methods[name]
	if !ok {
		return nil, fmt.Errorf("unknown lbmethod %q (byrequests, bytraffic or bybusyness)", name)
	}
	return m, nil
}

// MethodNames lists the lbmethods.
func MethodNames() []string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// byRequests is mod_lbmethod_byrequests: weighted round robin on lbstatus.
type byRequests struct{}

func (byRequests) Name() string { return "byrequests" }

func (byRequests) Reset(members []*Member) {
	for _, m := range members {
		m.lbstatus = 0
	}
}

func (byRequests) isBest(c, best *Member, st *selection) bool {
	lb := c.lbstatus + int64(c.lbfactor)
	c.lbstatus = lb
	st.total += int64(c.lbfactor)
	if best == nil || lb > st.lb {
		st.lb = lb
		return true
	}
	return false
}

func (byRequests) chosen(w *Member, st *selection) { w.lbstatus -= st.total }

// isBestRamp is isBest with the members' weights (slowstart.go).
func (byRequests) isBestRamp(c, best *Member, st *selection) bool {
	w := int64(c.weight())
	lb := c.lbstatus + w
	c.lbstatus = lb
	st.total += w
	if best == nil || lb > st.lb {
		st.lb = lb
		return true
	}
	return false
}

// byBusyness is mod_lbmethod_bybusyness: fewest requests in flight, ties broken
// as byrequests breaks them.
type byBusyness struct{}

func (byBusyness) Name() string { return "bybusyness" }

func (byBusyness) Reset(members []*Member) {
	for _, m := range members {
		m.lbstatus = 0
		m.busy.Store(0)
	}
}

func (byBusyness) isBest(c, best *Member, st *selection) bool {
	lb := c.lbstatus + int64(c.lbfactor)
	c.lbstatus = lb
	st.total += int64(c.lbfactor)
	cb := c.busy.Load()
	if best == nil || cb < st.busy || (cb == st.busy && lb > st.lb) {
		st.lb, st.busy = lb, cb
		return true
	}
	return false
}

func (byBusyness) chosen(w *Member, st *selection) { w.lbstatus -= st.total }

// isBestRamp is isBest with the members' weights (slowstart.go): the busy
// counts are compared as busy × lbfactor / weight, which is busy for a
// member that does not ramp.
func (byBusyness) isBestRamp(c, best *Member, st *selection) bool {
	w := int64(c.weight())
	lb := c.lbstatus + w
	c.lbstatus = lb
	st.total += w
	bl := c.busy.Load() * int64(c.lbfactor)
	// bl/w < st.busyLF/st.weight, without dividing
	if best == nil || bl*st.weight < st.busyLF*w || (bl*st.weight == st.busyLF*w && lb > st.lb) {
		st.lb, st.busyLF, st.weight = lb, bl, w
		return true
	}
	return false
}

// byTraffic is mod_lbmethod_bytraffic: least bytes moved, weighted by lbfactor.
type byTraffic struct{}

func (byTraffic) Name() string { return "bytraffic" }

func (byTraffic) Reset(members []*Member) {
	for _, m := range members {
		m.transfer.Store(0)
		m.read.Store(0)
		m.trafficBias = 0
		m.ramp.norm, m.ramp.raw = 0, 0
	}
}

// traffic is the member's bytes to and from it, each divided by its
// lbfactor; plus its trafficBias, which is 0 unless it went through a slow
// start (slowstart.go).
func traffic(m *Member) int64 {
	f := int64(m.lbfactor)
	return m.transfer.Load()/f + m.read.Load()/f + m.trafficBias
}

func (byTraffic) isBest(c, best *Member, st *selection) bool {
	t := traffic(c)
	if best == nil || t < st.min {
		st.min = t
		return true
	}
	return false
}

func (byTraffic) chosen(*Member, *selection) {}

// isBestRamp is isBest with a ramping member's traffic counted at its
// weight (slowstart.go).
func (byTraffic) isBestRamp(c, best *Member, st *selection) bool {
	t := currentTraffic(c)
	if best == nil || t < st.min {
		st.min = t
		return true
	}
	return false
}
