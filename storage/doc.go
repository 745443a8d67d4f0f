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
// fsyncs: Pebble's commit pipeline groups every batch that is waiting when a
// sync starts into that sync (group commit), so throughput grows with the
// number of writers while latency stays about one fsync. SyncInterval mode
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
// Pebble treats a failed write-ahead-log or MANIFEST write or sync as fatal:
// its default logger calls os.Exit, and a few paths panic (see
// cockroachdb/pebble#6004, "db: reconsider commit error handling"). This
// package routes Pebble's logger to log/slog and turns those fatal reports
// and panics into a failed Store: the operation that hit the failure and
// every later operation return an error wrapping ErrIO ("store failed,
// restart required") that names the directory and the cause. Reads are
// refused too, because Pebble may already have applied the failed batch to
// its memtable and would serve it. The only remedy is to Close the Store and
// reopen the directory, normally by restarting the process; reopening
// replays the write-ahead log and yields exactly the writes that reached
// stable storage. See Store.Close for the rare case in which Pebble's commit
// pipeline is left locked and the Store cannot release its resources.
//
// Corrupt data (a bad checksum in a Pebble file, or a stored value that does
// not decode) is reported with ErrCorrupt; Open refuses to start on it.
package storage
