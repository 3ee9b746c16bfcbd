package live

import (
	"context"
	"sync"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/metrics"
)

// The history behind the charts: every Interval, a Sampler copies each
// member's counters (elected, busy, status, weights, health-check passes and
// failures, attempts by outcome, the histogram of times to the response
// headers) into a ring of Slots samples. The charts are the differences
// between consecutive samples (Sampler.Data).

const (
	// DefaultInterval is the time between two samples: one chart point.
	DefaultInterval = 5 * time.Second
	// DefaultSlots is the number of samples kept: five minutes at
	// DefaultInterval.
	DefaultSlots = 60
)

// Sampler records one balancer's member counters at a fixed interval into a
// fixed-size ring. About 260 bytes per member and sample: 16 KB per member
// at the defaults.
type Sampler struct {
	b        *balancer.Balancer
	interval time.Duration

	mu   sync.Mutex
	ring []sample // len(ring) is the number of slots
	head int      // the slot the next sample goes to
	n    int      // slots in use

	cancel context.CancelFunc
	done   chan struct{}
}

// sample is the state of every member of the balancer at one time.
type sample struct {
	at      time.Time
	members []memberSample
}

// memberSample is one member's counters at one time.
type memberSample struct {
	name      string
	status    balancer.Status
	elected   int64
	busy      int64
	lf, effLF int // ×100
	hcPass    int64
	hcFail    int64
	outcomes  [metrics.NumOutcomes]uint64
	header    metrics.Histogram
}

// NewSampler returns a sampler of b that keeps slots samples taken every
// interval; it takes none until Start or Take.
func NewSampler(b *balancer.Balancer, interval time.Duration, slots int) *Sampler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if slots < 2 {
		slots = 2
	}
	return &Sampler{b: b, interval: interval, ring: make([]sample, slots)}
}

// StartSampler returns a sampler of b that takes a sample now and then every
// interval until Stop.
func StartSampler(b *balancer.Balancer, interval time.Duration, slots int) *Sampler {
	s := NewSampler(b, interval, slots)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	s.Take(time.Now())
	go s.run(ctx)
	return s
}

func (s *Sampler) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Take(now)
		}
	}
}

// Stop ends the sampling started by StartSampler and waits for it.
func (s *Sampler) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
}

// Balancer is the sampled balancer.
func (s *Sampler) Balancer() *balancer.Balancer { return s.b }

// Interval is the time between two samples.
func (s *Sampler) Interval() time.Duration { return s.interval }

// Take records a sample of every member's counters at now, replacing the
// oldest sample once the ring is full.
func (s *Sampler) Take(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := &s.ring[s.head]
	slot.at = now
	slot.members = read(s.b, slot.members[:0], nil)
	s.head = (s.head + 1) % len(s.ring)
	if s.n < len(s.ring) {
		s.n++
	}
}

// samples returns the samples in the ring, oldest first (sharing the ring's
// member slices: the caller must hold mu while it reads them).
func (s *Sampler) samples() []sample {
	out := make([]sample, 0, s.n)
	for i := 0; i < s.n; i++ {
		out = append(out, s.ring[(s.head-s.n+i+len(s.ring))%len(s.ring)])
	}
	return out
}

// read appends every member's counters to dst; state, if not nil, is given
// each member's whole state.
func read(b *balancer.Balancer, dst []memberSample, state func(balancer.MemberState)) []memberSample {
	for _, m := range b.Members() {
		st := m.State()
		if state != nil {
			state(st)
		}
		rec := metrics.For(m)
		pass, fail := m.HCCounts()
		dst = append(dst, memberSample{
			name: st.Name, status: st.Status, elected: st.Elected, busy: st.Busy,
			lf: st.LoadFactor, effLF: st.EffectiveLoadFactor, hcPass: pass, hcFail: fail,
			outcomes: rec.Outcomes(), header: rec.HeaderLatency(),
		})
	}
	return dst
}
