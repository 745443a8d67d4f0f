package gossip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/reorder"
)

// holdBuf is the node's reorder buffer (gossip/reorder) behind its lock:
// for every scope, plain deltas that came after a gap in their owner's
// counters (Config.HoldBack) and transfer chunks that came before their
// predecessor, under one set of bounds (reorder.DefaultLimits). A scope's
// lock is taken before mu, never after.
type holdBuf struct {
	mu sync.Mutex
	b  *reorder.Buffer
	// n mirrors the number of deltas held, so that the merge path skips
	// the lock when none is (nearly always).
	n atomic.Int64
}

func newHoldBuf() *holdBuf { return &holdBuf{b: reorder.New(reorder.DefaultLimits())} }

// do runs f on the buffer under its lock and returns the number of chunks
// it gave up meanwhile.
func (h *holdBuf) do(f func(b *reorder.Buffer)) (dropped int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	before := h.b.Stats().Dropped
	f(h.b)
	entries, _ := h.b.Len()
	h.n.Store(int64(entries))
	return h.b.Stats().Dropped - before
}

// holdGap keeps plain delta d if it came after a gap in its owner's
// counters in st (and the buffer has room), and reports whether it did.
// The scope is locked.
func (n *Node) holdGap(sc *Scope, st *crdt.State, d *crdt.Delta) bool {
	if n.cfg.HoldBack <= 0 || !reorder.Waits(st, d) {
		return false
	}
	held := false
	n.hold.do(func(b *reorder.Buffer) { held = b.HoldGap(sc.name, st, d, time.Now()) })
	return held
}

// drainHeld merges the held-back deltas of replica that no longer follow
// a gap (all of them when force: waiting longer would only delay them).
// The scope is locked.
func (n *Node) drainHeld(sc *Scope, st *crdt.State, replica string, emit crdt.Emit, force bool) {
	for n.hold.n.Load() > 0 {
		var d *crdt.Delta
		n.hold.do(func(b *reorder.Buffer) { d = b.NextGap(sc.name, st, replica, force) })
		if d == nil {
			return
		}
		n.ensureHidden(st, d.Replica, emit)
		st.MergeValidated(d, emit)
	}
}

// flushHeld merges deltas held back longer than the hold-back time: the
// gap before them was a lost packet, which anti-entropy repairs anyway;
// and gives up transfer chunks older than stashWindow (their transfer
// stalled, the next exchange starts it over).
//
// The gap is then known, and so is who can fill it: the node asks the
// owner at once, with its digest, rather than wait for anti-entropy to
// pair them (one peer in N-1 per round, and rounds are skipped while
// deltas stream in). After a cut heals under a steady stream of writes,
// every node holds such gaps for every owner that wrote meanwhile.
func (n *Node) flushHeld(now time.Time) {
	if n.hold.n.Load() == 0 {
		return
	}
	var due []reorder.Key
	n.stats.overflow.Add(n.hold.do(func(b *reorder.Buffer) {
		due = b.Overdue(now, n.cfg.HoldBack)
		b.Expire(now, n.stashWindow())
	}))
	for _, k := range due {
		sc := n.scopes[k.Scope]
		_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
			n.drainHeld(sc, st, k.Owner, emit, true)
			return nil
		})
		if to := n.peerNode(k.Owner); to != nil && n.mayAskOwner(k.Scope, k.Owner, now) {
			n.stats.gapSyncs.Add(1)
			n.sendSyncExcept(k.Scope, to, true, k.Owner, nil)
		}
	}
}

// mayAskOwner decides whether this node sends its digest of scope to
// owner for a gap in owner's operations: once per anti-entropy interval
// per owner, so that a gap the owner cannot fill (it no longer holds those
// operations: another incarnation came) costs one digest a round.
func (n *Node) mayAskOwner(scope, owner string, now time.Time) bool {
	n.paceMu.Lock()
	defer n.paceMu.Unlock()
	return n.pace.MayAskOwner(now, scope, owner)
}

// stashChunk keeps a chunk that came before its predecessor, within the
// buffer's bounds, and reports whether it did (if not, the caller releases
// it). Only shortly after the scope sent a digest: transfers are answers
// to digests. The scope is locked.
func (n *Node) stashChunk(sc *Scope, d *crdt.Delta) bool {
	now := time.Now()
	if at := sc.askedAt.Load(); at == 0 || now.Sub(time.Unix(0, at)) > n.stashWindow() {
		return false // not an answer to anything this node asked
	}
	kept := false
	n.stats.overflow.Add(n.hold.do(func(b *reorder.Buffer) { kept = b.HoldChunk(sc.name, d, now) }))
	return kept
}

// stashWindow is how long after its last digest a scope takes chunks of a
// transfer out of order, and how long a chunk waits for its predecessor.
func (n *Node) stashWindow() time.Duration {
	return max(10*n.cfg.AntiEntropyInterval, 10*time.Second)
}

// unstash takes the held chunk seq of transfer xfer of replica, if any.
// The scope is locked.
func (n *Node) unstash(scope, replica string, xfer uint64, seq uint32) *crdt.Delta {
	if n.hold.n.Load() == 0 {
		return nil
	}
	var d *crdt.Delta
	n.hold.do(func(b *reorder.Buffer) { d = b.NextChunk(scope, replica, xfer, seq) })
	return d
}
