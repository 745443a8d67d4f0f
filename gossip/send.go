package gossip

import (
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/pace"
	"github.com/roster-io/roster/gossip/push"
	"github.com/roster-io/roster/internal/bug"
)

// Sending: the send loop, packing deltas into packets or streams, digests,
// and answering them (anti-entropy repairs). Split from node.go by concern;
// the Node type and its start are there.

func (n *Node) sendLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.outSig:
		}
		type burst struct {
			scope string
			ops   int
			ds    []*crdt.Delta
		}
		var pending []burst
		n.outMu.Lock()
		for scope, b := range n.out {
			if ops := b.Len(); ops > 0 {
				pending = append(pending, burst{scope, ops, b.Take()})
			}
		}
		relays := n.relays
		n.relays = nil
		n.outMu.Unlock()
		for _, p := range pending {
			n.stats.deltasSent.Add(int64(p.ops))
			n.disseminate(p.scope, encodeAll(p.ds))
		}
		for _, r := range relays {
			n.stats.relayed.Add(int64(len(r.payloads)))
			n.relayTree(r.scope, n.namedPeers(r.scope, r.to), r.payloads)
		}
	}
}

// sendDeltas sends encoded deltas to peers as push.Config.Packets plans
// them: packed into best-effort packets when few, as reliable stream
// messages when many or when one delta does not fit a packet. The packets
// of a node's own batch (own) sent by a route that has it are also queued
// on memberlist's gossip (push.Piggyback); repairs and relayed copies are
// not.
func (n *Node) sendDeltas(scope string, peers []*memberlist.Node, ds [][]byte, relayTo []string, route push.Route, own bool) {
	if len(peers) == 0 || len(ds) == 0 {
		return
	}
	kind := KindDeltas
	if len(relayTo) > 0 { // as encodeDeltas
		kind = KindRelay
	}
	plan, ok := n.push.Packets(sizes(ds), deltasOverhead(scope, relayTo), perDeltaOverhead)
	if !ok {
		n.log.Warn("dropping a batch: a delta is larger than a stream message", "scope", scope)
		return
	}
	msgs := encodePlan(scope, relayTo, ds, plan)
	if plan.Stream {
		for _, msg := range msgs {
			for _, p := range peers {
				n.sendReliable(p, kind, msg)
			}
		}
		return
	}
	if own && push.Piggyback(route, plan.Stream) {
		n.piggyback(msgs)
	}
	for _, msg := range msgs {
		for _, p := range peers {
			n.sendTo(p, kind, msg) // a packet: the plan kept it within MaxPacketBytes
		}
	}
}

// sizes returns the lengths of encoded deltas.
func sizes(ds [][]byte) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = len(d)
	}
	return out
}

// encodePlan encodes the messages of a plan.
func encodePlan(scope string, relayTo []string, ds [][]byte, p push.Plan) [][]byte {
	out := make([][]byte, 0, p.Messages())
	for i := range p.Messages() {
		out = append(out, encodeDeltas(scope, relayTo, ds[p.Bounds[i]:p.Bounds[i+1]]))
	}
	return out
}

// packAll encodes deltas into messages of at most limit bytes, in order
// (push.Pack); nil if one delta does not fit.
func packAll(scope string, relayTo []string, ds [][]byte, limit int) [][]byte {
	b, ok := push.Pack(sizes(ds), deltasOverhead(scope, relayTo), perDeltaOverhead, limit)
	if !ok {
		return nil
	}
	return encodePlan(scope, relayTo, ds, push.Plan{Bounds: b})
}

func (n *Node) sendReliable(p *memberlist.Node, kind MessageKind, msg []byte) {
	if err := n.ml.SendReliable(p, msg); err != nil {
		n.log.Debug("reliable send failed", "to", p.Name, "err", err)
		return
	}
	n.stats.sentVia(kind, len(msg), true)
}

// sendSync sends our digest of scope to a peer.
func (n *Node) sendSync(scope string, to *memberlist.Node, wantReply bool) {
	n.sendSyncExcept(scope, to, wantReply, "", nil)
}

// sendSyncExcept is sendSync with replica left out of the replicas named
// as streaming (their deltas arriving): a digest sent to fill a known gap
// in replica's operations must get them repaired, not skipped as in
// flight. With buckets, the digest is narrowed to the replicas in those
// range-digest buckets (crdt.State.DigestIn).
func (n *Node) sendSyncExcept(scope string, to *memberlist.Node, wantReply bool, replica string, buckets []int) {
	sc := n.scopes[scope]
	var dig []byte
	var streaming []string
	sc.Read(func(st *crdt.State) {
		var d crdt.Digest
		if len(buckets) > 0 {
			d = st.DigestIn(buckets)
		} else {
			d = st.Digest()
		}
		dig = crdt.EncodeDigest(d)
		streaming = slices.DeleteFunc(sc.streaming(d), func(r string) bool { return r == replica })
	})
	msg := encodeSyncIn(scope, n.self.Name, wantReply, dig, streaming, buckets)
	n.stats.syncsSent.Add(1)
	if len(buckets) > 0 {
		n.stats.narrowedSyncs.Add(1)
	}
	sc.askedAt.Store(time.Now().UnixNano())
	n.sendTo(to, KindSync, msg)
}

// sendTo sends one message of kind to a peer in a packet, or on a stream
// if it is larger than one (Config.MaxPacketBytes), and counts it.
func (n *Node) sendTo(to *memberlist.Node, kind MessageKind, msg []byte) {
	if len(msg) > n.cfg.MaxPacketBytes {
		n.sendReliable(to, kind, msg)
		return
	}
	if err := n.ml.SendBestEffort(to, msg); err != nil {
		n.log.Debug("send failed", "to", to.Name, "err", err)
		return
	}
	n.stats.sentVia(kind, len(msg), false)
}

// inboxDepth bounds the roster packets waiting for the inbox loop, as
// memberlist's HandoffQueueDepth (1024 by default) bounds its own queue;
// more are dropped (and counted), and anti-entropy repairs what they
// carried. At most 64 MiB wait: a UDP packet is at most 64 KiB.
const inboxDepth = 1024

// deliver queues a packet NetTransport hands over for the inbox loop, or
// drops (and counts) it if the inbox is full. It never blocks.
func (n *Node) deliver(p []byte, src net.Addr) {
	select {
	case n.inbox <- inbound{p, src}:
	default:
		n.stats.packetsDropped.Add(1)
	}
}

// inbound is a packet NetTransport handed over, with its source address.
type inbound struct {
	b   []byte
	src net.Addr
}

// drain calls fn on everything received from ch until the node stops: the
// inbox loop (the roster packets NetTransport delivers, one goroutine hop
// from the socket where memberlist's own path takes two) and the job loop
// (digests to answer).
func drain[T any](n *Node, ch <-chan T, fn func(T)) {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case v := <-ch:
			fn(v)
		}
	}
}

// serveSync answers a peer's digest with what it lacks, and with our own
// digest if it asked for one.
func (n *Node) serveSync(j syncJob) {
	sc, ok := n.scopes[j.scope]
	if !ok || j.from == n.self.Name {
		return
	}
	to := n.peerNode(j.from)
	if j.isRoot {
		n.serveRoot(sc, j, to)
		return
	}
	if j.ranges != nil {
		n.serveRanges(sc, j, to)
		return
	}
	if to == nil {
		// A digest from a node we do not count alive yet (its alive
		// message is still on its way, as after a partition heals): answer
		// it as soon as it is, rather than wait for the next round.
		n.paceMu.Lock()
		if len(n.pendingSync) >= maxPendingSync {
			// Full (a burst of newcomers, or digests under made-up
			// names): make room at random rather than refuse every
			// later one, so made-up names cannot crowd real ones out.
			for k := range n.pendingSync {
				delete(n.pendingSync, k)
				break
			}
		}
		n.pendingSync[[2]string{j.scope, j.from}] = j
		n.paceMu.Unlock()
		return
	}
	n.stats.syncsServed.Add(1)
	n.noteOwnerDigest(j.scope, j.from, j.digest)
	var ds []*crdt.Delta
	ahead := false // the peer holds what we lack: our digest will fetch it
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		// The digest's incarnations are the peer's claims: they decide
		// what is sent to it, never what is held here (only memberlist's
		// view moves an incarnation: applyPeerEvent).
		peer := sc.skipInFlight(j.from, j.digest, j.streaming, st, time.Now(), 2*n.cfg.AntiEntropyInterval)
		if len(j.buckets) > 0 {
			// A narrowed digest: only its buckets' replicas are compared
			// (one it does not list there is one the peer lacks).
			ds = st.DiffIn(peer, j.buckets, n.cfg.ChunkBytes)
		} else {
			ds = st.Diff(peer, n.cfg.ChunkBytes)
		}
		ahead = j.wantReply && behind(j.digest, st)
		return nil
	})
	if bug.NoLeaves {
		for _, d := range ds {
			d.Removes = nil // nor repaired
		}
	}
	if len(ds) > 0 && n.repeatRepair(j) {
		ds = nil
	}
	if len(ds) > 0 {
		enc := encodeAll(ds)
		for _, b := range enc {
			n.stats.repairBytes.Add(int64(len(b)))
		}
		n.stats.repairDeltasSent.Add(int64(len(ds)))
		n.sendDeltas(j.scope, []*memberlist.Node{to}, enc, nil, push.Direct, false)
	}
	if j.wantReply && n.mayReply(j.scope) {
		if ahead {
			// The peer answers our digest with a repair: wait for it rather
			// than ask another peer for the same state meanwhile.
			sc.expect(time.Now(), n.repairWait())
		}
		n.sendSyncExcept(j.scope, to, false, "", j.buckets)
	}
}

// serveRoot answers the root of a peer's range digest: nothing if ours is
// the same (the two agree on every replica's counter, up to a 64-bit hash
// collision), else our whole range digest (256 bucket sums, about 2.3 KB
// whatever the replica count), asking for the peer's digest of the
// buckets that differ (serveRanges), which starts the two-way exchange
// narrowed to them. A node not caught up, or hiding a cached replica,
// answers with its full digest instead: the first needs everything, the
// second the owners' own digests to show what it hides. A root from a
// node not counted alive here is dropped, as the next round sends another.
func (n *Node) serveRoot(sc *Scope, j syncJob, to *memberlist.Node) {
	if to == nil {
		return
	}
	var rd crdt.RangeDigest
	sc.Read(func(st *crdt.State) { rd = st.RangeDigest() })
	f := n.facts(j.scope, time.Now())
	if rd.Root() == j.root && rd.Count == j.rootCount && !f.Unsynced {
		n.stats.rootsInStep.Add(1)
		return
	}
	if !n.mayReply(j.scope) {
		return
	}
	if !f.CaughtUp || f.Unsynced {
		n.sendSync(j.scope, to, true)
		return
	}
	n.stats.syncsSent.Add(1)
	n.sendTo(to, KindSync, encodeSync(j.scope, n.self.Name, true, crdt.EncodeRangeDigest(rd), nil))
}

// serveRanges answers a peer's range digest (its answer to our root) with
// our digest of the buckets whose sums differ, asking for the peer's own:
// the two-way exchange, over the replicas of those buckets only. Nothing
// if none differ any more (what was missing arrived meanwhile), or if a
// repair to this node is under way (transferring): the next round asks
// again. Deltas being merged here do not hold it back, as they do not
// hold back the repair the full exchange sends the peer (mayReply gates
// only our asking there); the digest names what is streaming in, which
// the peer leaves out.
func (n *Node) serveRanges(sc *Scope, j syncJob, to *memberlist.Node) {
	if to == nil {
		return
	}
	var differ []int
	sc.Read(func(st *crdt.State) { differ = crdt.DifferingBuckets(st.RangeDigest(), *j.ranges) })
	if len(differ) == 0 {
		n.stats.rootsInStep.Add(1)
		return
	}
	if !n.transferring(j.scope, time.Now()) {
		n.sendSyncExcept(j.scope, to, true, "", differ)
	}
}

// rangeRootMin resolves Config.RangeRootMin: 0 is the default (64),
// negative never.
func rangeRootMin(c int) int {
	switch {
	case c < 0:
		return -1
	case c == 0:
		return pace.DefaultRangeRootMin
	}
	return c
}

// encodeAll encodes deltas on all CPUs at once: the chunks of a large
// repair (a 100k-member transfer is three chunks of about 5 ms each), a
// burst's batched deltas. One delta is encoded on the calling goroutine.
func encodeAll(ds []*crdt.Delta) [][]byte {
	enc := make([][]byte, len(ds))
	parallel(len(ds), func(i int) { enc[i] = crdt.EncodeDelta(ds[i]) })
	return enc
}

// startParallel runs fn(0..n-1) on up to GOMAXPROCS goroutines, taken in
// order, and returns at once; wait(i) returns when fn(i) has. Every
// goroutine ends when fn has run for every i.
func startParallel(n int, fn func(i int)) (wait func(i int)) {
	done := make([]chan struct{}, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	var next atomic.Int64
	for range min(n, runtime.GOMAXPROCS(0)) {
		go func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
				close(done[i])
			}
		}()
	}
	return func(i int) { <-done[i] }
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines and waits
// (on the calling goroutine alone when that is one).
func parallel(n int, fn func(i int)) {
	if min(n, runtime.GOMAXPROCS(0)) < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	wait := startParallel(n, fn)
	for i := range n {
		wait(i)
	}
}

// mayReply decides whether to answer a peer's digest with ours (which
// makes the peer send what we lack): see pace.Pacer.MayReply.
func (n *Node) mayReply(scope string) bool {
	now := time.Now()
	f := n.facts(scope, now)
	n.paceMu.Lock()
	defer n.paceMu.Unlock()
	return n.pace.MayReply(now, scope, f)
}

// facts gathers what gossip/pace decides on for scope at now; a round
// adds the peers and the replica count.
func (n *Node) facts(scope string, now time.Time) pace.Facts {
	_, caught := n.caughtUp.Load(scope)
	return pace.Facts{
		Transferring: n.transferring(scope, now),
		Merging:      n.scopes[scope].merging.Load() > 0,
		CaughtUp:     caught,
		Unsynced:     n.unsyncedN.Load() > 0,
	}
}

// mayGreet decides whether this node greets peer, just seen up, with its
// digest of scope (pace.Pacer.MayGreet: once per interval per peer).
func (n *Node) mayGreet(scope, peer string) bool {
	n.paceMu.Lock()
	defer n.paceMu.Unlock()
	return n.pace.MayGreet(time.Now(), scope, peer)
}

// repeatRepair reports whether the same digest from the same peer was
// just answered with a repair (pace.Pacer.RepeatRepair).
func (n *Node) repeatRepair(j syncJob) bool {
	n.paceMu.Lock()
	defer n.paceMu.Unlock()
	return n.pace.RepeatRepair(time.Now(), j.scope, j.from, j.sum)
}
