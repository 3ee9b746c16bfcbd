//go:build unix

// Package benchutil holds what the benchmarks of the root package and of the
// balancer package share.
package benchutil

import (
	"syscall"
	"testing"
)

// CPUTimer reports "cpu-ns/op", the process's CPU time (user+system, every
// thread) per iteration, next to the wall-clock ns/op. On a machine shared
// with other work the wall clock counts the time the benchmark waited for a
// CPU; the CPU time does not.
type CPUTimer struct{ start int64 }

func cpuNow() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// StartCPU resets b's timer and starts counting CPU time.
func StartCPU(b *testing.B) *CPUTimer {
	b.ResetTimer()
	return &CPUTimer{start: cpuNow()}
}

// Stop stops b's timer and reports the CPU time per iteration since StartCPU.
func (c *CPUTimer) Stop(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
}
