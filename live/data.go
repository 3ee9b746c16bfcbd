package live

import (
	"math"
	"strings"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/metrics"
)

// minPartial is the shortest last interval of the charts: the one from the
// newest sample to now. A sample taken less than minPartial ago is left out
// (the interval before it runs to now instead), so that the current rate is
// never the count of a few milliseconds; with no older sample (the sampler
// has just started), the interval runs from that sample and has no rate.
const minPartial = time.Second

// Data is what the live view shows (GET ?view=live&format=json).
type Data struct {
	// IntervalSeconds is the time between two chart points.
	IntervalSeconds float64 `json:"interval_seconds"`
	// Balancers are the balancers shown, by name.
	Balancers []BalancerData `json:"balancers"`
}

// BalancerData is one balancer in the live view.
type BalancerData struct {
	Name          string `json:"name"`
	LBMethod      string `json:"lbmethod"`
	StickySession string `json:"stickysession"`
	// Nonce is the balancer-manager's nonce, which a change must carry;
	// empty: the balancer is read-only (nonce None).
	Nonce string `json:"nonce"`
	// Times are the ends of the chart intervals, Unix milliseconds, oldest
	// first; the last is now. Each member's series has one value per time.
	Times []int64 `json:"times"`
	// WindowSeconds is the time the charts cover, from the oldest sample to
	// now.
	WindowSeconds float64      `json:"window_seconds"`
	Members       []MemberData `json:"members"`
}

// MemberData is one member in the live view: its state now, its figures over
// the last interval and over the window, and its series.
type MemberData struct {
	Name  string `json:"name"`
	Route string `json:"route"`
	LBSet int    `json:"lbset"`
	// Status is httpd's status string ("Init Ok"), Flags the status letters
	// ("O"), Usable whether the member can be chosen.
	Status string `json:"status"`
	Flags  string `json:"flags"`
	Usable bool   `json:"usable"`
	// LoadFactor is the configured weight; EffectiveLoadFactor the weight
	// the lbmethods use now (lower while the member ramps up).
	LoadFactor          float64 `json:"loadfactor"`
	EffectiveLoadFactor float64 `json:"effective_loadfactor"`
	// Busy is the number of requests the member is serving now.
	Busy int64 `json:"busy"`
	// Rate is the requests per second in the last interval (times the
	// member was chosen); null in the first second after the sampler started.
	Rate *float64 `json:"rate"`
	// LatencyP95 and LatencyMean are the 95th percentile and the mean of the
	// time to the response headers in the last interval, in milliseconds;
	// null without answers in it.
	LatencyP95  *float64 `json:"latency_p95_ms"`
	LatencyMean *float64 `json:"latency_mean_ms"`
	// Requests is the number of times the member was chosen in the window;
	// Errors the attempts that ended in a 5xx answer, a failed connection,
	// a timeout or another failed exchange.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// HC is the member's health checking; null if it is not checked.
	HC     *HCData `json:"hc"`
	Series Series  `json:"series"`
}

// HCData is a member's health checking in the live view.
type HCData struct {
	Method          string  `json:"method"`
	IntervalSeconds float64 `json:"interval_seconds"`
	// Failed: the member is marked failed by its checks (HcFl, C).
	Failed bool `json:"failed"`
	// Passes and Fails are the checks in the window.
	Passes int64 `json:"passes"`
	Fails  int64 `json:"fails"`
}

// Series are a member's values per chart interval, aligned with
// BalancerData.Times; null where the member did not exist or, for the
// latencies, had no answer.
type Series struct {
	Rate        []*float64 `json:"rate"`
	LatencyP95  []*float64 `json:"latency_p95_ms"`
	LatencyMean []*float64 `json:"latency_mean_ms"`
	// Busy is the requests in flight at the end of each interval.
	Busy   []*float64 `json:"busy"`
	Errors []*float64 `json:"errors"`
	// HCPass and HCFail are the health checks that passed and failed in
	// each interval.
	HCPass []*float64 `json:"hc_pass"`
	HCFail []*float64 `json:"hc_fail"`
}

// Data returns the balancer's live view at now: the members as they are now
// and the differences between consecutive samples.
func (s *Sampler) Data(now time.Time) BalancerData {
	b := s.b
	states := make(map[string]balancer.MemberState)
	fresh := sample{at: now, members: read(b, nil, func(st balancer.MemberState) { states[st.Name] = st })}
	out := BalancerData{Name: b.Name(), LBMethod: b.LBMethod(), StickySession: b.StickyCookie(), Nonce: b.Nonce()}

	s.mu.Lock()
	defer s.mu.Unlock()
	var points []sample
	ring := s.samples()
	for _, p := range ring {
		if now.Sub(p.at) >= minPartial {
			points = append(points, p)
		}
	}
	if len(points) == 0 && len(ring) > 0 {
		points = ring[:1] // just started: counts from the first sample, no rate yet
	}
	points = append(points, fresh)
	out.WindowSeconds = *num(now.Sub(points[0].at).Seconds())
	intervals := len(points) - 1
	out.Times = make([]int64, intervals)
	for i := range intervals {
		out.Times[i] = points[i+1].at.UnixMilli()
	}
	index := make([]map[string]int, len(points))
	for i, p := range points {
		index[i] = make(map[string]int, len(p.members))
		for j, m := range p.members {
			index[i][m.name] = j
		}
	}
	for _, cur := range fresh.members {
		st := states[cur.name]
		md := MemberData{
			Name: cur.name, Route: st.Route, LBSet: st.LBSet,
			Status: strings.TrimSpace(cur.status.String()), Flags: cur.status.Letters(), Usable: cur.status.Usable(),
			LoadFactor: float64(cur.lf) / 100, EffectiveLoadFactor: float64(cur.effLF) / 100, Busy: cur.busy,
			Series: Series{
				Rate: make([]*float64, intervals), LatencyP95: make([]*float64, intervals),
				LatencyMean: make([]*float64, intervals), Busy: make([]*float64, intervals),
				Errors: make([]*float64, intervals), HCPass: make([]*float64, intervals), HCFail: make([]*float64, intervals),
			},
		}
		var hcPass, hcFail int64
		for i := range intervals {
			a, okA := memberAt(points[i], index[i], cur.name)
			z, okZ := memberAt(points[i+1], index[i+1], cur.name)
			if !okZ {
				continue
			}
			if !okA {
				a = memberSample{} // added during the interval: counted from 0
			}
			dt := points[i+1].at.Sub(points[i].at).Seconds()
			elected := delta(z.elected, a.elected)
			md.Requests += elected
			if dt >= minPartial.Seconds() {
				md.Series.Rate[i] = num(float64(elected) / dt)
			}
			h := z.header.Sub(a.header)
			if n := h.Count(); n > 0 {
				md.Series.LatencyMean[i] = num(ms(h.Sum) / float64(n))
				if q, ok := h.Quantile(0.95); ok {
					md.Series.LatencyP95[i] = num(ms(q))
				}
			}
			md.Series.Busy[i] = num(float64(z.busy))
			errs := errorsIn(z.outcomes, a.outcomes)
			md.Errors += errs
			md.Series.Errors[i] = num(float64(errs))
			p, f := delta(z.hcPass, a.hcPass), delta(z.hcFail, a.hcFail)
			hcPass += p
			hcFail += f
			md.Series.HCPass[i] = num(float64(p))
			md.Series.HCFail[i] = num(float64(f))
		}
		if intervals > 0 {
			last := intervals - 1
			md.Rate, md.LatencyP95, md.LatencyMean = md.Series.Rate[last], md.Series.LatencyP95[last], md.Series.LatencyMean[last]
		}
		if hc := st.HC; hc.Enabled() {
			hc = hc.WithDefaults()
			md.HC = &HCData{Method: hc.Method, IntervalSeconds: hc.Interval.Seconds(), Failed: cur.status&balancer.HCFail != 0,
				Passes: hcPass, Fails: hcFail}
		}
		out.Members = append(out.Members, md)
	}
	return out
}

// memberAt returns the member's counters in sample p (index: p's members by
// name).
func memberAt(p sample, index map[string]int, name string) (memberSample, bool) {
	j, ok := index[name]
	if !ok {
		return memberSample{}, false
	}
	return p.members[j], true
}

// delta is new−old of a counter; a counter that went back belongs to a new
// member of the same name (a reload changed its configuration) and counts
// from 0.
func delta(new, old int64) int64 {
	if new < old {
		return new
	}
	return new - old
}

// errorsIn counts the failed attempts between two readings of the outcomes.
func errorsIn(new, old [metrics.NumOutcomes]uint64) int64 {
	var n int64
	for _, o := range []metrics.Outcome{metrics.Outcome5xx, metrics.OutcomeConnectFailure, metrics.OutcomeTimeout, metrics.OutcomeError} {
		n += delta(int64(new[o]), int64(old[o]))
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// num is f rounded to a thousandth (of a request per second, of a
// millisecond), for the JSON.
func num(f float64) *float64 {
	f = math.Round(f*1000) / 1000
	return &f
}
