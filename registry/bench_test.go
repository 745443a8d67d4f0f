package registry

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkWatchSnapshot measures what a watch of a whole 100k-member scope
// costs to start (and a resync to build): the snapshot, taken under the
// scope's lock.
func BenchmarkWatchSnapshot(b *testing.B) {
	r := openBench(b)
	ctx := context.Background()
	for i := range 100_000 {
		_, err := r.Join(ctx, "default", fmt.Sprintf("g%d", i%1000), fmt.Sprintf("m%d", i), nil)
		require.NoError(b, err)
	}
	b.ResetTimer()
	for range b.N {
		w, err := r.Watch(ctx, "default", All())
		require.NoError(b, err)
		if len(w.Snapshot) != 100_000 {
			b.Fatalf("snapshot of %d members", len(w.Snapshot))
		}
		w.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/member")
}

// BenchmarkLocalJoin measures Registry.Join on a lone node (no peers to
// send to): validation, the handle, the CRDT update and the delta queued
// for the send loop. Members are spread over 1,000 groups.
func BenchmarkLocalJoin(b *testing.B) {
	r := openBench(b)
	ctx := context.Background()
	groups := make([]string, 1000)
	for i := range groups {
		groups[i] = fmt.Sprintf("g%d", i)
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%d", i)
	}
	b.ResetTimer()
	cpu := processCPU()
	for i := range b.N {
		if _, err := r.Join(ctx, "default", groups[i%len(groups)], ids[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
	// The process's CPU per join, the send loop's share included: what a
	// node busy with other work (a cluster's receivers) pays for it.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time the process has used, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// openBench opens a lone local node serving "default", closed when the
// benchmark ends.
func openBench(b *testing.B) *Registry {
	b.Helper()
	r, err := Open(context.Background(), LocalConfig("bench"))
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, r.Close(context.Background())) })
	return r
}
