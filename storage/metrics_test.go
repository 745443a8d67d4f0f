package storage

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPebbleMetrics: Pebble's figures follow what the store did (writes
// in the log, a flush to L0, blocks read through the cache), and are
// refused once the store is closed.
func TestPebbleMetrics(t *testing.T) {
	s, err := Open(t.TempDir(), DefaultOptions())
	require.NoError(t, err)
	m, ok := s.PebbleMetrics()
	require.True(t, ok)
	require.Zero(t, m.LevelTables[0])
	for i := range 100 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprintf("m%d", i), Meta: []byte("meta")}))
	}
	m, ok = s.PebbleMetrics()
	require.True(t, ok)
	require.Positive(t, m.WALFiles)
	require.Positive(t, m.WALBytesWritten, "100 synced writes went to the log")
	require.Positive(t, m.MemTables)
	require.Positive(t, m.MemTableBytes)

	require.NoError(t, s.db.Flush())
	m, ok = s.PebbleMetrics()
	require.True(t, ok)
	require.Positive(t, m.Flushes)
	require.Positive(t, m.LevelTables[0]+m.LevelTables[6], "the flush wrote a table")
	var tables, bytes int64
	for i := range m.LevelTables {
		tables += m.LevelTables[i]
		bytes += m.LevelBytes[i]
	}
	require.Positive(t, tables)
	require.Positive(t, bytes)
	require.GreaterOrEqual(t, m.DiskBytes, uint64(bytes), "disk usage covers the tables")
	require.Positive(t, m.ReadAmp)

	ms, err := s.Members()
	require.NoError(t, err)
	require.Len(t, ms, 100)
	m, _ = s.PebbleMetrics()
	require.Positive(t, m.BlockCacheHits+m.BlockCacheMisses, "the scan read the table through the cache")
	require.Positive(t, m.BlockCacheBytes)

	// The sync histogram counts every sync once.
	sm := s.Metrics()
	var counted uint64
	for _, c := range sm.SyncLatency {
		counted += c
	}
	require.Positive(t, sm.Syncs)
	require.Equal(t, sm.Syncs, counted)
	require.GreaterOrEqual(t, sm.Syncs, sm.WALSyncs)
	require.Positive(t, sm.WALSyncs, "SyncAlways fsyncs the log")

	require.NoError(t, s.Close())
	_, ok = s.PebbleMetrics()
	require.False(t, ok, "closed")
}
