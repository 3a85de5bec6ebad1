package workload

import (
	"os"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// BenchmarkIdentify is the cost of naming a new connection's server on this
// machine's real /proc: a known process (one read of /proc/<pid>/stat to rule
// out pid reuse) and a process seen for the first time (comm, exe, ns/net,
// cgroup as well).
func BenchmarkIdentify(b *testing.B) {
	ev := &traffic.Event{Kind: traffic.Open, PID: uint32(os.Getpid()), Local: netipPort(8000)}
	b.Run("known process", func(b *testing.B) {
		r := New(Options{})
		r.Identify(ev)
		b.ReportAllocs()
		for b.Loop() {
			if r.Identify(ev) == nil {
				b.Fatal("not identified")
			}
		}
	})
	b.Run("new process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := New(Options{})
			if r.Identify(ev) == nil {
				b.Fatal("not identified")
			}
		}
	})
}
