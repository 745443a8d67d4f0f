package gossip

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/roster-io/roster/crdt"
)

// Warm restarts: preloading saved state, confirming cached replicas, saving
// state. Split from node.go by concern; the Node type and its start are
// there.

// Option is an optional argument of New.
type Option func(*options)

type options struct {
	preload map[string][][]byte
	grace   time.Duration
}

// Preload makes New start from state saved by an earlier run (per scope,
// encoded deltas as returned by SaveState), merged before memberlist
// starts. State of this node's own earlier incarnations is ignored.
// Anti-entropy then fetches only what changed since the save. A delta that
// does not decode or merge fails New with ErrMessage.
//
// With grace 0, the other replicas the cache holds stay hidden until this
// node has caught up with each of them: memberlist reports the owner alive
// with that incarnation, and the owner's own digest shows nothing newer
// than what is held (what it shows newer is fetched first). A cache saved
// before the owner's last leaves therefore never shows them again (no
// resurrected leaves, guarantee 4); the members appear with Cause Resumed.
//
// With grace > 0, they are shown at once, unconfirmed (Confirmed is false):
// a read may then show a member its owner removed after the save, until
// anti-entropy catches up. If an owner is not seen alive with that
// incarnation within grace, its members are hidden (watchers get
// owner-down), as for any owner the failure detector declares down.
func Preload(state map[string][][]byte, grace time.Duration) Option {
	return func(o *options) { o.preload, o.grace = state, grace }
}

// syncKey names a cached replica in one scope, hidden until caught up.
type syncKey struct {
	scope   string
	replica crdt.ReplicaID
}

// syncNeed is how far a hidden cached replica must be held before it is
// shown: the top its owner's digest reported (known once one arrived).
type syncNeed struct {
	top   uint64
	known bool
}

func (n *Node) preload(scope string, encoded [][]byte, grace time.Duration) (members int, err error) {
	sc := n.scopes[scope]
	deadline := time.Now().Add(grace)
	var bad int
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		for _, b := range encoded {
			d, err := crdt.DecodeDelta(b)
			if err != nil {
				bad++
				continue
			}
			if d.Replica.Name == n.self.Name {
				continue
			}
			n.unconfirmedMu.Lock()
			if grace == 0 {
				k := syncKey{scope, d.Replica}
				if _, ok := n.unsynced[k]; !ok {
					n.unsynced[k] = syncNeed{}
					n.unsyncedN.Add(1)
				}
			} else if _, ok := n.unconfirmed[d.Replica]; !ok && !n.isAlive(d.Replica) {
				n.unconfirmed[d.Replica] = deadline
			}
			n.unconfirmedMu.Unlock()
			st.MergeValidated(d, emit)
		}
		n.unconfirmedMu.Lock()
		for k := range n.unsynced {
			if k.scope == scope {
				_ = st.Suspend(k.replica, emit)
			}
		}
		n.unconfirmedMu.Unlock()
		members = st.Len()
		return nil
	})
	n.log.Info("preloaded saved state", "scope", scope, "members", members, "chunks", len(encoded), "unusable", bad)
	if bad > 0 {
		n.stats.decodeErrors.Add(int64(bad))
		return members, fmt.Errorf("%w: %d of %d cached deltas of scope %q unusable", ErrMessage, bad, len(encoded), scope)
	}
	return members, nil
}

// unsyncedIn reports whether replica r of scope is a cached one still
// hidden until this node catches up with it (see Preload).
func (n *Node) unsyncedIn(scope string, r crdt.ReplicaID) bool {
	if n.unsyncedN.Load() == 0 {
		return false
	}
	n.unconfirmedMu.Lock()
	defer n.unconfirmedMu.Unlock()
	_, ok := n.unsynced[syncKey{scope, r}]
	return ok
}

// noteOwnerDigest takes what the owner from reported of itself in its
// digest of scope: a hidden cached replica of from's is shown once what
// is held of it reaches that. Older incarnations of from are forgotten
// (memberlist's report of the new one drops their slices).
func (n *Node) noteOwnerDigest(scope, from string, d crdt.Digest) {
	if n.unsyncedN.Load() == 0 {
		return
	}
	var own crdt.DigestEntry
	found := false
	for _, e := range d.Entries {
		if e.Name == from {
			own, found = e, true
			break
		}
	}
	if !found {
		return
	}
	n.unconfirmedMu.Lock()
	for k, need := range n.unsynced {
		if k.scope != scope || k.replica.Name != from {
			continue
		}
		switch {
		case k.replica.Incarnation < own.Incarnation:
			delete(n.unsynced, k)
			n.unsyncedN.Add(-1)
		case k.replica.Incarnation == own.Incarnation && (!need.known || own.Top > need.top):
			n.unsynced[k] = syncNeed{top: own.Top, known: true}
		}
	}
	n.unconfirmedMu.Unlock()
	n.revealSynced(scope)
}

// forgetUnsynced drops the hidden cached replicas of r's name older than
// r: memberlist reported r, which drops their slices (crdt.State.Settle).
func (n *Node) forgetUnsynced(r crdt.ReplicaID) {
	if n.unsyncedN.Load() == 0 {
		return
	}
	n.unconfirmedMu.Lock()
	defer n.unconfirmedMu.Unlock()
	for k := range n.unsynced {
		if k.replica.Name == r.Name && k.replica.Incarnation < r.Incarnation {
			delete(n.unsynced, k)
			n.unsyncedN.Add(-1)
		}
	}
}

// revealSynced shows the hidden cached replicas of scope that have caught
// up with what their owners' digests reported, if the owners are alive:
// one update of the scope for all of them, and none while no owner's
// digest has come (it runs after every merged message while any is
// hidden).
func (n *Node) revealSynced(scope string) {
	if n.unsyncedN.Load() == 0 {
		return
	}
	sc, ok := n.scopes[scope]
	if !ok {
		return
	}
	var ready []crdt.ReplicaID
	n.unconfirmedMu.Lock()
	for k, need := range n.unsynced {
		if k.scope == scope && need.known {
			ready = append(ready, k.replica)
		}
	}
	n.unconfirmedMu.Unlock()
	ready = slices.DeleteFunc(ready, func(r crdt.ReplicaID) bool { return !n.isAlive(r) })
	if len(ready) == 0 {
		return
	}
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		for _, r := range ready {
			inc, top, ok := st.Top(r.Name)
			n.unconfirmedMu.Lock()
			k := syncKey{scope, r}
			need, still := n.unsynced[k]
			caught := still && (!ok || inc != r.Incarnation || top >= need.top)
			if caught {
				delete(n.unsynced, k)
				n.unsyncedN.Add(-1)
			}
			n.unconfirmedMu.Unlock()
			if caught && ok && inc == r.Incarnation {
				n.log.Info("cached replica caught up; showing it", "scope", scope, "replica", r)
				_ = st.Resume(r, emit)
			}
		}
		return nil
	})
}

func (n *Node) isAlive(r crdt.ReplicaID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers.Visible(r.Name, r.Incarnation)
}

func (n *Node) pendingConfirmation(r crdt.ReplicaID) bool {
	n.unconfirmedMu.Lock()
	defer n.unconfirmedMu.Unlock()
	dl, ok := n.unconfirmed[r]
	return ok && time.Now().Before(dl)
}

// confirmDeadlines hides preloaded replicas whose owners were not seen
// alive in time.
func (n *Node) confirmDeadlines(now time.Time) {
	var late []crdt.ReplicaID
	n.unconfirmedMu.Lock()
	for r, dl := range n.unconfirmed {
		if !now.Before(dl) {
			late = append(late, r)
			delete(n.unconfirmed, r)
		}
	}
	n.unconfirmedMu.Unlock()
	for _, r := range late {
		if n.isAlive(r) {
			continue
		}
		n.log.Info("cached replica not confirmed alive; hiding it", "replica", r)
		for _, s := range n.order {
			_ = n.scopes[s].update(func(st *crdt.State, emit crdt.Emit) error { return st.Suspend(r, emit) })
		}
	}
}

// Confirmed reports whether r's members are known current: r is this node,
// or its owner is alive with that incarnation. Members preloaded from a
// cache are unconfirmed until their owner is seen.
func (n *Node) Confirmed(r crdt.ReplicaID) bool {
	return r == n.self || n.isAlive(r)
}

// SaveState returns scope's full state as encoded authoritative chunks of
// at most ChunkBytes each, for Preload after a restart.
func (n *Node) SaveState(scope string) ([][]byte, error) {
	sc, err := n.scope(scope)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	var ds []*crdt.Delta
	sc.Locked(func(st *crdt.State) { ds = st.SnapshotRemote(n.cfg.ChunkBytes) })
	for _, d := range ds { // encoded outside the lock: deltas own their data
		out = append(out, crdt.EncodeDelta(d))
	}
	return out, nil
}

// RemoteVersion summarises what scope holds of other replicas (their
// incarnations and contiguous counters): when it has not changed, a saved
// cache is still current.
func (n *Node) RemoteVersion(scope string) uint64 {
	sc, ok := n.scopes[scope]
	if !ok {
		return 0
	}
	var d crdt.Digest
	sc.Read(func(st *crdt.State) { d = st.Digest() })
	slices.SortFunc(d.Entries, func(a, b crdt.DigestEntry) int { return strings.Compare(a.Name, b.Name) })
	h := fnv.New64a()
	var buf [16]byte
	for _, e := range d.Entries {
		if e.Name == n.self.Name {
			continue
		}
		_, _ = h.Write([]byte(e.Name))
		binary.LittleEndian.PutUint64(buf[:8], e.Incarnation)
		binary.LittleEndian.PutUint64(buf[8:], e.Top)
		_, _ = h.Write(buf[:])
	}
	return h.Sum64()
}

// PeerAddrs returns the gossip address of every other node this node has
// seen, alive or dead but not left, sorted: what a restart needs to rejoin
// without seeds.
func (n *Node) PeerAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers.Addrs()
}
