package gossip

import (
	"sync"

	"github.com/roster-io/roster/crdt"
)

// Scope is one scope's replicated state on this node, behind its lock.
// Every change goes through Update, which hands the events it produced to
// the sink while still holding the lock, so a sink sees each scope's events
// in exactly the order they happened and can take consistent snapshots.
type Scope struct {
	name string
	mu   sync.RWMutex
	st   *crdt.State
	sink func(scope string, evs []crdt.Event) // called with mu held; must not block
	evs  []crdt.Event                         // scratch, reused under mu
}

// Name returns the scope's name.
func (s *Scope) Name() string { return s.name }

// Read runs fn with the state under the read lock. fn must not keep st.
func (s *Scope) Read(fn func(st *crdt.State)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.st)
}

// Locked runs fn under the write lock without changing the state (for a
// sink to register a watcher atomically with a snapshot).
func (s *Scope) Locked(fn func(st *crdt.State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.st)
}

// update runs fn under the write lock, collecting the events it emits and
// handing them to the sink before unlocking.
func (s *Scope) update(fn func(st *crdt.State, emit crdt.Emit) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = s.evs[:0]
	err := fn(s.st, s.collect)
	if len(s.evs) > 0 && s.sink != nil {
		s.sink(s.name, s.evs)
	}
	clear(s.evs)
	return err
}

func (s *Scope) collect(e crdt.Event) { s.evs = append(s.evs, e) }
