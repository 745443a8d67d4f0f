// Package inflight decides what an anti-entropy exchange leaves out
// because it is already on its way, as a pure state machine over digests
// (crdt.Digest: one contiguous top counter per replica). Under a stream
// of writes every digest lags the pushes by a few packets; repairing that
// lag would send everything twice (and, past the event log, as full
// transfers). A delta really lost stops its replica's top (the contiguous
// prefix), so what is left out now is repaired a round later.
//
// # What it owns
//
// One scope's memory of digests: this node's own digest at the last
// anti-entropy round (Round), and each peer's last digest with the time it
// came (kept for the in-flight check, and read by the driver to report
// divergence). The decisions: which of this node's replicas are still
// streaming in (Streaming: named in its digest so that the peer leaves
// them out), and how to read a peer's digest before crdt's Diff (Adjust:
// a replica the peer caught up on last round, or whose top is still
// rising there, or that it names as streaming, is taken as up to date).
//
// # What it must not touch
//
// No clock (times come in), no goroutines, no sockets, no locks (a
// Tracker is not safe for concurrent use: the driver serialises calls),
// and no crdt.State: digests come in, taken by the driver under the
// scope's lock. Only the standard library and crdt's types are imported.
package inflight

import (
	"maps"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
)

// Tops indexes a digest's entries by replica name.
type Tops map[string]crdt.DigestEntry

// ByName indexes d's entries by replica name.
func ByName(d crdt.Digest) Tops {
	m := make(Tops, len(d.Entries))
	for _, e := range d.Entries {
		m[e.Name] = e
	}
	return m
}

// PeerDigest is a peer's last digest of the scope and when it came.
type PeerDigest struct {
	At   time.Time
	Tops Tops // never changed once stored: safe to share
}

// Tracker is one scope's in-flight memory on one node. The zero value is
// ready to use.
type Tracker struct {
	prev  Tops
	peers map[string]PeerDigest
}

// Round records d, this node's digest at an anti-entropy round, taken
// after the round's digests were sent: the next round's digests name
// what rose during the interval before it.
func (t *Tracker) Round(d crdt.Digest) { t.prev = ByName(d) }

// Streaming names the replicas of d (this node's digest, now) whose top
// rose since the last Round: their deltas are arriving, and a peer
// answering the digest need not send what is on its way.
func (t *Tracker) Streaming(d crdt.Digest) []string {
	var out []string
	for _, e := range d.Entries {
		if p, ok := t.prev[e.Name]; ok && p.Incarnation == e.Incarnation && e.Top > p.Top {
			out = append(out, e.Name)
		}
	}
	return out
}

// Adjust reads peer's digest of the scope, received from from at now,
// before this node computes what the peer lacks (crdt.State.Diff) against
// cur, its own digest now: for a replica where this node holds more, the
// peer is taken to be up to date when
//
//   - it already held everything this node had at the last Round (what it
//     lacks was written during the interval: on its way),
//   - its top rose since its previous digest, received within window (the
//     replica is still streaming in there; an older digest would make a
//     stalled top look like one still advancing, skipping the repair
//     every time), or
//   - its digest names the replica as streaming.
//
// It records peer as from's last digest.
func (t *Tracker) Adjust(from string, peer crdt.Digest, streaming []string, cur crdt.Digest, now time.Time, window time.Duration) crdt.Digest {
	var last Tops
	if pd, ok := t.peers[from]; ok && now.Sub(pd.At) <= window {
		last = pd.Tops
	}
	if t.peers == nil {
		t.peers = map[string]PeerDigest{}
	}
	t.peers[from] = PeerDigest{now, ByName(peer)}
	mine := ByName(cur)
	out := crdt.Digest{Entries: make([]crdt.DigestEntry, len(peer.Entries))}
	for i, e := range peer.Entries {
		c, okc := mine[e.Name]
		if okc && c.Incarnation == e.Incarnation && c.Top > e.Top {
			p, okp := t.prev[e.Name]
			l, okl := last[e.Name]
			caughtUpLastRound := okp && p.Incarnation == e.Incarnation && e.Top >= p.Top
			advancing := okl && l.Incarnation == e.Incarnation && e.Top > l.Top
			if caughtUpLastRound || advancing || slices.Contains(streaming, e.Name) {
				e.Top = c.Top
			}
		}
		out.Entries[i] = e
	}
	return out
}

// Peers returns a copy of the peers' last digests, by peer name.
func (t *Tracker) Peers() map[string]PeerDigest {
	return maps.Clone(t.peers)
}

// Forget drops what the tracker keeps of peer (it went away for good).
func (t *Tracker) Forget(peer string) { delete(t.peers, peer) }

// Diverge counts the operations mine holds that peer lacks (behind) and
// those peer holds that mine lacks (ahead), by owners' counters. A newer
// incarnation of a replica on one side makes the whole of it missing on
// the other.
func Diverge(mine, peer Tops) (behind, ahead uint64) {
	missing := func(have, other Tops) uint64 {
		var n uint64
		for name, h := range have {
			o, ok := other[name]
			switch {
			case !ok || o.Incarnation < h.Incarnation:
				n += h.Top
			case o.Incarnation == h.Incarnation && h.Top > o.Top:
				n += h.Top - o.Top
			}
		}
		return n
	}
	return missing(mine, peer), missing(peer, mine)
}
