package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/roster-io/roster/registry/regtype"
	"github.com/roster-io/roster/storage"
)

// observer exports, at scrape time, what the registry, its gossip node and
// its store already count: gossip traffic by kind, anti-entropy rounds,
// held deltas, watch backlogs, fsync latency and Pebble's figures. Nothing
// here adds work to a join or a leave.
type observer struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// Gossip, by message kind (regtype.MessageKind) and transport.
	descMsgsSent      = desc("roster_gossip_messages_sent_total", "Roster gossip messages handed to memberlist, by kind (deltas, relay, sync, leaving); one per peer.", "kind")
	descMsgBytesSent  = desc("roster_gossip_message_bytes_sent_total", "Bytes of roster gossip messages handed to memberlist, by kind.", "kind")
	descMsgsRecv      = desc("roster_gossip_messages_received_total", "Roster gossip messages received and decoded, by kind (deltas, relay, sync, leaving).", "kind")
	descMsgBytesRecv  = desc("roster_gossip_message_bytes_received_total", "Bytes of roster gossip messages received and decoded, by kind.", "kind")
	descPackets       = desc("roster_gossip_transport_packets_total", "UDP packets of the gossip transport by direction (in, out), memberlist's probes and membership gossip included.", "direction")
	descPacketBytes   = desc("roster_gossip_transport_packet_bytes_total", "UDP bytes of the gossip transport by direction (in, out).", "direction")
	descStreams       = desc("roster_gossip_transport_streams_total", "TCP streams of the gossip transport: opened (dialled), accepted, refused (closed unscreened).", "result")
	descAERounds      = desc("roster_anti_entropy_rounds_total", "Anti-entropy rounds (each sends at most one digest per scope).")
	descHeldBackTotal = desc("roster_gossip_held_back_deltas_total", "Deltas held back because they came after a gap in their owner's operations.")
	descPiggybacked   = desc("roster_gossip_piggybacked_total", "Delta packets queued on memberlist's gossip.")
	descRelayed       = desc("roster_gossip_relayed_deltas_total", "Received deltas passed on to other peers (relay tree, --fan-out).")

	// Per scope.
	descHeld         = desc("roster_gossip_held_deltas", "Deltas held back now, waiting for a gap in their owner's operations to fill or for an earlier chunk of their transfer, by scope.", "scope")
	descHeldBytes    = desc("roster_gossip_held_bytes", "Approximate bytes of the deltas held back now, by scope.", "scope")
	descBacklog      = desc("roster_watch_backlog_events", "Events the scope's watches hold for consumers that have not taken them (the server's history feed included), by scope.", "scope")
	descBacklogMax   = desc("roster_watch_backlog_max_events", "The largest backlog of a single watch of the scope, in events.", "scope")
	descBacklogBytes = desc("roster_watch_backlog_bytes", "Approximate bytes of the events queued for the scope's watches (bounded by the watch backlog limits).", "scope")
	descBehind       = desc("roster_watch_behind", "Watches of the scope that fell behind and wait for their consumer to take a resync.", "scope")

	// Storage (only with a data directory).
	descFsync          = desc("roster_storage_fsync_duration_seconds", "Duration of the store's fsyncs (write-ahead log, MANIFEST, tables, directories).")
	descWALSyncs       = desc("roster_storage_wal_fsyncs_total", "Fsyncs of the write-ahead log (commits per WAL fsync is the group-commit factor).")
	descWALSyncSeconds = desc("roster_storage_wal_fsync_seconds_total", "Time spent in write-ahead-log fsyncs.")
	descFsyncMax       = desc("roster_storage_fsync_max_seconds", "The slowest single fsync since the store opened.")
	descCommits        = desc("roster_storage_commits_total", "Write batches acknowledged by the store.")
	descSyncedCommits  = desc("roster_storage_synced_commits_total", "Write batches acknowledged after an fsync.")
	descStorageErrors  = desc("roster_storage_errors_total", "Store operations that failed with an I/O error or corruption.")
	descStorageFailed  = desc("roster_storage_failed", "1 while the store has failed and refuses writes (it retries recovery), else 0.")
	descRecoveries     = desc("roster_storage_recoveries_total", "Store failures recovered from in process.")
	descCacheDiscards  = desc("roster_storage_cache_discards_total", "Saved caches of other nodes' state found unreadable and discarded.")

	// Pebble's own (absent while the store has failed or is recovering;
	// counters restart when it is reopened).
	descPebbleDisk        = desc("roster_pebble_disk_bytes", "Disk space the store's Pebble files take.")
	descPebbleReadAmp     = desc("roster_pebble_read_amplification", "Pebble's read amplification (L0 sublevels plus non-empty levels).")
	descPebbleTables      = desc("roster_pebble_level_tables", "Pebble sstables by LSM level.", "level")
	descPebbleLevelBytes  = desc("roster_pebble_level_bytes", "Bytes of Pebble sstables by LSM level.", "level")
	descPebbleMemtables   = desc("roster_pebble_memtables", "Pebble memtables in memory.")
	descPebbleMemBytes    = desc("roster_pebble_memtable_bytes", "Bytes allocated by Pebble memtables.")
	descPebbleWALFiles    = desc("roster_pebble_wal_files", "Live Pebble write-ahead-log files.")
	descPebbleWALBytes    = desc("roster_pebble_wal_bytes", "Live data in Pebble's write-ahead-log files.")
	descPebbleWALWritten  = desc("roster_pebble_wal_written_bytes_total", "Bytes written to Pebble's write-ahead log.")
	descPebbleFlushes     = desc("roster_pebble_flushes_total", "Pebble memtable flushes.")
	descPebbleCompactions = desc("roster_pebble_compactions_total", "Pebble compactions completed.")
	descPebbleCompacting  = desc("roster_pebble_compactions_in_progress", "Pebble compactions running now.")
	descPebbleDebt        = desc("roster_pebble_compaction_debt_bytes", "Pebble's estimate of the bytes compactions must still rewrite.")
	descPebbleCacheBytes  = desc("roster_pebble_block_cache_bytes", "Bytes in Pebble's block cache.")
	descPebbleCacheHits   = desc("roster_pebble_block_cache_hits_total", "Pebble block cache hits.")
	descPebbleCacheMisses = desc("roster_pebble_block_cache_misses_total", "Pebble block cache misses.")
	descPebbleIters       = desc("roster_pebble_table_iterators", "Open Pebble sstable iterators.")
)

// gossipDescs are collectGossip's, reported by registryCollector with
// the rest of the gossip counters (one Stats snapshot per scrape).
var gossipDescs = []*prometheus.Desc{
	descMsgsSent, descMsgBytesSent, descMsgsRecv, descMsgBytesRecv, descPackets, descPacketBytes, descStreams,
	descAERounds, descHeldBackTotal, descPiggybacked, descRelayed,
}

var observerDescs = []*prometheus.Desc{
	descHeld, descHeldBytes, descBacklog, descBacklogMax, descBacklogBytes, descBehind,
	descFsync, descWALSyncs, descWALSyncSeconds, descFsyncMax, descCommits, descSyncedCommits,
	descStorageErrors, descStorageFailed, descRecoveries, descCacheDiscards,
	descPebbleDisk, descPebbleReadAmp, descPebbleTables, descPebbleLevelBytes, descPebbleMemtables,
	descPebbleMemBytes, descPebbleWALFiles, descPebbleWALBytes, descPebbleWALWritten, descPebbleFlushes,
	descPebbleCompactions, descPebbleCompacting, descPebbleDebt, descPebbleCacheBytes, descPebbleCacheHits,
	descPebbleCacheMisses, descPebbleIters,
}

func (o *observer) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range observerDescs {
		ch <- d
	}
}

func (o *observer) Collect(ch chan<- prometheus.Metric) {
	r := o.s.reg
	for _, scope := range r.Scopes() {
		st, err := r.ScopeStats(scope)
		if err != nil { // closed meanwhile
			continue
		}
		gauge(ch, descHeld, float64(st.HeldDeltas), scope)
		gauge(ch, descHeldBytes, float64(st.HeldBytes), scope)
		gauge(ch, descBacklog, float64(st.BacklogEvents), scope)
		gauge(ch, descBacklogMax, float64(st.MaxBacklogEvents), scope)
		gauge(ch, descBacklogBytes, float64(st.BacklogBytes), scope)
		gauge(ch, descBehind, float64(st.Behind), scope)
	}
	if st, ok := r.StorageStats(); ok {
		collectStorage(ch, st)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func collectGossip(ch chan<- prometheus.Metric, s regtype.Stats) {
	for k := range regtype.NumMessageKinds {
		kind := k.String()
		counter(ch, descMsgsSent, float64(s.Sent[k].Messages), kind)
		counter(ch, descMsgBytesSent, float64(s.Sent[k].Bytes), kind)
		counter(ch, descMsgsRecv, float64(s.Received[k].Messages), kind)
		counter(ch, descMsgBytesRecv, float64(s.Received[k].Bytes), kind)
	}
	t := s.Transport
	counter(ch, descPackets, float64(t.PacketsReceived), "in")
	counter(ch, descPackets, float64(t.PacketsSent), "out")
	counter(ch, descPacketBytes, float64(t.PacketBytesReceived), "in")
	counter(ch, descPacketBytes, float64(t.PacketBytesSent), "out")
	counter(ch, descStreams, float64(t.StreamsOpened), "opened")
	counter(ch, descStreams, float64(t.StreamsAccepted), "accepted")
	counter(ch, descStreams, float64(t.StreamsRefused), "refused")
	counter(ch, descAERounds, float64(s.AntiEntropyRounds))
	counter(ch, descHeldBackTotal, float64(s.HeldBack))
	counter(ch, descPiggybacked, float64(s.Piggybacked))
	counter(ch, descRelayed, float64(s.Relayed))
}

func collectStorage(ch chan<- prometheus.Metric, st regtype.StorageStats) {
	m := st.Metrics
	// Cumulative buckets, counted from the buckets themselves (the
	// counters are read one by one: Syncs may be one ahead of them).
	buckets := make(map[float64]uint64, len(storage.SyncLatencyBounds))
	var cum uint64
	for i, bound := range storage.SyncLatencyBounds {
		cum += m.SyncLatency[i]
		buckets[bound.Seconds()] = cum
	}
	total := cum + m.SyncLatency[len(storage.SyncLatencyBounds)]
	ch <- prometheus.MustNewConstHistogram(descFsync, total, float64(m.SyncNanos)/1e9, buckets)
	counter(ch, descWALSyncs, float64(m.WALSyncs))
	counter(ch, descWALSyncSeconds, float64(m.WALSyncNanos)/1e9)
	gauge(ch, descFsyncMax, float64(m.SyncMaxNanos)/1e9)
	counter(ch, descCommits, float64(m.Commits))
	counter(ch, descSyncedCommits, float64(m.SyncedCommits))
	counter(ch, descStorageErrors, float64(m.Errors))
	failed := 0.0
	if m.Failed {
		failed = 1
	}
	gauge(ch, descStorageFailed, failed)
	counter(ch, descRecoveries, float64(m.Recoveries))
	counter(ch, descCacheDiscards, float64(m.CacheDiscards))
	if !st.PebbleOK {
		return
	}
	p := st.Pebble
	gauge(ch, descPebbleDisk, float64(p.DiskBytes))
	gauge(ch, descPebbleReadAmp, float64(p.ReadAmp))
	for i := range p.LevelTables {
		level := strconv.Itoa(i)
		gauge(ch, descPebbleTables, float64(p.LevelTables[i]), level)
		gauge(ch, descPebbleLevelBytes, float64(p.LevelBytes[i]), level)
	}
	gauge(ch, descPebbleMemtables, float64(p.MemTables))
	gauge(ch, descPebbleMemBytes, float64(p.MemTableBytes))
	gauge(ch, descPebbleWALFiles, float64(p.WALFiles))
	gauge(ch, descPebbleWALBytes, float64(p.WALBytes))
	counter(ch, descPebbleWALWritten, float64(p.WALBytesWritten))
	counter(ch, descPebbleFlushes, float64(p.Flushes))
	counter(ch, descPebbleCompactions, float64(p.Compactions))
	gauge(ch, descPebbleCompacting, float64(p.CompactionsInProgress))
	gauge(ch, descPebbleDebt, float64(p.CompactionDebtBytes))
	gauge(ch, descPebbleCacheBytes, float64(p.BlockCacheBytes))
	counter(ch, descPebbleCacheHits, float64(p.BlockCacheHits))
	counter(ch, descPebbleCacheMisses, float64(p.BlockCacheMisses))
	gauge(ch, descPebbleIters, float64(p.TableIterators))
}
