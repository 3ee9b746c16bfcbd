package metrics

import (
	"testing"
	"time"
)

// BenchmarkRecordAttempt is the recorder's share of what the request path
// adds per attempt: finding the member's recorder, counting the outcome, and
// observing the two latencies (which reverse_proxy has measured already).
//
//	go test -run '^$' -bench RecordAttempt -benchmem ./metrics/
func BenchmarkRecordAttempt(b *testing.B) {
	_, ms := newMembers(b, "http://a:1")
	m := ms[0]
	For(m)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			rec := For(m)
			rec.Outcome(StatusOutcome(200))
			rec.Headers(d)
			rec.Exchange(d + time.Millisecond)
		}
	})
}
