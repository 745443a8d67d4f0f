package gossip

import (
	"bytes"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
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
	rejoinDelay := n.cfg.RejoinInterval
	rejoin := time.NewTimer(rejoinDelay)
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
			if len(addrs) == 0 {
				rejoinDelay = n.cfg.RejoinInterval
				rejoin.Reset(n.jitter(rejoinDelay))
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
			if ok {
				rejoinDelay = n.cfg.RejoinInterval
			} else {
				rejoinDelay = min(2*rejoinDelay, n.cfg.RejoinMaxInterval)
			}
			rejoin.Reset(n.jitter(rejoinDelay))
		}
	}
}

func (n *Node) jitter(d time.Duration) time.Duration {
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return d/2 + time.Duration(n.rng.Int64N(int64(d)))
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
	// One pass over the peers, with no map of them: this runs every
	// second on every node, and building one (formatting every alive
	// peer's address) took 23% of the CPU of 500 nodes in one process
	// (roster-bench -run=scale).
	seeds := n.seedsExceptSelf()
	seedAlive := make(map[string]bool, len(seeds))
	for _, s := range seeds {
		seedAlive[s] = false
	}
	var out []string
	n.mu.Lock()
	for _, p := range n.peers {
		if p.node == nil {
			continue
		}
		if p.state == PeerAlive {
			for _, k := range [2]string{p.addr, p.name} {
				if _, ok := seedAlive[k]; ok {
					seedAlive[k] = true
				}
			}
			continue
		}
		if p.state != PeerLeft {
			out = append(out, p.addr)
		}
	}
	n.mu.Unlock()
	for _, s := range seeds {
		if !seedAlive[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
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

// maxBusyTicks bounds how many anti-entropy rounds in a row a scope skips
// while deltas are queued for merging.
const maxBusyTicks = 4

// antiEntropy sends, for each scope, our digest to one random alive peer.
func (n *Node) antiEntropy() {
	n.stats.antiEntropyRounds.Add(1)
	now := time.Now()
	n.flushHeld(now)
	for _, s := range n.order {
		sc := n.scopes[s]
		if n.transferring(s, now) {
			continue
		}
		if sc.merging.Load() > 0 && sc.busyTicks < maxBusyTicks {
			// Deltas are queued for merging here: our digest would ask for
			// them again. Skip this round (a bounded number of times, so a
			// lost packet under a steady stream is still repaired).
			sc.busyTicks++
			continue
		}
		sc.busyTicks = 0
		peers := n.scopePeers(s)
		if len(peers) == 0 {
			n.greets.Store(s, true)
			continue
		}
		if _, ok := n.caughtUp.Load(s); !ok && !n.mayCatchUp(s) {
			// Not caught up yet, and this interval's exchange is under way
			// (a greeting answered): a second digest now would fetch the
			// scope twice, from two peers.
			continue
		}
		n.rngMu.Lock()
		p := peers[n.rng.IntN(len(peers))]
		n.rngMu.Unlock()
		if n.sendRoot(s, p) {
			continue
		}
		n.sendSync(s, p, true)
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
	n.peersVer.Add(1) // the Plumtree cores' views are rebuilt (plumtree.go)
	p := n.peers[nd.Name]
	if p == nil {
		p = &peer{name: nd.Name}
		n.peers[p.name] = p
	}
	if meta.inc < p.meta.inc {
		return peerEvent{}, false // an old incarnation's news
	}
	// A new incarnation is a new peer coming up, even if memberlist never
	// saw the old one die (a quick restart): it gets greeted like one.
	restarted := p.meta.inc != 0 && meta.inc > p.meta.inc
	p.node = &c
	p.addr = c.Address()
	p.meta = meta
	e := peerEvent{replica: p.replica(), scopes: meta.scopes, node: &c, alive: alive, wasAlive: p.state == PeerAlive && !restarted, restarted: restarted}
	switch {
	case alive:
		p.state, p.downSince, p.forgotten = PeerAlive, time.Time{}, false
	case p.state == PeerLeft:
		return peerEvent{}, false // already down
	case p.leavingInc == meta.inc && time.Since(p.leavingAt) < leaveWindow:
		// memberlist's NotifyLeave does not say whether a node left or
		// died; the peer said it was leaving just before.
		p.state, p.downSince = PeerLeft, time.Now()
		e.left = true
	default:
		p.state, p.downSince = PeerDead, time.Now()
	}
	return e, true
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
		n.servedMu.Lock()
		for k, j := range n.pendingSync {
			if k[1] == r.Name {
				delete(n.pendingSync, k)
				n.enqueueJob(j)
			}
		}
		n.servedMu.Unlock()
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
	var victims []crdt.ReplicaID
	n.mu.Lock()
	for _, p := range n.peers {
		if p.state != PeerAlive && !p.forgotten && !p.downSince.IsZero() && now.Sub(p.downSince) >= n.cfg.Retention {
			p.forgotten = true
			victims = append(victims, p.replica())
		}
	}
	n.mu.Unlock()
	for _, r := range victims {
		n.log.Info("forgetting replica after retention", "replica", r)
		for _, s := range n.order {
			_ = n.scopes[s].update(func(st *crdt.State, emit crdt.Emit) error { return st.Forget(r, emit) })
			n.scopes[s].forgetPeer(r.Name)
		}
	}
}
