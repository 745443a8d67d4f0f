package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/internal/bug"
)

// PeerState is what this node believes about another node.
type PeerState string

const (
	PeerAlive   PeerState = "alive"
	PeerDead    PeerState = "dead"    // failure detector declared it dead
	PeerLeft    PeerState = "left"    // it left gracefully
	PeerUnknown PeerState = "unknown" // known only from replicated state, never seen alive
)

// NodeInfo describes one node of the cluster as seen from here.
type NodeInfo struct {
	Name        string
	Incarnation uint64
	Addr        string
	State       PeerState
	Scopes      []string
	Self        bool
}

// Stats are cumulative counters, for metrics and tests. DeltasSent
// counts the local operations pushed, a join, leave or LeaveAll each (each
// is one delta; under load they go out batched, up to
// crdt.DefaultBatchLimit operations and Config.ChunkBytes per delta on the
// wire); DeltasReceived counts the deltas decoded.
type Stats struct {
	DeltasSent, DeltasReceived, PacketsSent, ReliableSent     int64
	SyncsSent, SyncsServed, RepairDeltasSent, RepairBytesSent int64
	DecodeErrors, OutOfOrderChunks                            int64
	RejoinAttempts, RejoinSuccesses                           int64
	BytesSent                                                 int64
	// Piggybacked counts delta packets queued on memberlist's gossip.
	Piggybacked int64
	// HeldBack counts deltas that arrived after a gap in their owner's
	// counters and waited for it (see Config.HoldBack).
	HeldBack int64
	// Relayed counts received deltas passed on to other peers (FanOut).
	Relayed int64
	// PacketsDropped counts received packets dropped because inboxDepth
	// were already waiting to be handled.
	PacketsDropped int64
	// Unvouched counts received deltas dropped because memberlist does not
	// vouch for their replica: a name it has never reported, or an
	// incarnation other than the one its view of the node carries. Only
	// memberlist's view moves an incarnation (guarantee 1); anti-entropy
	// brings what was legitimately early once memberlist catches up.
	Unvouched int64
	// Forged counts messages dropped because their claimed sender is not
	// a peer memberlist knows at that incarnation, or not the address they
	// came from, and relay requests refused (see Config.FanOut).
	Forged int64
	// Overflow counts out-of-order transfer chunks and held-back deltas
	// dropped because their bounds (by bytes and per replica) were
	// reached; anti-entropy repairs what they carried.
	Overflow int64
}

type stats struct {
	deltasSent, deltasReceived, packetsSent, reliableSent atomic.Int64
	syncsSent, syncsServed, repairDeltasSent, repairBytes atomic.Int64
	decodeErrors, outOfOrder                              atomic.Int64
	rejoinAttempts, rejoinSuccesses, bytesSent            atomic.Int64
	piggybacked, heldBack, relayed, packetsDropped        atomic.Int64
	unvouched, forged, overflow                           atomic.Int64
}

type peer struct {
	name      string
	meta      nodeMeta
	node      *memberlist.Node // last known, copied
	state     PeerState
	downSince time.Time
	forgotten bool
	// leavingAt is when the peer announced a graceful leave of incarnation
	// leavingInc (a msgLeaving). It only labels the down event memberlist
	// reports within leaveWindow as "left" rather than "dead" (a left peer
	// is not retried by the rejoin loop); it hides nothing by itself.
	leavingAt  time.Time
	leavingInc uint64
}

func (p *peer) replica() crdt.ReplicaID { return crdt.ReplicaID{Name: p.name, Incarnation: p.meta.inc} }

type peerEvent struct {
	replica         crdt.ReplicaID
	scopes          []string
	node            *memberlist.Node
	alive, wasAlive bool
}

type syncJob struct {
	scope     string
	from      string
	wantReply bool
	digest    crdt.Digest
	sum       uint64   // hash of the encoded digest
	streaming []string // replicas whose deltas are still arriving at from
}

// served remembers the last repair sent to a peer for a scope, so that the
// same digest arriving again while that repair is still in flight (peer-up
// syncs from both sides, push/pull and anti-entropy often coincide) is not
// answered with the same bytes twice.
type served struct {
	sum uint64
	at  time.Time
}

// Node is one roster node's gossip layer: memberlist plus the scope states.
type Node struct {
	cfg  Config
	log  *slog.Logger
	self crdt.ReplicaID
	ml   *memberlist.Memberlist
	net  *NetTransport // the transport New made; nil with Config.Transport
	// madeKeyring is the keyring memberlist made of Config.SecretKey (nil when
	// Config.Memberlist.Keyring was given, or gossip is not encrypted).
	madeKeyring *memberlist.Keyring
	addr        string // advertised host:port
	meta        []byte
	scopes      map[string]*Scope
	order       []string // scope names, sorted

	mu    sync.Mutex
	peers map[string]*peer

	outMu  sync.Mutex
	out    map[string]*crdt.Batch // scope -> local operations waiting to be pushed
	relays []relay                // received deltas waiting to be passed on (FanOut)
	outSig chan struct{}

	evMu  sync.Mutex
	evq   []peerEvent
	evSig chan struct{}

	jobs chan syncJob
	// inbox carries roster packets from NetTransport to the inbox loop (nil
	// when memberlist delivers them: another transport, encryption).
	inbox chan inbound

	servedMu sync.Mutex
	served   map[[2]string]served
	catchUp  map[string]time.Time    // scope -> last digest sent
	greeted  map[[2]string]time.Time // (scope, peer) -> last greeting sent
	// pendingSync: digests from peers not yet alive here, by (scope, peer).
	pendingSync map[[2]string]syncJob

	stashMu sync.Mutex
	stash   map[stashKey]*crdt.Delta
	// stashBytes is the Footprint of the stashed chunks, in all and per
	// (scope, replica).
	stashBytes     int
	stashByReplica map[[2]string]int

	rngMu sync.Mutex
	rng   *rand.Rand

	// unconfirmed holds replicas loaded from a cache at start, shown until
	// the deadline even though their owners have not been seen yet; then
	// hidden unless the owner is alive (see Preload).
	unconfirmedMu sync.Mutex
	unconfirmed   map[crdt.ReplicaID]time.Time

	// caughtUp records the scopes that completed one anti-entropy round
	// trip with a peer (see Ready).
	caughtUp sync.Map
	// greets records the scopes for which this node greets a peer that
	// comes up with its digest: those it caught up on, and those it held
	// alone (started without seeds, or found no peer at an anti-entropy
	// tick). A node joining a cluster waits for its peers' greetings
	// instead (see applyPeerEvent).
	greets sync.Map

	bcast *memberlist.TransmitLimitedQueue // nil when PiggybackQueue is 0

	stats   stats
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
	closeMu sync.Mutex
}

type stashKey struct {
	scope, replica string
	xfer           uint64
	seq            uint32
}

// Bounds on the chunks of transfers that arrive before their predecessor
// (stashed until it comes): in number, in bytes (crdt.Delta.Footprint), and
// per (scope, replica) in bytes. Past them the stash of that replica (or
// all of it) is given up, and the next exchange starts the transfer over.
// Chunks are stashed only in a scope that sent a digest within stashWindow
// (transfers are answers to digests).
const (
	maxStash             = 1024
	maxStashBytes        = 32 << 20
	maxStashReplicaBytes = 16 << 20
)

// maxPendingSync bounds the digests kept for peers memberlist has not
// reported yet (see serveSync).
const maxPendingSync = 256

// New starts a node: it creates the scope states, starts memberlist and the
// background loops, and tries the seeds once (the rejoin loop keeps trying).
// sink receives every scope's events in order, with the scope's lock held;
// it must not block.
func New(cfg Config, sink func(scope string, evs []crdt.Event), opts ...Option) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:    cfg,
		log:    lg.With("node", cfg.Name),
		self:   crdt.ReplicaID{Name: cfg.Name, Incarnation: cfg.Incarnation},
		scopes: map[string]*Scope{},
		peers:  map[string]*peer{},
		out:    map[string]*crdt.Batch{},
		outSig: make(chan struct{}, 1),
		evSig:  make(chan struct{}, 1),
		jobs:   make(chan syncJob, 256),
		stash:  map[stashKey]*crdt.Delta{},

		stashByReplica: map[[2]string]int{},
		served:         map[[2]string]served{},
		catchUp:        map[string]time.Time{},
		greeted:        map[[2]string]time.Time{},

		pendingSync: map[[2]string]syncJob{},

		unconfirmed: map[crdt.ReplicaID]time.Time{},
		rng:         rand.New(rand.NewPCG(cfg.Incarnation, uint64(len(cfg.Name)))),
		stop:        make(chan struct{}),
	}
	for _, s := range cfg.Scopes {
		st, err := crdt.New(n.self, cfg.Crdt)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		n.scopes[s] = &Scope{name: s, st: st, sink: sink}
		n.order = append(n.order, s)
	}
	slices.Sort(n.order)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// Warm state goes in before memberlist starts, so that the first
	// digest this node sends already covers it.
	for _, scope := range n.order {
		if chunks := o.preload[scope]; len(chunks) > 0 {
			if _, err := n.preload(scope, chunks, o.grace); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Insecure && !cfg.encrypted() && !loopback(cfg.BindAddr) {
		n.log.Warn("GOSSIP IS UNENCRYPTED AND UNAUTHENTICATED: anyone who can reach this port can add, remove or hide any node's members (Insecure is set)",
			"bind", cfg.BindAddr, "port", cfg.BindPort)
	}
	meta, err := encodeNodeMeta(cfg.Incarnation, n.order, memberlist.MetaMaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	n.meta = meta

	mc := *cfg.Memberlist
	mc.Name = cfg.Name
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{log: n.log}, "", 0)
	var own *NetTransport // the transport New made, if it made one
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		t, err := NewNetTransport(cfg.BindAddr, cfg.BindPort, n.log)
		if err != nil {
			return nil, err
		}
		own = t
		mc.Transport = t
		mc.BindAddr, mc.BindPort = cfg.BindAddr, t.Port()
		if cfg.AdvertisePort == 0 {
			mc.AdvertisePort = t.Port()
		}
	}
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	if cfg.AdvertisePort != 0 {
		mc.AdvertisePort = cfg.AdvertisePort
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
	}
	if cfg.Cluster != "" {
		mc.Label = cfg.Cluster
	}
	// The piggyback queue exists before memberlist starts: its gossip loop
	// asks for broadcasts from the start.
	var started atomic.Pointer[memberlist.Memberlist]
	if cfg.PiggybackQueue > 0 {
		n.bcast = &memberlist.TransmitLimitedQueue{
			NumNodes: func() int {
				if ml := started.Load(); ml != nil {
					return ml.NumMembers()
				}
				return 1
			},
			RetransmitMult: mc.RetransmitMult,
		}
	}
	if own != nil && len(mc.SecretKey) == 0 && mc.Keyring == nil && !mc.SkipInboundLabelCheck {
		// Handled by the inbox loop, not on the read loop: a merge waits for
		// the scope's lock (held through a whole transfer), and the read
		// loop also carries memberlist's probes.
		n.inbox = make(chan inbound, inboxDepth)
		own.Deliver(mc.Label, n.deliver)
	}
	ml, err := memberlist.Create(&mc)
	if err != nil {
		if cfg.Transport == nil {
			_ = mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	n.ml = ml
	n.net = own
	// memberlist made a keyring of SecretKey in its copy of the config:
	// keep it, so that keys can be rotated (keyring.go) whichever way the
	// key was given.
	if n.cfg.Memberlist.Keyring == nil && mc.Keyring != nil {
		n.madeKeyring = mc.Keyring
	}
	started.Store(ml)
	// Taken once: after a Leave, memberlist may drop its own node from its
	// map, and LocalNode would then dereference nil.
	ln := ml.LocalNode()
	n.addr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	if n.inbox != nil {
		n.wg.Add(1)
		go drain(n, n.inbox, func(p inbound) { n.handleMessage(p.b, p.src) })
	}
	n.wg.Add(3)
	go n.sendLoop()
	go drain(n, n.jobs, n.serveSync)
	go n.controlLoop()
	if len(n.seedsExceptSelf()) == 0 {
		for _, name := range n.order {
			n.greets.Store(name, true)
		}
	}
	if len(cfg.Seeds) > 0 {
		if _, err := ml.Join(n.seedsExceptSelf()); err != nil {
			n.log.Warn("initial join failed; the rejoin loop keeps trying", "seeds", cfg.Seeds, "err", err)
		}
	}
	return n, nil
}

// Ready reports whether the node has joined its cluster and caught up:
// with seeds configured, at least one other node is alive, and every scope
// that has alive peers completed one anti-entropy round trip (a peer
// answered our digest after sending what we lacked). A node without seeds
// or peers is ready at once.
func (n *Node) Ready() bool {
	if n.closed.Load() {
		return false
	}
	if len(n.seedsExceptSelf()) > 0 && n.ml.NumMembers() < 2 {
		return false
	}
	for _, s := range n.order {
		if len(n.scopePeers(s)) == 0 {
			continue
		}
		if _, ok := n.caughtUp.Load(s); !ok {
			return false
		}
	}
	return true
}

// Self returns this node's replica id.
func (n *Node) Self() crdt.ReplicaID { return n.self }

// Addr returns the address other nodes join this one at (host:port).
func (n *Node) Addr() string { return n.addr }

// Scope returns the named scope's state, if this node serves it.
func (n *Node) Scope(name string) (*Scope, bool) {
	s, ok := n.scopes[name]
	return s, ok
}

// Scopes returns the served scope names, sorted.
func (n *Node) Scopes() []string { return slices.Clone(n.order) }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := &n.stats
	return Stats{
		DeltasSent: s.deltasSent.Load(), DeltasReceived: s.deltasReceived.Load(),
		PacketsSent: s.packetsSent.Load(), ReliableSent: s.reliableSent.Load(),
		SyncsSent: s.syncsSent.Load(), SyncsServed: s.syncsServed.Load(),
		RepairDeltasSent: s.repairDeltasSent.Load(), RepairBytesSent: s.repairBytes.Load(),
		DecodeErrors:     s.decodeErrors.Load(),
		OutOfOrderChunks: s.outOfOrder.Load(),
		RejoinAttempts:   s.rejoinAttempts.Load(), RejoinSuccesses: s.rejoinSuccesses.Load(),
		BytesSent: s.bytesSent.Load(), Piggybacked: s.piggybacked.Load(), HeldBack: s.heldBack.Load(),
		Relayed: s.relayed.Load(), PacketsDropped: s.packetsDropped.Load(),
		Unvouched: s.unvouched.Load(), Forged: s.forged.Load(), Overflow: s.overflow.Load(),
	}
}

// --- Local operations -------------------------------------------------------

func (n *Node) scope(name string) (*Scope, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	s, ok := n.scopes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (this node serves %v)", ErrUnknownScope, name, n.order)
	}
	return s, nil
}

// Join adds or updates the local member (group, id) in scope and pushes the
// change to the scope's peers. Names must be valid (crdt.ValidName) and meta
// produced by crdt.EncodeMeta.
func (n *Node) Join(scope, group, id string, meta crdt.RawMeta) error {
	_, err := n.JoinAdded(scope, group, id, meta)
	return err
}

// JoinAdded is Join that also reports whether the member is new (not an
// update of one this node already had).
func (n *Node) JoinAdded(scope, group, id string, meta crdt.RawMeta) (bool, error) {
	sc, err := n.scope(scope)
	if err != nil {
		return false, err
	}
	var j crdt.LocalJoin
	var self crdt.ReplicaID
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		// A value, not a delta: a burst of joins allocates none per join.
		j, self = st.JoinLocal(group, id, meta, emit), st.Local()
		return nil
	})
	if !j.Changed() {
		return false, nil
	}
	added := j.Prev == 0
	return added, n.queue(scope, func(b *crdt.Batch) error { return b.AddJoin(self, j) })
}

// Leave removes the local member (group, id) from scope.
func (n *Node) Leave(scope, group, id string) error {
	return n.local(scope, func(st *crdt.State, emit crdt.Emit) (*crdt.Delta, error) {
		return st.Leave(group, id, emit)
	})
}

// LeaveAll removes the local member id from every group of scope.
func (n *Node) LeaveAll(scope, id string) error {
	return n.local(scope, func(st *crdt.State, emit crdt.Emit) (*crdt.Delta, error) {
		return st.LeaveAll(id, emit)
	})
}

func (n *Node) local(scope string, op func(*crdt.State, crdt.Emit) (*crdt.Delta, error)) error {
	sc, err := n.scope(scope)
	if err != nil {
		return err
	}
	var d *crdt.Delta
	err = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		var err error
		d, err = op(st, emit)
		return err
	})
	if err != nil || d == nil {
		return err
	}
	if bug.NoLeaves {
		return nil // the leave stays here: peers are never told
	}
	return n.queue(scope, func(b *crdt.Batch) error { return b.Add(d) })
}

// queue records a local operation in the scope's batch (add) for the send
// loop.
func (n *Node) queue(scope string, add func(*crdt.Batch) error) error {
	n.outMu.Lock()
	err := add(n.batch(scope))
	n.outMu.Unlock()
	if err != nil {
		// Cannot happen: a scope's operations are all its own
		// replica's. If it did, anti-entropy would still carry it.
		n.log.Error("batching a local operation failed", "scope", scope, "err", err)
		return err
	}
	n.wakeSender()
	return nil
}

// batch returns the scope's batch of local operations waiting to be
// pushed; n.outMu is held. A burst becomes a few deltas of up to
// crdt.DefaultBatchLimit operations and about ChunkBytes each (as large as
// a repair's chunks), which a peer merges with one lock and one
// validation each instead of thousands; a single operation goes out alone.
func (n *Node) batch(scope string) *crdt.Batch {
	b := n.out[scope]
	if b == nil {
		b = &crdt.Batch{Bytes: n.cfg.ChunkBytes}
		n.out[scope] = b
	}
	return b
}

// wakeSender tells the send loop there is something to send.
func (n *Node) wakeSender() {
	select {
	case n.outSig <- struct{}{}:
	default:
	}
}

// --- Peers --------------------------------------------------------------------

// Nodes returns every node this one knows of, itself included, sorted by name.
func (n *Node) Nodes() []NodeInfo {
	out := []NodeInfo{{Name: n.self.Name, Incarnation: n.self.Incarnation, Addr: n.Addr(), State: PeerAlive, Scopes: n.Scopes(), Self: true}}
	n.mu.Lock()
	for _, p := range n.peers {
		info := NodeInfo{Name: p.name, Incarnation: p.meta.inc, State: p.state, Scopes: slices.Clone(p.meta.scopes)}
		if p.node != nil {
			info.Addr = p.node.Address()
		}
		out = append(out, info)
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// scopePeers returns copies of the alive peers serving scope.
func (n *Node) scopePeers(scope string) []*memberlist.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*memberlist.Node
	for _, p := range n.peers {
		if p.state == PeerAlive && p.node != nil && p.meta.serves(scope) {
			out = append(out, p.node)
		}
	}
	return out
}

func (n *Node) peerNode(name string) *memberlist.Node {
	n.mu.Lock()
	p := n.peers[name]
	var nd *memberlist.Node
	if p != nil && p.state == PeerAlive {
		nd = p.node
	}
	n.mu.Unlock()
	// memberlist's Members() hands out its live Node structs, which it
	// keeps mutating: read only our copies, taken in its callbacks (under
	// its lock) before any push/pull state is merged.
	return nd
}

// vouched reports whether memberlist vouches for replica r: r is this
// node's name (the state sorts out its own incarnations), or memberlist has
// reported a node of that name whose metadata carries incarnation r's. A
// delta of any other replica is dropped unmerged: a name memberlist never
// reported would be a phantom node, and an incarnation it did not report
// would supersede (drop) or revive a slice on a claim anyone can forge.
// What was merely early (a restarted owner's first deltas, overtaking its
// alive message) comes back through anti-entropy once memberlist reports
// it, since the greeting that follows a peer coming up exchanges digests.
func (n *Node) vouched(r crdt.ReplicaID) bool {
	if r.Name == n.self.Name {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[r.Name]
	return p != nil && p.node != nil && p.meta.inc == r.Incarnation
}

// ensureHidden suspends a replica whose owner is not known alive with that
// incarnation, before its state is merged: members of owners this node
// cannot reach are never shown. The peer table is updated from memberlist's
// callback before the control loop suspends the replica, so a delta landing
// in between may find the slice still visible: the leave events go out
// here then (Cause Suspended), and the control loop's Suspend is a no-op.
func (n *Node) ensureHidden(st *crdt.State, r crdt.ReplicaID, emit crdt.Emit) {
	if r.Name == n.self.Name || bug.NoHide {
		return
	}
	n.mu.Lock()
	p := n.peers[r.Name]
	visible := p != nil && p.state == PeerAlive && p.meta.inc == r.Incarnation
	if p == nil {
		p = &peer{name: r.Name, meta: nodeMeta{inc: r.Incarnation}, state: PeerUnknown, downSince: time.Now()}
		n.peers[r.Name] = p
	}
	n.mu.Unlock()
	if !visible && !n.pendingConfirmation(r) && !st.Suspended(r) {
		_ = st.Suspend(r, emit)
	}
}

// --- Receiving ------------------------------------------------------------------

func (n *Node) handleMessage(b []byte, src net.Addr) {
	m, err := decodeMessage(b)
	if err != nil {
		n.stats.decodeErrors.Add(1)
		n.log.Debug("dropping malformed message", "err", err)
		return
	}
	switch m.kind {
	case msgDeltas, msgRelay:
		n.mergeDeltas(m.scope, m.payloads, m.relayTo)
	case msgSync:
		if !n.claimed(m.from, src) {
			n.stats.forged.Add(1)
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
					sc.expect(time.Now(), 5*n.cfg.AntiEntropyInterval)
				} else {
					sc.expectTo.Store(0) // answered: nothing is coming
				}
			}
		}
		h := fnv.New64a()
		_, _ = h.Write(m.payloads[0])
		n.enqueueJob(syncJob{scope: m.scope, from: m.from, wantReply: m.wantReply, digest: d, sum: h.Sum64(), streaming: m.streaming})
	case msgLeaving:
		n.peerLeaving(m.from, m.inc, src)
	}
}

// leaveWindow is how long a peer's announcement that it is leaving labels
// the down event memberlist reports for it (before or after).
const leaveWindow = 10 * time.Second

// peerLeaving notes a peer's announcement that it is leaving. Anyone can
// send one claiming any name, so it hides nothing: the peer's members are
// hidden when memberlist reports it down (its own leave broadcast), and
// the announcement only makes that down event a graceful leave (listed as
// left, not retried by the rejoin loop) when the two come within
// leaveWindow of each other. src, when known (the plain direct path), must
// be the peer's own gossip address.
func (n *Node) peerLeaving(name string, inc uint64, src net.Addr) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[name]
	if p == nil || p.node == nil || p.meta.inc != inc || name == n.self.Name || !sameSender(p.node, src) {
		n.stats.forged.Add(1)
		return
	}
	p.leavingAt, p.leavingInc = now, inc
	if p.state == PeerDead && now.Sub(p.downSince) < leaveWindow {
		p.state = PeerLeft // memberlist's down event came first
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
	p := n.peers[name]
	if p == nil || p.node == nil {
		return true
	}
	return sameSender(p.node, src)
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
			if sc.holdBack(st, d, n.cfg.HoldBack) {
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

// drainHeld merges the held-back deltas of replica that no longer follow
// a gap (all of them when force: waiting longer would only delay them).
// The scope is locked.
func (n *Node) drainHeld(sc *Scope, st *crdt.State, replica string, emit crdt.Emit, force bool) {
	for {
		d := sc.nextHeld(st, replica, force)
		if d == nil {
			return
		}
		n.ensureHidden(st, d.Replica, emit)
		st.MergeValidated(d, emit)
	}
}

// flushHeld merges deltas held back longer than the hold-back time: the
// gap before them was a lost packet, which anti-entropy repairs anyway.
func (n *Node) flushHeld(now time.Time) {
	for _, name := range n.order {
		sc := n.scopes[name]
		for _, r := range sc.overdue(now, n.cfg.HoldBack) {
			_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
				n.drainHeld(sc, st, r, emit, true)
				return nil
			})
		}
	}
}

// stashChunk keeps a chunk that came before its predecessor, within the
// stash's bounds, and reports whether it did (if not, the caller releases
// it).
func (n *Node) stashChunk(sc *Scope, d *crdt.Delta) bool {
	if at := sc.askedAt.Load(); at == 0 || time.Since(time.Unix(0, at)) > n.stashWindow() {
		return false // not an answer to anything this node asked
	}
	size := d.Footprint()
	rk := [2]string{sc.name, d.Replica.Name}
	n.stashMu.Lock()
	defer n.stashMu.Unlock()
	if n.stashByReplica[rk]+size > maxStashReplicaBytes {
		n.dropStashLocked(func(k stashKey) bool { return k.scope == rk[0] && k.replica == rk[1] })
		return false
	}
	if len(n.stash) >= maxStash || n.stashBytes+size > maxStashBytes {
		n.dropStashLocked(func(stashKey) bool { return true })
		if size > maxStashBytes {
			return false
		}
	}
	k := stashKey{sc.name, d.Replica.Name, d.Xfer, d.Seq}
	if old := n.stash[k]; old != nil {
		n.forgetStashedLocked(k, old)
		old.Release()
	}
	n.stash[k] = d
	n.stashBytes += size
	n.stashByReplica[rk] += size
	return true
}

// stashWindow is how long after its last digest a scope takes chunks of a
// transfer out of order.
func (n *Node) stashWindow() time.Duration {
	return max(10*n.cfg.AntiEntropyInterval, 10*time.Second)
}

// dropStashLocked gives up the stashed chunks whose keys match.
func (n *Node) dropStashLocked(match func(stashKey) bool) {
	for k, d := range n.stash {
		if match(k) {
			n.forgetStashedLocked(k, d)
			d.Release()
			n.stats.overflow.Add(1)
		}
	}
}

func (n *Node) forgetStashedLocked(k stashKey, d *crdt.Delta) {
	size := d.Footprint()
	delete(n.stash, k)
	n.stashBytes -= size
	rk := [2]string{k.scope, k.replica}
	if n.stashByReplica[rk] -= size; n.stashByReplica[rk] <= 0 {
		delete(n.stashByReplica, rk)
	}
}

func (n *Node) unstash(scope, replica string, xfer uint64, seq uint32) *crdt.Delta {
	n.stashMu.Lock()
	defer n.stashMu.Unlock()
	k := stashKey{scope, replica, xfer, seq}
	d := n.stash[k]
	if d != nil {
		n.forgetStashedLocked(k, d)
	}
	return d
}

// --- Sending --------------------------------------------------------------------

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

// sendDeltas sends encoded deltas to peers: packed into best-effort packets
// when few, as one reliable message per peer when many or when one delta
// does not fit a packet.
//
// Packets of local deltas (piggyback) are also queued on memberlist's
// gossip; repairs and relayed deltas are not.
func (n *Node) sendDeltas(scope string, peers []*memberlist.Node, ds [][]byte, relayTo []string, piggyback bool) {
	if len(peers) == 0 || len(ds) == 0 {
		return
	}
	packets := n.packets(scope, ds, relayTo)
	if packets == nil {
		for _, msg := range n.pack(scope, ds, 8<<20, relayTo) {
			for _, p := range peers {
				n.sendReliable(p, msg)
			}
		}
		return
	}
	if piggyback {
		n.piggyback(packets)
	}
	for _, msg := range packets {
		for _, p := range peers {
			if err := n.ml.SendBestEffort(p, msg); err != nil {
				n.log.Debug("send failed", "to", p.Name, "err", err)
				continue
			}
			n.stats.packetsSent.Add(1)
			n.stats.bytesSent.Add(int64(len(msg)))
		}
	}
}

// packets packs deltas into best-effort packets, or returns nil when they
// go as a stream instead (one delta does not fit a packet, or they take
// more than ReliableBatchPackets).
func (n *Node) packets(scope string, ds [][]byte, relayTo []string) [][]byte {
	packets := n.pack(scope, ds, n.cfg.MaxPacketBytes, relayTo)
	if len(packets) > n.cfg.ReliableBatchPackets {
		return nil
	}
	return packets
}

// pack groups encoded deltas into messages of at most limit bytes. It
// returns nil if a single delta does not fit.
func (n *Node) pack(scope string, ds [][]byte, limit int, relayTo []string) [][]byte {
	var out [][]byte
	var cur [][]byte
	size := deltasOverhead(scope, relayTo)
	for _, d := range ds {
		need := len(d) + perDeltaOverhead
		if deltasOverhead(scope, relayTo)+need > limit {
			return nil
		}
		if size+need > limit && len(cur) > 0 {
			out = append(out, encodeDeltas(scope, relayTo, cur))
			cur, size = nil, deltasOverhead(scope, relayTo)
		}
		cur = append(cur, d)
		size += need
	}
	if len(cur) > 0 {
		out = append(out, encodeDeltas(scope, relayTo, cur))
	}
	return out
}

func (n *Node) sendReliable(p *memberlist.Node, msg []byte) {
	if err := n.ml.SendReliable(p, msg); err != nil {
		n.log.Debug("reliable send failed", "to", p.Name, "err", err)
		return
	}
	n.stats.reliableSent.Add(1)
	n.stats.bytesSent.Add(int64(len(msg)))
}

// sendSync sends our digest of scope to a peer.
func (n *Node) sendSync(scope string, to *memberlist.Node, wantReply bool) {
	sc := n.scopes[scope]
	var dig []byte
	var streaming []string
	sc.Read(func(st *crdt.State) {
		d := st.Digest()
		dig = crdt.EncodeDigest(d)
		streaming = sc.streaming(d)
	})
	msg := encodeSync(scope, n.self.Name, wantReply, dig, streaming)
	n.stats.syncsSent.Add(1)
	sc.askedAt.Store(time.Now().UnixNano())
	if len(msg) <= n.cfg.MaxPacketBytes {
		if err := n.ml.SendBestEffort(to, msg); err == nil {
			n.stats.packetsSent.Add(1)
			n.stats.bytesSent.Add(int64(len(msg)))
		}
		return
	}
	n.sendReliable(to, msg)
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
	if to == nil {
		// A digest from a node we do not count alive yet (its alive
		// message is still on its way, as after a partition heals): answer
		// it as soon as it is, rather than wait for the next round.
		n.servedMu.Lock()
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
		n.servedMu.Unlock()
		return
	}
	n.stats.syncsServed.Add(1)
	var ds []*crdt.Delta
	ahead := false // the peer holds what we lack: our digest will fetch it
	_ = sc.update(func(st *crdt.State, emit crdt.Emit) error {
		// The digest's incarnations are the peer's claims: they decide
		// what is sent to it, never what is held here (only memberlist's
		// view moves an incarnation: applyPeerEvent).
		ds = st.Diff(sc.skipInFlight(j.from, j.digest, j.streaming, st, time.Now(), 2*n.cfg.AntiEntropyInterval), n.cfg.ChunkBytes)
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
		n.sendDeltas(j.scope, []*memberlist.Node{to}, enc, nil, false)
	}
	if j.wantReply && n.mayReply(j.scope) {
		if ahead {
			// The peer answers our digest with a repair: wait for it rather
			// than ask another peer for the same state meanwhile.
			sc.expect(time.Now(), 5*n.cfg.AntiEntropyInterval)
		}
		n.sendSync(j.scope, to, false)
	}
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
// makes the peer send what we lack). A node that has not caught up on the
// scope yet (a fresh node, which every peer greets with its digest)
// answers once per interval, so it fetches the scope from one peer rather
// than all; afterwards it answers unless a transfer is already coming.
func (n *Node) mayReply(scope string) bool {
	if _, ok := n.caughtUp.Load(scope); !ok {
		return n.mayCatchUp(scope)
	}
	// While deltas are queued for merging here our digest would ask for
	// them again; the peer's own rounds complete the exchange later.
	return !n.transferring(scope, time.Now()) && n.scopes[scope].merging.Load() == 0
}

// mayGreet decides whether this node greets peer, just seen up, with its
// digest of scope: once per anti-entropy interval per peer, so a flapping
// peer is not greeted at every flap.
func (n *Node) mayGreet(scope, peer string) bool {
	n.servedMu.Lock()
	defer n.servedMu.Unlock()
	if len(n.greeted) >= 4096 {
		clear(n.greeted) // bounded: forgetting only allows an extra greeting
	}
	return onceEvery(n.greeted, [2]string{scope, peer}, time.Now(), n.cfg.AntiEntropyInterval)
}

// mayCatchUp decides whether this node sends its digest of scope outside
// the periodic round (on a peer coming up, or in reply to a peer's digest):
// at most once per anti-entropy interval. Every peer that receives our
// digest answers with all we lack, so sending it to the four nodes that
// came up together would fetch a newcomer's scope four times; one exchange
// at once and the periodic rounds after it converge with a single copy.
func (n *Node) mayCatchUp(scope string) bool {
	now := time.Now()
	if n.transferring(scope, now) {
		return false
	}
	n.servedMu.Lock()
	defer n.servedMu.Unlock()
	return onceEvery(n.catchUp, scope, now, n.cfg.AntiEntropyInterval)
}

// onceEvery reports whether k was last let through at least every ago,
// and if so records now as its time. The caller holds the map's lock.
func onceEvery[K comparable](last map[K]time.Time, k K, now time.Time, every time.Duration) bool {
	if t, ok := last[k]; ok && now.Sub(t) < every {
		return false
	}
	last[k] = now
	return true
}

// repeatRepair reports whether the same digest from the same peer was
// answered with a repair less than half an anti-entropy interval ago; if
// not, it records this one. A repair that was lost is resent by the next
// round.
func (n *Node) repeatRepair(j syncJob) bool {
	k := [2]string{j.scope, j.from}
	now := time.Now()
	n.servedMu.Lock()
	defer n.servedMu.Unlock()
	if last, ok := n.served[k]; ok && last.sum == j.sum && now.Sub(last.at) < n.cfg.AntiEntropyInterval/2 {
		return true
	}
	n.served[k] = served{j.sum, now}
	return false
}

// --- Control: liveness, anti-entropy, retention, rejoin ---------------------------

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
	alive := map[string]bool{}
	var out []string
	n.mu.Lock()
	for _, p := range n.peers {
		if p.state == PeerAlive && p.node != nil {
			alive[p.node.Address()] = true
			alive[p.name] = true
		}
	}
	for _, p := range n.peers {
		if p.node != nil && !alive[p.name] && p.state != PeerLeft {
			out = append(out, p.node.Address())
		}
	}
	n.mu.Unlock()
	for _, s := range n.seedsExceptSelf() {
		if !alive[s] {
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
		n.rngMu.Lock()
		p := peers[n.rng.IntN(len(peers))]
		n.rngMu.Unlock()
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
	p.meta = meta
	e := peerEvent{replica: p.replica(), scopes: meta.scopes, node: &c, alive: alive, wasAlive: p.state == PeerAlive && !restarted}
	switch {
	case alive:
		p.state, p.downSince, p.forgotten = PeerAlive, time.Time{}, false
	case p.state == PeerLeft:
		return peerEvent{}, false // already down
	case p.leavingInc == meta.inc && time.Since(p.leavingAt) < leaveWindow:
		// memberlist's NotifyLeave does not say whether a node left or
		// died; the peer said it was leaving just before.
		p.state, p.downSince = PeerLeft, time.Now()
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
				return st.Resume(r, emit)
			}
			if bug.NoHide {
				return nil
			}
			return st.Suspend(r, emit)
		})
	}
	switch {
	case e.alive && !e.wasAlive:
		n.log.Debug("peer up", "peer", r)
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
			if _, greets := n.greets.Load(s); greets && slices.Contains(e.scopes, s) {
				if n.mayGreet(s, r.Name) {
					n.sendSync(s, e.node, true) // converge at once on (re)connect
				}
			}
		}
	case !e.alive:
		n.log.Debug("peer down", "peer", r)
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
		}
	}
}

// --- Shutdown ---------------------------------------------------------------------

// Close leaves the cluster gracefully (peers hide this node's members at
// once instead of waiting for failure detection), stops the loops and shuts
// memberlist down. It is safe to call more than once.
func (n *Node) Close(ctx context.Context) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed.Swap(true) {
		return nil
	}
	// Never 0 (memberlist waits forever then) and shorter than the time
	// after which memberlist forgets this node once it has left.
	timeout := min(2*time.Second, max(n.cfg.Memberlist.GossipToTheDeadTime/2, 10*time.Millisecond))
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), 10*time.Millisecond))
	}
	// Tell every peer directly first, so their reads hide this node's
	// members at once; memberlist's own leave broadcast follows.
	bye := encodeLeaving(n.self.Name, n.self.Incarnation)
	n.mu.Lock()
	var peers []*memberlist.Node
	for _, p := range n.peers {
		if p.state == PeerAlive && p.node != nil {
			peers = append(peers, p.node)
		}
	}
	n.mu.Unlock()
	for _, p := range peers {
		_ = n.ml.SendBestEffort(p, bye)
	}
	if err := n.ml.Leave(timeout); err != nil {
		// Best effort: peers that missed it detect the failure instead.
		n.log.Warn("leave message not confirmed; peers will detect the departure", "err", err)
	}
	close(n.stop)
	n.wg.Wait()
	if err := n.ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Crash stops the node abruptly, as a killed process would: no leave
// message, so peers find out through failure detection. For tests.
func (n *Node) Crash() {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed.Swap(true) {
		return
	}
	close(n.stop)
	n.wg.Wait()
	_ = n.ml.Shutdown()
}

// --- memberlist delegates -------------------------------------------------------------

type delegate Node

func (d *delegate) NodeMeta(limit int) []byte { return d.meta }

func (d *delegate) NotifyMsg(b []byte) {
	(*Node)(d).handleMessage(b, nil) // b is used during the call only; what is kept is copied
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	if d.bcast == nil {
		return nil
	}
	return d.bcast.GetBroadcasts(overhead, limit)
}

// broadcast is a packet of local deltas piggy-backed on memberlist's
// gossip: a second, epidemic path besides the direct push, which reaches
// peers the push missed (lost packet) and relays through nodes that can
// reach peers this one cannot (bridges, one-way cuts).
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// piggyback queues packets for memberlist's gossip unless the queue is
// full (under load the direct push and anti-entropy carry the rest).
func (n *Node) piggyback(packets [][]byte) {
	if n.bcast == nil {
		return
	}
	for _, p := range packets {
		if n.bcast.NumQueued() >= n.cfg.PiggybackQueue {
			return
		}
		n.bcast.QueueBroadcast(broadcast(p))
		n.stats.piggybacked.Add(1)
	}
}

// LocalState carries no roster state (see Config.AntiEntropyInterval): a
// digest here would make every node that push/pulls with a fresh node send
// it the whole scope, while the transfer it asked for is still on its way.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores push/pull state: roster sends none (see
// LocalState), so a node's state cannot be fed through this path.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

type events Node

func (e *events) NotifyJoin(nd *memberlist.Node)   { (*Node)(e).queuePeerEvent(nd, true) }
func (e *events) NotifyUpdate(nd *memberlist.Node) { (*Node)(e).queuePeerEvent(nd, true) }
func (e *events) NotifyLeave(nd *memberlist.Node)  { (*Node)(e).queuePeerEvent(nd, false) }

// queuePeerEvent is called with memberlist's locks held: it updates the
// peer table and queues the rest.
func (n *Node) queuePeerEvent(nd *memberlist.Node, alive bool) {
	if e, ok := n.notePeer(nd, alive); ok {
		n.enqueuePeerEvent(e)
	}
}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, line, "component", "memberlist")
	return len(p), nil
}

// --- Warm restarts ------------------------------------------------------------

// Option is an optional argument of New.
type Option func(*options)

type options struct {
	preload map[string][][]byte
	grace   time.Duration
}

// Preload makes New start from state saved by an earlier run (per scope,
// encoded deltas as returned by SaveState), merged before memberlist
// starts. The other replicas it holds are shown at once, unconfirmed: if
// an owner is not seen alive with that incarnation within grace, its
// members are hidden (watchers get owner-down), as for any owner the
// failure detector declares down. State of this node's own earlier
// incarnations is ignored. Anti-entropy then fetches only what changed
// since the save. A delta that does not decode or merge fails New with
// ErrMessage.
func Preload(state map[string][][]byte, grace time.Duration) Option {
	return func(o *options) { o.preload, o.grace = state, grace }
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
			if _, ok := n.unconfirmed[d.Replica]; !ok && !n.isAlive(d.Replica) {
				n.unconfirmed[d.Replica] = deadline
			}
			n.unconfirmedMu.Unlock()
			st.MergeValidated(d, emit)
		}
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

func (n *Node) isAlive(r crdt.ReplicaID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[r.Name]
	return p != nil && p.state == PeerAlive && p.meta.inc == r.Incarnation
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
	var out []string
	for _, p := range n.peers {
		if p.node != nil && p.name != n.self.Name && p.state != PeerLeft {
			out = append(out, p.node.Address())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
