package registry

import "github.com/roster-io/roster/storage"

// ScopeStats describe one scope's replication and watch backlog on this
// node, for metrics. They are read at the time of the call.
type ScopeStats struct {
	// HeldDeltas are peers' deltas held back until a gap in their owner's
	// operations fills (Config.HoldBack), and HeldBytes their
	// approximate size.
	HeldDeltas, HeldBytes int
	// Watches counts the scope's open watches (a server's watch history
	// follows each scope with one of its own).
	Watches int
	// BacklogEvents counts the events the watches hold for consumers that
	// have not taken them yet: waiting in their channels (up to 256 each)
	// and queued behind them (read without stopping delivery: an event
	// moving into a channel meanwhile may count in both or neither).
	// MaxBacklogEvents is the largest single watch's.
	BacklogEvents, MaxBacklogEvents int
	// BacklogBytes estimates the memory of the events queued behind the
	// channels, and of the batch being handed over (the measure of
	// Limits.WatchBacklogBytes).
	BacklogBytes int
	// Behind counts the watches that fell behind and wait for their
	// consumer to take a resync.
	Behind int
}

// ScopeStats returns the scope's figures; ErrUnknownScope if this node
// does not serve it.
func (r *Registry) ScopeStats(scope string) (ScopeStats, error) {
	sc, err := r.check(scope)
	if err != nil {
		return ScopeStats{}, err
	}
	var st ScopeStats
	st.HeldDeltas, st.HeldBytes = sc.Held()
	h := r.hubs[scope]
	h.mu.Lock()
	defer h.mu.Unlock()
	st.Watches = len(h.ws)
	for w := range h.ws {
		w.mu.Lock()
		events := w.queue.len() + int(w.handing.Load()) + len(w.out)
		st.BacklogBytes += w.queued + w.inHand
		if w.behind {
			st.Behind++
		}
		w.mu.Unlock()
		st.BacklogEvents += events
		st.MaxBacklogEvents = max(st.MaxBacklogEvents, events)
	}
	return st, nil
}

// StorageStats are the figures of this node's store (Config.DataDir).
type StorageStats struct {
	// Metrics are the store's cumulative counters: fsyncs and their
	// latency histogram, commits, errors, recoveries.
	storage.Metrics
	// Pebble holds Pebble's own figures when PebbleOK; not while the
	// store has failed or is being recovered.
	Pebble   storage.PebbleMetrics
	PebbleOK bool
}

// StorageStats returns the store's figures, or false without DataDir.
func (r *Registry) StorageStats() (StorageStats, bool) {
	if r.disk == nil {
		return StorageStats{}, false
	}
	st := StorageStats{Metrics: r.disk.Metrics()}
	st.Pebble, st.PebbleOK = r.disk.PebbleMetrics()
	return st, true
}
