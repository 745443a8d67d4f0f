package gossip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/inflight"
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
	// quiet: nobody follows the scope's events (SetQuiet); updates only
	// add how many they made to skipped (under mu).
	quiet   atomic.Bool
	skipped uint64

	authIn atomic.Int64 // unix nanos of the last authoritative chunk merged
	lastIn atomic.Int64 // unix nanos of the last deltas message merged
	// While a peer's answer to our digest showed it holds more than this
	// node (a repair is on its way), expectAt is when that was learnt and
	// expectTo when to stop waiting, in unix nanos.
	expectAt, expectTo atomic.Int64
	// askedAt is when this node last sent a digest of the scope (unix
	// nanos): transfer chunks are taken out of order only shortly after.
	askedAt atomic.Int64
	// merging counts the delta messages being merged or waiting for the
	// lock: under a burst, received messages queue here, and a digest
	// taken meanwhile shows as missing what is already in the queue.
	merging atomic.Int32

	// hold is the node's reorder buffer (Held reads it); nil in tests
	// that build a Scope by hand.
	hold *holdBuf

	// prevMu guards inflight, the scope's memory of digests (its own at
	// the last round, each peer's last): what a repair leaves out as on
	// its way (gossip/inflight). Taken inside the scope's lock, or alone.
	prevMu   sync.Mutex
	inflight inflight.Tracker
}

// notePrev records the scope's digest at an anti-entropy tick.
func (s *Scope) notePrev() {
	var d crdt.Digest
	s.Read(func(st *crdt.State) { d = st.Digest() })
	s.prevMu.Lock()
	s.inflight.Round(d)
	s.prevMu.Unlock()
}

// skipInFlight reads a peer's digest before Diff so that a repair leaves
// out what the peer is only missing because it is still on its way
// (inflight.Tracker.Adjust). st is locked by the caller.
func (s *Scope) skipInFlight(from string, peer crdt.Digest, streaming []string, st *crdt.State, now time.Time, window time.Duration) crdt.Digest {
	cur := st.Digest()
	s.prevMu.Lock()
	defer s.prevMu.Unlock()
	return s.inflight.Adjust(from, peer, streaming, cur, now, window)
}

// streaming names the replicas of digest d (this node's, now) whose deltas
// are still arriving (inflight.Tracker.Streaming).
func (s *Scope) streaming(d crdt.Digest) []string {
	s.prevMu.Lock()
	defer s.prevMu.Unlock()
	return s.inflight.Streaming(d)
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
	clear(s.evs) // left over if an earlier fn panicked
	s.evs = s.evs[:0]
	var err error
	if s.quiet.Load() {
		// No events are built: the state counts them.
		before := s.st.Changes()
		err = fn(s.st, nil)
		s.skipped += s.st.Changes() - before
	} else {
		err = fn(s.st, s.collect)
	}
	s.flush()
	if cap(s.evs) > maxKeptEvents {
		s.evs = nil // a transfer's worth: not kept for the next update
	}
	return err
}

// maxKeptEvents bounds the capacity of the event scratch kept between
// updates.
const maxKeptEvents = 1 << 14

// flushAt: mergeAll hands the events collected so far to the sink at a
// delta's end once there are this many, rather than at the end of the
// update. A watch then drains them while the next deltas merge, so a
// message of many batched deltas does not overflow a watch's buffer at
// once; the sink still sees the whole update under one hold of the lock.
const flushAt = 256

// flush hands the events collected so far to the sink. Under mu (inside
// update) only.
func (s *Scope) flush() {
	if len(s.evs) > 0 && s.sink != nil {
		s.sink(s.name, s.evs)
	}
	clear(s.evs)
	s.evs = s.evs[:0]
}

func (s *Scope) collect(e crdt.Event) { s.evs = append(s.evs, e) }

// SetQuiet says whether anybody follows the scope's events. While quiet,
// updates build no events, only count them (crdt.State.Changes): a scope
// nobody watches spent a fifth of a replica's merge time building events
// for a sink that dropped them. Set it to false with the lock held (in
// Locked), together with whatever starts following, and take the count of
// the changes missed meanwhile with TakeSkipped.
func (s *Scope) SetQuiet(quiet bool) { s.quiet.Store(quiet) }

// Quiet reports what SetQuiet last set.
func (s *Scope) Quiet() bool { return s.quiet.Load() }

// TakeSkipped returns how many events quiet updates counted since the
// last call, and resets the count. With the lock held (in Locked).
func (s *Scope) TakeSkipped() uint64 {
	n := s.skipped
	s.skipped = 0
	return n
}

// behind reports whether a peer's digest shows state this node lacks.
func behind(peer crdt.Digest, st *crdt.State) bool {
	mine := inflight.ByName(st.Digest())
	for _, e := range peer.Entries {
		m, ok := mine[e.Name]
		if e.Name == st.Local().Name {
			continue
		}
		if !ok || e.Incarnation > m.Incarnation || (e.Incarnation == m.Incarnation && e.Top > m.Top) {
			return true
		}
	}
	return false
}

// repairWait is how long a scope waits for a repair it asked for before it
// runs anti-entropy and answers digests again (Scope.waiting): one
// interval, so that at most one round is skipped. The peer may never send
// it: it leaves out what it counts in flight (skipInFlight), and when the
// writes stop just then, nothing else arrives to end the wait. With five
// intervals (10 s on a LAN), every node of a cluster could skip its own
// rounds and refuse the others' digests for that long after a heal; the
// partition suite measured heal-to-agreement of 15.5 s after a 3.5 s cut.
func (n *Node) repairWait() time.Duration { return n.cfg.AntiEntropyInterval }

func (s *Scope) expect(now time.Time, d time.Duration) {
	s.expectTo.Store(0)
	s.expectAt.Store(now.UnixNano())
	s.expectTo.Store(now.Add(d).UnixNano())
}

// waiting reports whether a repair this node asked for may still come:
// nothing merged since it asked, and either not timed out or a message
// being merged right now (it may be the repair: a 20k-member transfer
// takes longer than an interval to decode under -race, and asking a
// second peer meanwhile fetches it twice). The merge ending ends the wait.
func (s *Scope) waiting(now time.Time) bool {
	at, to := s.expectAt.Load(), s.expectTo.Load()
	return at != 0 && s.lastIn.Load() < at && (now.UnixNano() < to || s.merging.Load() > 0)
}

// Held returns how many deltas the node holds for the scope before their
// turn (plain deltas waiting for a gap in their owner's counters to fill,
// see Config.HoldBack, and transfer chunks waiting for their predecessor)
// and their approximate bytes (crdt.Delta.Footprint).
func (s *Scope) Held() (deltas, bytes int) {
	if s.hold == nil {
		return 0, 0
	}
	s.hold.mu.Lock()
	defer s.hold.mu.Unlock()
	gaps, chunks, bytes := s.hold.b.Held(s.name)
	return gaps + chunks, bytes
}
