package storage

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SyncLatencyBounds are the upper bounds of the buckets of
// Metrics.SyncLatency; the last bucket counts everything slower.
var SyncLatencyBounds = [...]time.Duration{
	100 * time.Microsecond,
	250 * time.Microsecond,
	500 * time.Microsecond,
	time.Millisecond,
	2 * time.Millisecond,
	5 * time.Millisecond,
	10 * time.Millisecond,
	25 * time.Millisecond,
	50 * time.Millisecond,
	100 * time.Millisecond,
	time.Second,
}

// Metrics are cumulative counters since Open, for export as metrics.
type Metrics struct {
	// Syncs counts fsync/fdatasync calls issued by Pebble on any file of
	// the store (write-ahead log, MANIFEST, tables, directory), and
	// SyncNanos their total duration.
	Syncs     uint64
	SyncNanos uint64
	// WALSyncs and WALSyncNanos count the write-ahead-log syncs alone: with
	// group commit, Commits/WALSyncs is the average number of batches that
	// shared one fsync.
	WALSyncs     uint64
	WALSyncNanos uint64
	// SyncMaxNanos is the slowest single sync.
	SyncMaxNanos uint64
	// SyncLatency counts syncs by duration: SyncLatency[i] counts those not
	// slower than SyncLatencyBounds[i] (and slower than the previous bound);
	// the last element counts the rest.
	SyncLatency [len(SyncLatencyBounds) + 1]uint64
	// Commits counts acknowledged write batches, SyncedCommits those that
	// waited for an fsync.
	Commits       uint64
	SyncedCommits uint64
	// Errors counts operations that returned ErrIO or ErrCorrupt.
	Errors uint64
	// Failed reports that the store has failed and refuses operations until
	// Recover succeeds or it is reopened.
	Failed bool
	// Recoveries counts failures Recover has recovered from in process.
	Recoveries uint64
	// CacheDiscards counts scope caches deleted by DiscardCache (found
	// unreadable).
	CacheDiscards uint64
}

// metrics holds the live counters behind Metrics.
type metrics struct {
	syncs, syncNanos       atomic.Uint64
	walSyncs, walSyncNanos atomic.Uint64
	syncMax                atomic.Uint64
	syncLatency            [len(SyncLatencyBounds) + 1]atomic.Uint64
	commits, syncedCommits atomic.Uint64
	errors                 atomic.Uint64
	recoveries             atomic.Uint64
	cacheDiscards          atomic.Uint64
}

// observeSync records one sync of duration d.
func (m *metrics) observeSync(d time.Duration, wal bool) {
	n := uint64(max(d, 0))
	m.syncs.Add(1)
	m.syncNanos.Add(n)
	if wal {
		m.walSyncs.Add(1)
		m.walSyncNanos.Add(n)
	}
	for {
		cur := m.syncMax.Load()
		if n <= cur || m.syncMax.CompareAndSwap(cur, n) {
			break
		}
	}
	i := 0
	for i < len(SyncLatencyBounds) && d > SyncLatencyBounds[i] {
		i++
	}
	m.syncLatency[i].Add(1)
}

func (m *metrics) snapshot() Metrics {
	out := Metrics{
		Syncs:         m.syncs.Load(),
		SyncNanos:     m.syncNanos.Load(),
		WALSyncs:      m.walSyncs.Load(),
		WALSyncNanos:  m.walSyncNanos.Load(),
		SyncMaxNanos:  m.syncMax.Load(),
		Commits:       m.commits.Load(),
		SyncedCommits: m.syncedCommits.Load(),
		Errors:        m.errors.Load(),
		Recoveries:    m.recoveries.Load(),
		CacheDiscards: m.cacheDiscards.Load(),
	}
	for i := range m.syncLatency {
		out.SyncLatency[i] = m.syncLatency[i].Load()
	}
	return out
}

// PebbleMetrics are Pebble's own figures for the store, read at the time
// of the call (pebble.DB.Metrics): gauges of the LSM's shape and size, and
// cumulative counters since the store (or its last Recover) opened Pebble.
type PebbleMetrics struct {
	// DiskBytes is the space the store's files take (tables, logs,
	// MANIFEST, obsolete files not yet deleted).
	DiskBytes uint64
	// ReadAmp is the read amplification: the sublevels of L0 plus the
	// other non-empty levels a read may consult.
	ReadAmp int
	// LevelTables and LevelBytes are the sstables of each level, L0 to L6,
	// and their bytes.
	LevelTables [7]int64
	LevelBytes  [7]int64
	// MemTables and MemTableBytes are the memtables in memory and their
	// allocated bytes.
	MemTables     int64
	MemTableBytes uint64
	// WALFiles and WALBytes are the live write-ahead-log files and the
	// live data in them; WALBytesWritten counts the bytes written to them.
	WALFiles        int64
	WALBytes        uint64
	WALBytesWritten uint64
	// Flushes and Compactions count completed memtable flushes and
	// compactions; CompactionsInProgress are running now.
	// CompactionDebtBytes estimates the bytes compactions must still
	// rewrite for the LSM to reach its stable shape.
	Flushes               int64
	Compactions           int64
	CompactionsInProgress int64
	CompactionDebtBytes   uint64
	// BlockCacheBytes and BlockCacheHits/Misses describe the block cache
	// (Options.CacheBytes).
	BlockCacheBytes  int64
	BlockCacheHits   int64
	BlockCacheMisses int64
	// TableIterators counts the open sstable iterators.
	TableIterators int64
}

// pebbleMetrics picks the figures PebbleMetrics exports out of Pebble's.
func pebbleMetrics(m *pebble.Metrics) PebbleMetrics {
	out := PebbleMetrics{
		DiskBytes:             m.DiskSpaceUsage(),
		ReadAmp:               m.ReadAmp(),
		MemTables:             m.MemTable.Count,
		MemTableBytes:         m.MemTable.Size,
		WALFiles:              m.WAL.Files,
		WALBytes:              m.WAL.Size,
		WALBytesWritten:       m.WAL.BytesWritten,
		Flushes:               m.Flush.Count,
		Compactions:           m.Compact.Count,
		CompactionsInProgress: m.Compact.NumInProgress,
		CompactionDebtBytes:   m.Compact.EstimatedDebt,
		BlockCacheBytes:       m.BlockCache.Size,
		BlockCacheHits:        m.BlockCache.Hits,
		BlockCacheMisses:      m.BlockCache.Misses,
		TableIterators:        m.TableIters,
	}
	for i := range min(len(out.LevelTables), len(m.Levels)) {
		out.LevelTables[i] = m.Levels[i].TablesCount
		out.LevelBytes[i] = m.Levels[i].TablesSize
	}
	return out
}
