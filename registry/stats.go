package registry

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

// StorageStats returns the store's figures, or false without DataDir.
func (r *Registry) StorageStats() (StorageStats, bool) {
	if r.disk == nil {
		return StorageStats{}, false
	}
	st := StorageStats{Metrics: r.disk.Metrics()}
	st.Pebble, st.PebbleOK = r.disk.PebbleMetrics()
	return st, true
}
