package metrics

import (
	"sync/atomic"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// What the request path records per member: the latency histograms and the
// outcome counters. Unlike the engine's counters, which the collector reads
// at scrape time, these need an observation per attempt, so each member has a
// Recorder of atomics, attached to the engine's member (balancer.Member.Attach):
// it is found with one atomic load, comes and goes with the member (added or
// removed at run time, replaced by a reload that changed its configuration),
// and lives as long as the balancer, whose registry entry owns it across
// config loads.

// Buckets are the upper bounds, in seconds, of the latency histograms:
// Prometheus' default buckets (which Caddy's caddy_http_request_duration_seconds
// uses) with 1 ms and 2.5 ms added below 5 ms, where a member on the same
// network answers, so that its quantiles are not all "under 5 ms".
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NumBuckets is len(Buckets).
const NumBuckets = 13

// bucketBounds are Buckets in nanoseconds, for the request path.
var bucketBounds = func() [NumBuckets]int64 {
	var out [NumBuckets]int64
	if len(Buckets) != NumBuckets {
		panic("metrics: NumBuckets is not len(Buckets)")
	}
	for i, b := range Buckets {
		out[i] = int64(b * float64(time.Second))
	}
	return out
}()

// Outcome is how one attempt with a member ended.
type Outcome uint8

// The outcomes: the member's status class, or why there was no answer.
const (
	Outcome1xx Outcome = iota
	Outcome2xx
	Outcome3xx
	Outcome4xx
	Outcome5xx
	// OutcomeConnectFailure: the connection to the member could not be made
	// (refused, unreachable, dial timeout, TLS handshake failed); httpd puts
	// the member in error (E) and fails over.
	OutcomeConnectFailure
	// OutcomeTimeout: connected, but no response headers within the member's
	// timeout (or the transport's response_header_timeout).
	OutcomeTimeout
	// OutcomeError: connected, but the exchange failed otherwise (the member
	// closed the connection, sent a malformed answer ...).
	OutcomeError
	// OutcomeCanceled: the client went away before the member answered.
	OutcomeCanceled

	// NumOutcomes is the number of outcomes.
	NumOutcomes
)

// outcomeNames are the values of the outcome label.
var outcomeNames = [NumOutcomes]string{"1xx", "2xx", "3xx", "4xx", "5xx", "connect_failure", "timeout", "error", "canceled"}

// String is the outcome's label value.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// StatusOutcome is the outcome of an answer with that status code.
func StatusOutcome(code int) Outcome {
	switch {
	case code < 200:
		return Outcome1xx
	case code < 300:
		return Outcome2xx
	case code < 400:
		return Outcome3xx
	case code < 500:
		return Outcome4xx
	}
	return Outcome5xx
}

// Recorder holds one member's latency histograms and outcome counters. Its
// methods are safe for concurrent use and allocate nothing.
type Recorder struct {
	header   histogram // time to the response headers
	exchange histogram // time to the end of the answer's body
	outcomes [NumOutcomes]atomic.Uint64
}

// For returns m's recorder, attaching a new one on first use.
func For(m *balancer.Member) *Recorder {
	if r, ok := m.Attachment().(*Recorder); ok {
		return r
	}
	return m.Attach(new(Recorder)).(*Recorder)
}

// Outcome counts an attempt that ended with o.
func (r *Recorder) Outcome(o Outcome) {
	r.outcomes[o].Add(1)
}

// Headers records the time from handing an attempt to the transport until
// the member's response headers arrived.
func (r *Recorder) Headers(d time.Duration) {
	r.header.observe(d)
}

// Exchange records the time from handing an attempt to the transport until
// the member's answer had been passed on in full.
func (r *Recorder) Exchange(d time.Duration) {
	r.exchange.observe(d)
}

// Outcomes returns the number of attempts by outcome, since the member was
// created.
func (r *Recorder) Outcomes() [NumOutcomes]uint64 {
	var out [NumOutcomes]uint64
	for i := range out {
		out[i] = r.outcomes[i].Load()
	}
	return out
}

// HeaderLatency returns the histogram of the times to the response headers.
func (r *Recorder) HeaderLatency() Histogram { return r.header.snapshot() }

// ExchangeLatency returns the histogram of the times to the end of the answer.
func (r *Recorder) ExchangeLatency() Histogram { return r.exchange.snapshot() }

// Histogram is a point-in-time copy of a latency histogram.
type Histogram struct {
	// Counts are the observations per bucket, not cumulative: Counts[i] for
	// i < NumBuckets are those above Buckets[i-1] and at most Buckets[i];
	// Counts[NumBuckets] are those above the last bound.
	Counts [NumBuckets + 1]uint64
	// Sum is the sum of the observations.
	Sum time.Duration
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Sub returns the observations of h that are not in old (an earlier copy of
// the same histogram); a histogram that went back (the member was replaced)
// counts from zero.
func (h Histogram) Sub(old Histogram) Histogram {
	for i := range h.Counts {
		if h.Counts[i] < old.Counts[i] {
			return h
		}
	}
	for i := range h.Counts {
		h.Counts[i] -= old.Counts[i]
	}
	h.Sum -= old.Sum
	return h
}

// Quantile estimates the q-quantile (0 < q < 1) of the observations, with
// linear interpolation within the bucket that holds it, as Prometheus'
// histogram_quantile does; in the bucket above the last bound it returns that
// bound. ok is false when there are no observations.
func (h Histogram) Quantile(q float64) (d time.Duration, ok bool) {
	n := h.Count()
	if n == 0 {
		return 0, false
	}
	rank := q * float64(n)
	var below uint64
	for i, c := range h.Counts {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		if i == NumBuckets {
			break
		}
		lo := int64(0)
		if i > 0 {
			lo = bucketBounds[i-1]
		}
		frac := (rank - float64(below)) / float64(c)
		return time.Duration(float64(lo) + frac*float64(bucketBounds[i]-lo)), true
	}
	return time.Duration(bucketBounds[NumBuckets-1]), true
}

// histogram is a latency histogram of atomics: observe is one bucket search
// over 13 bounds and two atomic adds.
type histogram struct {
	counts [NumBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	n := int64(d)
	i := 0
	for i < NumBuckets && n > bucketBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(n)
}

// snapshot reads the histogram. The buckets are read one after the other
// while observations go on, so the count and the sum may be a few
// observations apart; each is exact on its own.
func (h *histogram) snapshot() Histogram {
	var out Histogram
	for i := range out.Counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.Sum = time.Duration(h.sum.Load())
	return out
}
