// Package storage owns one roster node's durable state, kept in a single
// Pebble (github.com/cockroachdb/pebble/v2) directory:
//
//   - the node's identity: its name and the last incarnation it started
//     with (StartIncarnation hands out a new, never reused one per start);
//   - the members this node owns that must survive a restart: durable
//     members and members bound to a client session, plus the sessions
//     themselves (like etcd leases);
//   - the gossip peers the node has seen, so that a restarted node can
//     rejoin without seeds;
//   - a per-scope cache of other replicas' state (opaque chunks, e.g.
//     encoded CRDT deltas) that speeds up a restart.
//
// The package stores opaque bytes it is given. It does no networking, no
// gossip and no CRDT logic, and imports nothing from the rest of roster:
// the registry decides what to persist and what the bytes mean.
//
// # Durability
//
// In SyncAlways mode (the default) a write is acknowledged only after the
// write-ahead log holding it has been fsynced. Concurrent writers share
// fsyncs (group commit): the batches that queue up while one round is being
// committed are merged into one Pebble batch and committed together, with
// one fsync, so throughput grows with the number of writers (about 29
// writes per fsync with 64 writers) while latency stays about two fsyncs. SyncInterval mode
// trades durability for latency; see SyncInterval for exactly what can be
// lost. Identity changes (StartIncarnation) are always fsynced, and the
// peer list and the replica cache are never fsynced on their own (they are
// hints and caches); they become durable with the next synced write, the
// next periodic sync, or Close.
//
// Every multi-key change is one Pebble batch, so it is applied atomically:
// after a crash it is either entirely there or entirely absent.
//
// # Failures
//
// Pebble v2.1.7 treats a failed write or sync of its write-ahead log or
// MANIFEST as fatal: it calls Logger.Fatalf (its default logger calls
// os.Exit) after a failed commit or MANIFEST update, and a failed log write
// is remembered by its log writer so that a later commit panics while
// holding the commit pipeline's mutex, which blocks every further commit and
// DB.Close forever (cockroachdb/pebble#6004). This package:
//
//   - routes Pebble's logger to log/slog; Fatalf marks the Store failed and
//     returns (the Fatalf calls that I/O failures reach return an error or
//     finish the commit right after; see pebbleLogger);
//   - watches the log files through a vfs.FS wrapper: the first failed log
//     write or sync marks the Store failed on the spot and is hidden from
//     Pebble, and every later log write and sync is discarded, so Pebble's
//     log writer never enters its sticky error state and the on-disk log
//     simply ends where the failure happened, like the torn tail of a crash
//     (see instrumentedFS);
//   - recovers panics around every Pebble call that can raise one, and runs
//     each commit in its own goroutine so that a caller returns ErrIO
//     instead of blocking if the pipeline wedges anyway (a log file that
//     cannot be created or rotated still makes Pebble panic mid-commit).
//
// Once failed, the operation that hit the failure and every later operation
// return an error wrapping ErrIO ("store failed, restart required") that
// names the directory and the cause. Reads are refused too, because Pebble
// may already hold the failed batches in its memtable and would serve them.
// The remedy is Recover, once the disk takes writes again (space freed):
// it probes the directory with a synced write, closes Pebble and reopens it
// in place, as a restart would. Reopening replays the write-ahead log and
// yields exactly the writes that reached stable storage: every acknowledged
// one, and each failed one either entirely or not at all. Err reports
// whether the store is failed (for a readiness check). A store failed on
// corrupt data, or whose commit pipeline wedged, is not recovered in
// process: restart it.
//
// Corrupt data (a bad checksum in a Pebble file, or a stored value that does
// not decode) is reported with ErrCorrupt; Open refuses to start on it.
package storage
