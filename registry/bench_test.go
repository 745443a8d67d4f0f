package registry

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkWatchSnapshot measures what a watch of a whole 100k-member scope
// costs to start (and a resync to build): the snapshot, taken under the
// scope's lock.
func BenchmarkWatchSnapshot(b *testing.B) {
	cfg := LocalConfig("bench")
	r, err := Open(context.Background(), cfg)
	require.NoError(b, err)
	defer func() { require.NoError(b, r.Close(context.Background())) }()
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
