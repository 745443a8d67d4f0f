package gossip

import (
	"bytes"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/pace"
	"github.com/roster-io/roster/gossip/peers"
	"github.com/roster-io/roster/internal/bug"
)

// Control: the control loop (liveness events, anti-entropy ticks, retention,
// the rejoin loop). Split from node.go by concern; the Node type and its
// start are there.

func (n *Node) controlLoop() {
	defer n.wg.Done()
	ae := time.NewTicker(n.cfg.AntiEntropyInterval)
	defer ae.Stop()
	retention := time.NewTicker(min(n.cfg.Retention/4, time.Second))
	defer retention.Stop()
	rj := peers.NewRejoin(n.cfg.RejoinInterval, n.cfg.RejoinMaxInterval, time.Now())
	rejoin := time.NewTimer(n.cfg.RejoinInterval)
	defer rejoin.Stop()
	rejoinDone := make(chan bool, 1)
	rejoining := false
	for {
		select {
		case <-n.stop:
			if rejoining {
				<-rejoinDone
			}
			return
		case <-n.evSig:
			n.evMu.Lock()
			q := n.evq
			n.evq = nil
			n.evMu.Unlock()
			for _, e := range q {
				n.applyPeerEvent(e)
			}
		case <-ae.C:
			n.antiEntropy()
		case <-retention.C:
			n.expire(time.Now())
			n.confirmDeadlines(time.Now())
		case <-rejoin.C:
			if n.closed.Load() {
				continue
			}
			addrs := n.missingAddrs()
			n.rngMu.Lock()
			start := rj.Check(time.Now(), len(addrs), n.rng)
			n.rngMu.Unlock()
			if !start {
				rejoin.Reset(time.Until(rj.Due()))
				continue
			}
			rejoining = true
			go func() {
				n.stats.rejoinAttempts.Add(1)
				joined, _ := n.ml.Join(addrs)
				if joined > 0 {
					n.stats.rejoinSuccesses.Add(1)
				}
				rejoinDone <- joined > 0
			}()
		case ok := <-rejoinDone:
			rejoining = false
			n.rngMu.Lock()
			rj.Done(time.Now(), ok, n.rng)
			n.rngMu.Unlock()
			rejoin.Reset(time.Until(rj.Due()))
		}
	}
}

// missingAddrs lists the seeds and the addresses of every peer ever seen
// that memberlist does not currently count as alive, except peers that
// left gracefully: a node that leaves (or fails to start and leaves) is
// not retried forever; when it comes back it rejoins through its own seeds
// and peers.
func (n *Node) missingAddrs() []string {
	if bug.NoRejoin {
		return nil
	}
	seeds := n.seedsExceptSelf()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers.Missing(seeds)
}

func (n *Node) seedsExceptSelf() []string {
	self := n.addr
	var out []string
	for _, s := range n.cfg.Seeds {
		if s != self {
			out = append(out, s)
		}
	}
	return out
}

// transferring reports whether an authoritative transfer of scope is
// flowing in (a chunk arrived within the last anti-entropy interval): our
// digest would not show it yet, and every peer would answer it with the
// whole transfer again.
//
// It also holds while a peer's answer to our digest showed it has more than
// this node and nothing has arrived since (the repair is still being built
// or sent; up to five intervals): a digest sent meanwhile to another peer
// would fetch the same state again, which is how a fresh node used to pull
// a large scope from every peer at once.
func (n *Node) transferring(scope string, now time.Time) bool {
	sc := n.scopes[scope]
	if last := sc.authIn.Load(); last != 0 && now.Sub(time.Unix(0, last)) < n.cfg.AntiEntropyInterval {
		return true
	}
	return sc.waiting(now)
}

// antiEntropy runs a round: for each scope, what gossip/pace decides
// (nothing, the root of our range digest, or our digest) to one random
// alive peer.
func (n *Node) antiEntropy() {
	n.stats.antiEntropyRounds.Add(1)
	now := time.Now()
	n.flushHeld(now)
	for _, s := range n.order {
		sc := n.scopes[s]
		peers := n.scopePeers(s)
		f := n.facts(s, now)
		f.Peers = len(peers)
		var rd crdt.RangeDigest
		if n.pace.RootCandidate(f) {
			sc.Read(func(st *crdt.State) { rd = st.RangeDigest() })
			f.Replicas = rd.Count
		}
		n.paceMu.Lock()
		n.rngMu.Lock()
		d := n.pace.Round(now, s, f, n.rng)
		n.rngMu.Unlock()
		n.paceMu.Unlock()
		switch d.Action {
		case pace.Alone:
			n.greets.Store(s, true)
		case pace.Root:
			msg := encodeSync(s, n.self.Name, true, crdt.EncodeRangeRoot(rd.Root(), rd.Count), nil)
			n.stats.rootsSent.Add(1)
			n.sendTo(peers[d.Peer], KindSync, msg)
		case pace.Digest:
			n.sendSync(s, peers[d.Peer], true)
		}
	}
	// Taken after this round's digests are sent, so that each names what
	// rose during the interval before it (Scope.streaming).
	for _, s := range n.order {
		n.scopes[s].notePrev()
	}
}

// notePeer updates the peer table at once, from memberlist's callback, so
// that deltas arriving right after a node appears are shown rather than
// hidden; the scope changes it implies are applied by the control loop.
func (n *Node) notePeer(nd *memberlist.Node, alive bool) (peerEvent, bool) {
	if nd.Name == n.self.Name {
		return peerEvent{}, false
	}
	meta, err := decodeNodeMeta(nd.Meta)
	if err != nil {
		n.log.Warn("ignoring node with unreadable metadata", "peer", nd.Name, "err", err)
		return peerEvent{}, false
	}
	c := *nd
	c.Meta = bytes.Clone(nd.Meta)
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.peers.Report(nd.Name, meta.inc, c.Address(), peerInfo{meta: meta, node: &c}, alive, time.Now())
	// Read without the lock by the Plumtree cores' views (plumtree.go),
	// rebuilt after a change.
	n.peersVer.Store(n.peers.Version())
	if !ok {
		return peerEvent{}, false
	}
	return peerEvent{replica: crdt.ReplicaID{Name: e.Name, Incarnation: e.Inc}, scopes: meta.scopes, node: &c,
		alive: e.Alive, wasAlive: e.WasAlive, restarted: e.Restarted, left: e.Left}, true
}

// applyPeerEvent applies a liveness change to every scope.
func (n *Node) applyPeerEvent(e peerEvent) {
	r := e.replica
	n.unconfirmedMu.Lock()
	delete(n.unconfirmed, r) // confirmed alive, or known down: either way settled
	n.unconfirmedMu.Unlock()
	n.plumPeer(r.Name, e.alive, e.scopes)
	for _, name := range n.order {
		sc := n.scopes[name]
		_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
			// memberlist's view is the one authority on incarnations: a
			// restart replaces the old incarnation, and one held here
			// that memberlist never reported (a cache written while a
			// forged claim was believed) is dropped.
			_ = st.Settle(r.Name, r.Incarnation, emit)
			if e.alive {
				st.Readmit(r)
				if n.unsyncedIn(name, r) {
					return nil // cached: shown once caught up (revealSynced)
				}
				return st.Resume(r, emit)
			}
			if bug.NoHide {
				return nil
			}
			return st.Suspend(r, emit)
		})
	}
	n.forgetUnsynced(r)
	switch {
	case e.alive && !e.wasAlive:
		msg := "peer joined"
		if e.restarted {
			msg = "peer restarted"
		}
		n.log.Info(msg, "peer", r.Name, "incarnation", r.Incarnation, "addr", e.node.Address(), "scopes", e.scopes)
		n.paceMu.Lock()
		for k, j := range n.pendingSync {
			if k[1] == r.Name {
				delete(n.pendingSync, k)
				n.enqueueJob(j)
			}
		}
		n.paceMu.Unlock()
		for _, s := range n.order {
			// A node joining a cluster leaves the first move to its peers:
			// every peer that sees it come up greets it with its digest,
			// which proves the peer counts it alive (a digest sent to a peer
			// that has not heard of it yet waits there until it has), and it
			// answers the first greeting that shows it is behind (serveSync),
			// so it fetches the scope once, from that peer.
			// Every peer that comes up is greeted, not only the first of an
			// interval: after a partition heals, the peers of the other
			// side come up one by one, and each needs the exchange to be
			// repaired at once (with one greeting per interval, the others
			// waited for the next anti-entropy round, 2 s on a LAN). A
			// newcomer does not greet (greets is unset until it has caught
			// up), so it still fetches the scope once.
			if n.unsyncedIn(s, r) && slices.Contains(e.scopes, s) {
				// A replica this node holds from its cache, hidden until
				// caught up: the owner's answer shows how far it is.
				n.sendSync(s, e.node, true)
				continue
			}
			if _, greets := n.greets.Load(s); greets && slices.Contains(e.scopes, s) {
				if n.mayGreet(s, r.Name) {
					n.sendSync(s, e.node, true) // converge at once on (re)connect
				}
			}
		}
	case !e.alive && e.left:
		n.log.Info("peer left", "peer", r.Name, "incarnation", r.Incarnation, "addr", e.node.Address())
	case !e.alive:
		n.log.Info("peer failed", "peer", r.Name, "incarnation", r.Incarnation, "addr", e.node.Address())
	}
}

// expire forgets the slices of owners down for longer than the retention.
func (n *Node) expire(now time.Time) {
	n.mu.Lock()
	victims := n.peers.Expire(now, n.cfg.Retention)
	n.mu.Unlock()
	for _, v := range victims {
		r := crdt.ReplicaID{Name: v.Name, Incarnation: v.Inc}
		n.log.Info("forgetting replica after retention", "replica", r)
		for _, s := range n.order {
			_ = n.scopes[s].update(func(st *crdt.State, emit crdt.Emit) error { return st.Forget(r, emit) })
			n.scopes[s].forgetPeer(r.Name)
			n.paceMu.Lock()
			n.pace.Forget(s, r.Name)
			n.paceMu.Unlock()
		}
	}
}
