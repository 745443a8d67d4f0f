package gossip

import (
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/pace"
	"github.com/roster-io/roster/gossip/peers"
	"github.com/roster-io/roster/gossip/push"
	"github.com/roster-io/roster/internal/bug"
)

// PeerState is what this node believes about another node (the peer
// table is gossip/peers').
type PeerState = peers.State

const (
	PeerAlive   = peers.Alive
	PeerDead    = peers.Dead    // failure detector declared it dead
	PeerLeft    = peers.Left    // it left gracefully
	PeerUnknown = peers.Unknown // known only from replicated state, never seen alive
)

// NodeInfo describes one node of the cluster as seen from here.
type NodeInfo struct {
	Name        string
	Incarnation uint64
	Addr        string // gossip address (host:port)
	// HTTPAddr is the base URL of the node's HTTP API as it advertises it
	// (Config.HTTPAddr), "" if it advertises none.
	HTTPAddr string
	State    PeerState
	Scopes   []string
	Self     bool
}

// Stats are cumulative counters, for metrics and tests. DeltasSent
// counts the local operations pushed, a join, leave or LeaveAll each (each
// is one delta; under load they go out batched, up to
// crdt.DefaultBatchLimit operations and Config.ChunkBytes per delta on the
// wire); DeltasReceived counts the deltas decoded.
type Stats struct {
	DeltasSent, DeltasReceived, PacketsSent, ReliableSent     int64
	SyncsSent, SyncsServed, RepairDeltasSent, RepairBytesSent int64
	// RootsSent counts periodic rounds that sent a range-digest root
	// (Config.RangeRootMin) instead of a digest; RootsInStep the roots
	// received that matched this node's, which cost no more than that.
	RootsSent, RootsInStep int64
	// NarrowedSyncs counts digests sent restricted to the range-digest
	// buckets that differ (after a root that differed), in place of the
	// full digest.
	NarrowedSyncs int64
	// PlumtreePayloads counts the Plumtree messages sent that carried a
	// batch (this node's, pushed or grafted, or one passed on down the
	// tree) in scopes larger than Config.DirectMax.
	PlumtreePayloads                int64
	DecodeErrors, OutOfOrderChunks  int64
	RejoinAttempts, RejoinSuccesses int64
	BytesSent                       int64
	// Piggybacked counts delta packets queued on memberlist's gossip.
	Piggybacked int64
	// HeldBack counts deltas that arrived after a gap in their owner's
	// counters and waited for it (see Config.HoldBack).
	HeldBack int64
	// GapSyncs counts digests sent to an owner for a gap in its
	// operations that its held-back deltas revealed (see HoldBack).
	GapSyncs int64
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
	// Overflow counts out-of-order transfer chunks dropped: refused or
	// given up at the reorder buffer's bounds, or older than its expiry
	// (a held-back delta refused at the bounds is merged at once instead,
	// out of its owner's order); anti-entropy repairs what they carried.
	Overflow int64
	// Sent and Received count roster's own gossip messages, and their
	// bytes, by kind (index with a MessageKind): sent, as handed to
	// memberlist (best-effort and reliable alike, one per peer; packets
	// queued on memberlist's gossip are counted in Piggybacked instead);
	// received, as decoded (whichever path brought them). Messages that
	// do not decode count in DecodeErrors alone.
	Sent, Received [NumMessageKinds]Traffic
	// AntiEntropyRounds counts the anti-entropy ticks: each sends at most
	// one digest per scope (SyncsSent), fewer while a transfer is flowing
	// in or no peer serves the scope.
	AntiEntropyRounds int64
	// Transport counts every packet and stream of the node's own
	// NetTransport, memberlist's probes, membership gossip and push/pull
	// included; all zero with Config.Transport.
	Transport TransportStats
}

// Traffic counts messages and their bytes.
type Traffic struct{ Messages, Bytes int64 }

// MessageKind is a kind of roster gossip message (Stats.Sent and
// Stats.Received are indexed by it).
type MessageKind uint8

const (
	// KindDeltas: deltas pushed to peers (local operations, repairs).
	KindDeltas MessageKind = iota
	// KindRelay: deltas with the names of the nodes to pass them on to
	// (Config.FanOut).
	KindRelay
	// KindSync: anti-entropy digests.
	KindSync
	// KindLeaving: a node's announcement that it is leaving.
	KindLeaving
	// NumMessageKinds is the number of kinds.
	NumMessageKinds
)

// String returns the kind's name, as in metric labels.
func (k MessageKind) String() string {
	switch k {
	case KindDeltas:
		return "deltas"
	case KindRelay:
		return "relay"
	case KindSync:
		return "sync"
	case KindLeaving:
		return "leaving"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// kindOf maps a wire message type to its kind.
func kindOf(msg int) (MessageKind, bool) {
	switch msg {
	case msgDeltas:
		return KindDeltas, true
	case msgRelay:
		return KindRelay, true
	case msgSync:
		return KindSync, true
	case msgLeaving:
		return KindLeaving, true
	case msgPlum:
		return KindDeltas, true // a large scope's deltas, and their control messages
	}
	return 0, false
}

// TransportStats count what a NetTransport sent and received.
type TransportStats struct {
	PacketsSent, PacketBytesSent         int64
	PacketsReceived, PacketBytesReceived int64
	// StreamsOpened counts the streams dialled to peers, StreamsAccepted
	// those accepted and handed to memberlist, StreamsRefused those
	// closed unscreened (see NetTransport.Refused).
	StreamsOpened, StreamsAccepted, StreamsRefused int64
}

type traffic struct{ messages, bytes atomic.Int64 }

func (t *traffic) add(b int) {
	t.messages.Add(1)
	t.bytes.Add(int64(b))
}

func (t *traffic) load() Traffic { return Traffic{t.messages.Load(), t.bytes.Load()} }

type stats struct {
	deltasSent, deltasReceived, packetsSent, reliableSent atomic.Int64
	syncsSent, syncsServed, repairDeltasSent, repairBytes atomic.Int64
	rootsSent, rootsInStep, narrowedSyncs                 atomic.Int64
	plumPayloads                                          atomic.Int64
	decodeErrors, outOfOrder                              atomic.Int64
	rejoinAttempts, rejoinSuccesses, bytesSent            atomic.Int64
	piggybacked, heldBack, relayed, packetsDropped        atomic.Int64
	gapSyncs                                              atomic.Int64
	unvouched, forged, overflow                           atomic.Int64
	antiEntropyRounds                                     atomic.Int64
	sent, received                                        [NumMessageKinds]traffic
}

// sentMsg counts a message of kind handed to memberlist.
func (s *stats) sentMsg(kind MessageKind, size int) { s.sent[kind].add(size) }

// sentVia counts one of roster's messages handed to memberlist: as a
// packet or a stream (reliable), in BytesSent and by kind.
func (s *stats) sentVia(kind MessageKind, size int, reliable bool) {
	if reliable {
		s.reliableSent.Add(1)
	} else {
		s.packetsSent.Add(1)
	}
	s.bytesSent.Add(int64(size))
	s.sentMsg(kind, size)
}

// peerInfo is what gossip keeps of a peer beside the table's own fields:
// memberlist's node (a copy, taken in its callback) and the decoded
// metadata.
type peerInfo struct {
	meta nodeMeta
	node *memberlist.Node // last known, copied
}

type peer = peers.Peer[peerInfo]

type peerEvent struct {
	replica         crdt.ReplicaID
	scopes          []string
	node            *memberlist.Node
	alive, wasAlive bool
	// restarted: a new incarnation of a peer known before; left: down
	// after announcing its leave (else a down peer failed). For the log.
	restarted, left bool
}

type syncJob struct {
	scope     string
	from      string
	wantReply bool
	digest    crdt.Digest
	sum       uint64   // hash of the encoded digest
	streaming []string // replicas whose deltas are still arriving at from
	// root: the message carried the root of from's range digest (over
	// rootCount replicas) instead of a digest; digest is then empty.
	root      uint64
	rootCount int
	isRoot    bool
	// ranges: the message carried from's whole range digest (its answer
	// to our root, which differed); digest is then empty.
	ranges *crdt.RangeDigest
	// buckets: digest is restricted to these range-digest buckets (a
	// narrowed digest); replicas outside them are not compared.
	buckets []int
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
	peers *peers.Table[peerInfo] // guarded by mu

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

	// paceMu guards pace, the anti-entropy pacing (gossip/pace: when
	// exchanges go out, rate limits), and pendingSync: digests from peers
	// not yet alive here, by (scope, peer). Never held while taking a
	// scope's lock.
	paceMu      sync.Mutex
	pace        *pace.Pacer
	pendingSync map[[2]string]syncJob

	// push decides the route and packing of batches (gossip/push).
	push push.Config

	// hold keeps the deltas of every scope received before their turn
	// (hold.go, gossip/reorder).
	hold *holdBuf

	rngMu sync.Mutex
	rng   *rand.Rand

	// plum holds each scope's Plumtree core (plumtree.go); peersVer counts
	// changes to the peer table, so the cores' views are rebuilt only
	// after one.
	plum     map[string]*plumScope
	plumKick chan struct{}
	plumNext atomic.Int64 // unix nanos plumLoop sleeps until
	peersVer atomic.Uint64

	// unconfirmed holds replicas loaded from a cache at start, shown until
	// the deadline even though their owners have not been seen yet; then
	// hidden unless the owner is alive (see Preload).
	unconfirmedMu sync.Mutex
	unconfirmed   map[crdt.ReplicaID]time.Time
	// unsynced holds the replicas of each scope loaded from a cache with
	// grace 0: hidden until this node has caught up with their owners
	// (see Preload). unsyncedN counts them, for a lock-free "none".
	unsynced  map[syncKey]syncNeed
	unsyncedN atomic.Int32

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
		cfg:      cfg,
		log:      lg.With("component", "gossip", "node", cfg.Name),
		self:     crdt.ReplicaID{Name: cfg.Name, Incarnation: cfg.Incarnation},
		scopes:   map[string]*Scope{},
		peers:    peers.New[peerInfo](cfg.Name),
		out:      map[string]*crdt.Batch{},
		outSig:   make(chan struct{}, 1),
		plumKick: make(chan struct{}, 1),
		evSig:    make(chan struct{}, 1),
		jobs:     make(chan syncJob, 256),
		hold:     newHoldBuf(),
		push: push.Config{
			DirectMax: directMax(cfg.DirectMax), FanOut: cfg.FanOut,
			MaxPacketBytes: cfg.MaxPacketBytes, ReliableBatchPackets: cfg.ReliableBatchPackets,
			StreamBytes: 8 << 20,
		},

		pace: pace.New(pace.Config{Interval: cfg.AntiEntropyInterval, RangeRootMin: rangeRootMin(cfg.RangeRootMin)}),

		pendingSync: map[[2]string]syncJob{},

		unconfirmed: map[crdt.ReplicaID]time.Time{},
		unsynced:    map[syncKey]syncNeed{},
		rng:         rand.New(rand.NewPCG(cfg.Incarnation, uint64(len(cfg.Name)))),
		stop:        make(chan struct{}),
	}
	for _, s := range cfg.Scopes {
		st, err := crdt.New(n.self, cfg.Crdt)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		n.scopes[s] = &Scope{name: s, st: st, sink: sink, hold: n.hold}
		n.order = append(n.order, s)
	}
	slices.Sort(n.order)
	if err := n.newPlumScopes(); err != nil {
		return nil, err
	}
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
	meta, err := encodeNodeMeta(cfg.Incarnation, n.order, cfg.HTTPAddr, memberlist.MetaMaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	n.meta = meta

	mc := *cfg.Memberlist
	mc.Name = cfg.Name
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{log: lg.With("component", "memberlist", "node", cfg.Name)}, "", 0)
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
	n.wg.Add(4)
	go n.plumLoop()
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
	out := Stats{
		DeltasSent: s.deltasSent.Load(), DeltasReceived: s.deltasReceived.Load(),
		PacketsSent: s.packetsSent.Load(), ReliableSent: s.reliableSent.Load(),
		SyncsSent: s.syncsSent.Load(), SyncsServed: s.syncsServed.Load(),
		RepairDeltasSent: s.repairDeltasSent.Load(), RepairBytesSent: s.repairBytes.Load(),
		RootsSent: s.rootsSent.Load(), RootsInStep: s.rootsInStep.Load(), NarrowedSyncs: s.narrowedSyncs.Load(), PlumtreePayloads: s.plumPayloads.Load(),
		DecodeErrors:     s.decodeErrors.Load(),
		OutOfOrderChunks: s.outOfOrder.Load(),
		RejoinAttempts:   s.rejoinAttempts.Load(), RejoinSuccesses: s.rejoinSuccesses.Load(),
		BytesSent: s.bytesSent.Load(), Piggybacked: s.piggybacked.Load(), HeldBack: s.heldBack.Load(), GapSyncs: s.gapSyncs.Load(),
		Relayed: s.relayed.Load(), PacketsDropped: s.packetsDropped.Load(),
		Unvouched: s.unvouched.Load(), Forged: s.forged.Load(), Overflow: s.overflow.Load(),
		AntiEntropyRounds: s.antiEntropyRounds.Load(),
	}
	for k := range NumMessageKinds {
		out.Sent[k], out.Received[k] = s.sent[k].load(), s.received[k].load()
	}
	if n.net != nil {
		out.Transport = n.net.Stats()
	}
	return out
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
	out := []NodeInfo{{Name: n.self.Name, Incarnation: n.self.Incarnation, Addr: n.Addr(), HTTPAddr: n.cfg.HTTPAddr, State: PeerAlive, Scopes: n.Scopes(), Self: true}}
	n.mu.Lock()
	n.peers.Each(func(p *peer) {
		info := NodeInfo{Name: p.Name, Incarnation: p.Inc, HTTPAddr: p.Info.meta.httpAddr, State: p.State, Scopes: slices.Clone(p.Info.meta.scopes)}
		if p.Info.node != nil {
			info.Addr = p.Info.node.Address()
		}
		out = append(out, info)
	})
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// scopePeers returns copies of the alive peers serving scope.
func (n *Node) scopePeers(scope string) []*memberlist.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*memberlist.Node
	n.peers.Each(func(p *peer) {
		if p.State == PeerAlive && p.Info.node != nil && p.Info.meta.serves(scope) {
			out = append(out, p.Info.node)
		}
	})
	return out
}

func (n *Node) peerNode(name string) *memberlist.Node {
	n.mu.Lock()
	p := n.peers.Get(name)
	var nd *memberlist.Node
	if p != nil && p.State == PeerAlive {
		nd = p.Info.node
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
	p := n.peers.Get(r.Name)
	return p != nil && p.Info.node != nil && p.Inc == r.Incarnation
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
	visible := n.peers.Visible(r.Name, r.Incarnation)
	if !visible {
		n.peers.Owner(r.Name, r.Incarnation, time.Now()) // tracked from its first sight
	}
	n.mu.Unlock()
	if !visible && !n.pendingConfirmation(r) && !st.Suspended(r) {
		_ = st.Suspend(r, emit)
	}
}
