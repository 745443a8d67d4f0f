package gossip

import (
	"bytes"
	"hash/fnv"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
)

// Receiving: decoding messages, vouching for their senders and owners,
// merging deltas (what comes before its turn waits in hold.go), relays.
// Split from node.go by concern; the Node type and its start are there.

func (n *Node) handleMessage(b []byte, src net.Addr) {
	m, err := decodeMessage(b)
	if err != nil {
		n.stats.decodeErrors.Add(1)
		n.log.Debug("dropping malformed message", "err", err)
		return
	}
	if k, ok := kindOf(m.kind); ok {
		n.stats.received[k].add(len(b))
	}
	switch m.kind {
	case msgDeltas, msgRelay:
		n.mergeDeltas(m.scope, m.payloads, m.relayTo)
	case msgSync:
		if !n.claimed(m.from, src) {
			n.stats.forged.Add(1)
			return
		}
		switch k, _ := crdt.MessageKind(m.payloads[0]); k {
		case crdt.KindRangeRoot:
			root, count, err := crdt.DecodeRangeRoot(m.payloads[0])
			if err != nil || !m.wantReply {
				n.stats.decodeErrors.Add(1)
				return
			}
			n.enqueueJob(syncJob{scope: m.scope, from: m.from, wantReply: true, isRoot: true, root: root, rootCount: count})
			return
		case crdt.KindRangeDigest:
			rd, err := crdt.DecodeRangeDigest(m.payloads[0])
			if err != nil || !m.wantReply || len(m.buckets) > 0 {
				n.stats.decodeErrors.Add(1)
				return
			}
			n.enqueueJob(syncJob{scope: m.scope, from: m.from, wantReply: true, ranges: &rd})
			return
		}
		d, err := crdt.DecodeDigest(m.payloads[0])
		if err != nil {
			n.stats.decodeErrors.Add(1)
			return
		}
		if !m.wantReply {
			// The answer to our digest: the peer sent what we lacked first.
			n.caughtUp.Store(m.scope, true)
			n.greets.Store(m.scope, true)
			if sc, ok := n.scopes[m.scope]; ok {
				lacking := false
				sc.Read(func(st *crdt.State) { lacking = behind(d, st) })
				if lacking {
					sc.expect(time.Now(), n.repairWait())
				} else {
					sc.expectTo.Store(0) // answered: nothing is coming
				}
			}
		}
		h := fnv.New64a()
		_, _ = h.Write(m.payloads[0])
		n.enqueueJob(syncJob{scope: m.scope, from: m.from, wantReply: m.wantReply, digest: d, sum: h.Sum64(), streaming: m.streaming, buckets: m.buckets})
	case msgLeaving:
		n.peerLeaving(m.from, m.inc, src)
	case msgPlum:
		if !n.claimed(m.from, src) || n.peerNode(m.from) == nil {
			// Only alive scope peers take part in a scope's tree: a
			// made-up name would get grafts and announcements sent to it.
			n.stats.forged.Add(1)
			return
		}
		m.plum.To = n.self.Name
		n.plumStep(m.scope, m.plum)
	}
}

// peerLeaving notes a peer's announcement that it is leaving. Anyone can
// send one claiming any name, so it hides nothing: the peer's members are
// hidden when memberlist reports it down (its own leave broadcast), and
// the announcement only makes that down event a graceful leave (listed as
// left, not retried by the rejoin loop) when the two come within
// peers.LeaveWindow of each other. src, when known (the plain direct path), must
// be the peer's own gossip address.
func (n *Node) peerLeaving(name string, inc uint64, src net.Addr) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers.Get(name)
	if p == nil || p.Info.node == nil || !sameSender(p.Info.node, src) {
		n.stats.forged.Add(1)
		return
	}
	taken, relabelled := n.peers.Leaving(name, inc, now)
	if !taken {
		n.stats.forged.Add(1)
		return
	}
	if relabelled { // memberlist's down event came first
		n.log.Info("peer left (its leave announcement came after its down event)", "peer", name, "incarnation", inc, "addr", p.Addr)
	}
}

// claimed reports whether a digest claiming to come from name can have:
// name is not this node, and when the packet's source is known, it is
// name's gossip address. A name memberlist has not reported yet passes
// (its digest waits in pendingSync, bounded, until the node comes up: the
// answer only ever goes to memberlist's address for the name).
func (n *Node) claimed(name string, src net.Addr) bool {
	if name == n.self.Name {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers.Get(name)
	if p == nil || p.Info.node == nil {
		return true
	}
	return sameSender(p.Info.node, src)
}

// sameSender reports whether a packet from src can have come from node:
// true when src is unknown (the message came through memberlist, whose
// encryption vouches for the sender's cluster membership, not its name),
// else when src's address is node's (UDP packets leave from the gossip
// port).
func sameSender(node *memberlist.Node, src net.Addr) bool {
	if src == nil {
		return true
	}
	u, ok := src.(*net.UDPAddr)
	if !ok {
		return true
	}
	return u.IP.Equal(node.Addr) && u.Port == int(node.Port)
}

// enqueuePeerEvent hands a liveness change to the control loop.
func (n *Node) enqueuePeerEvent(e peerEvent) {
	n.evMu.Lock()
	n.evq = append(n.evq, e)
	n.evMu.Unlock()
	select {
	case n.evSig <- struct{}{}:
	default:
	}
}

func (n *Node) enqueueJob(j syncJob) {
	select {
	case n.jobs <- j:
	default:
		// Overloaded: drop; the next anti-entropy round asks again.
	}
}

// parallelBytes: a message carrying several deltas of at least this many
// bytes in all (the chunks of a transfer, a burst's batches) is decoded on
// all CPUs at once, and merged as its deltas come out of the decoders.
const parallelBytes = 64 << 10

// mergeDeltas decodes and merges a message's deltas. Those of a relay
// message are then passed on to the nodes it names (Config.FanOut).
func (n *Node) mergeDeltas(scope string, payloads [][]byte, relayTo []string) {
	sc, ok := n.scopes[scope]
	if !ok || len(payloads) == 0 {
		return // not served here: scopes are overlays
	}
	sc.merging.Add(1)
	defer sc.merging.Add(-1)
	defer sc.lastIn.Store(time.Now().UnixNano())
	decode := func(p []byte) *crdt.Delta {
		d, err := crdt.DecodeDelta(p)
		if err != nil {
			n.stats.decodeErrors.Add(1)
			n.log.Debug("dropping malformed delta", "scope", scope, "err", err)
			return nil
		}
		n.stats.deltasReceived.Add(1)
		return d
	}
	ds := make([]*crdt.Delta, len(payloads))
	size := 0
	for _, p := range payloads {
		size += len(p)
	}
	procs := runtime.GOMAXPROCS(0)
	switch {
	case len(payloads) == 1 || size < parallelBytes:
		for i, p := range payloads {
			ds[i] = decode(p)
		}
		n.mergeAll(sc, ds, nil)
	case procs < 2 || len(payloads) > 2*procs:
		// Decoded before the scope is locked: on one CPU nothing would
		// decode meanwhile, and the merges of many chunks would find
		// most of them uncounted by Expect (their sets grown through
		// every doubling).
		parallel(len(payloads), func(i int) { ds[i] = decode(payloads[i]) })
		n.mergeAll(sc, ds, nil)
	default:
		// A transfer's few chunks: decoded on every CPU, in order, while
		// the first ones merge (three chunks on two CPUs used to leave
		// one idle while the last decoded, and the other while all
		// merged).
		n.mergeAll(sc, ds, startParallel(len(payloads), func(i int) { ds[i] = decode(payloads[i]) }))
	}
	if len(relayTo) == 0 {
		return
	}
	if n.cfg.FanOut == 0 {
		// Relaying is off here: a relay request is someone asking this
		// node to send packets on its behalf. The deltas were merged;
		// nothing is passed on.
		n.stats.forged.Add(1)
		return
	}
	raw := relayCopies(payloads, ds)
	if len(raw) == 0 {
		return
	}
	// Passed on whether or not they were new here: the named nodes are
	// this node's part of the relay tree, and nobody else will send them.
	r := relay{scope: scope, payloads: raw, to: relayTo}
	n.outMu.Lock()
	n.relays = append(n.relays, r)
	n.outMu.Unlock()
	n.wakeSender()
}

// relayCopies returns copies of the payloads that decoded (ds[i] not
// nil), to be passed on: the payloads alias the message being handled,
// which is not ours once handleMessage returns.
func relayCopies(payloads [][]byte, ds []*crdt.Delta) [][]byte {
	var raw [][]byte
	for i, d := range ds {
		if d != nil {
			raw = append(raw, bytes.Clone(payloads[i]))
		}
	}
	return raw
}

// merged is what merging one delta came to.
type merged struct {
	d       *crdt.Delta
	held    bool
	stashed bool // out of order, kept for its predecessor
	res     crdt.MergeStats
}

// mergeAll merges the deltas of one message under one hold of the scope's
// lock: a watch's resync, which takes the lock, cannot come between them,
// so the chunks of a transfer overflow a watch's buffer once (one resync),
// not once per chunk. Events are handed over at delta boundaries (flushAt)
// so that watches drain them meanwhile.
// Nil deltas (those that failed to decode) are skipped. The deltas must
// come from crdt.DecodeDelta and be mergeAll's: those merged (not held
// back, not stashed) are released (crdt.Delta.Release). With wait, msg is
// still being decoded: wait(i) returns once msg[i] is set; without, it is.
func (n *Node) mergeAll(sc *Scope, msg []*crdt.Delta, wait func(i int)) {
	// A transfer's chunks: each group's set is sized once (Expect), from
	// all the deltas, or while they are still being decoded from those of
	// the decoders' first round (a set sized for most of its members
	// rarely grows again: a map rounds its size up).
	first := len(msg)
	if wait == nil {
		wait = func(int) {}
	} else {
		first = min(first, runtime.GOMAXPROCS(0))
	}
	for i := range first {
		wait(i) // before the lock is taken
	}
	var out []merged
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		st.Expect(msg[:first])
		defer st.Expect(nil)
		for i := range msg {
			wait(i)
			d := msg[i]
			if d == nil {
				continue
			}
			if !n.vouched(d.Replica) {
				n.stats.unvouched.Add(1)
				msg[i] = nil
				d.Release()
				continue
			}
			if n.holdGap(sc, st, d) {
				out = append(out, merged{d: d, held: true})
				continue
			}
			// A chunk's events are collected at once: size for them
			// rather than grow through every doubling (unless nobody
			// watches: then none are).
			if !sc.quiet.Load() {
				sc.evs = slices.Grow(sc.evs, len(d.Adds)+len(d.Removes))
			}
			out = append(out, n.mergeLocked(sc, st, d, emit))
			if len(sc.evs) >= flushAt {
				sc.flush()
			}
		}
		return nil
	})
	n.revealSynced(sc.name)
	for _, m := range out {
		switch {
		case m.held:
			n.stats.heldBack.Add(1)
		case m.stashed:
			n.stats.outOfOrder.Add(1)
		case m.res.Ignored == crdt.IgnoredOutOfOrder:
			n.stats.overflow.Add(1) // out of order and not stashed
			m.d.Release()
		default:
			if m.d.Auth {
				sc.authIn.Store(time.Now().UnixNano())
			}
			m.d.Release() // merged: nothing refers to it any more
		}
	}
}

// mergeLocked merges one delta; the scope is locked. A chunk of a
// transfer that comes before its predecessor is stashed, and an applied
// chunk pulls its stashed successors in: both under the scope's lock, so a
// chunk stashed by one message's goroutine is never missed by the one that
// applies its predecessor.
func (n *Node) mergeLocked(sc *Scope, st *crdt.State, d *crdt.Delta, emit crdt.Emit) merged {
	n.ensureHidden(st, d.Replica, emit)
	// Every delta here came from DecodeDelta, which validated it.
	res := st.MergeValidated(d, emit)
	n.drainHeld(sc, st, d.Replica.Name, emit, false)
	switch {
	case res.Ignored == crdt.IgnoredOutOfOrder:
		return merged{d: d, res: res, stashed: n.stashChunk(sc, d)}
	case d.Auth && res.Ignored == crdt.NotIgnored:
		for prev := d; ; {
			next := n.unstash(sc.name, prev.Replica.Name, prev.Xfer, prev.Seq+1)
			if next == nil {
				break
			}
			n.ensureHidden(st, next.Replica, emit)
			if r := st.MergeValidated(next, emit); r.Ignored != crdt.NotIgnored {
				break
			}
			prev = next
		}
	}
	return merged{d: d, res: res}
}
