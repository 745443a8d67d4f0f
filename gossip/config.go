package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/dissem"
)

// Sentinel errors of this package; test with errors.Is.
var (
	ErrConfig       = errors.New("gossip: invalid configuration")
	ErrUnknownScope = errors.New("gossip: unknown scope")
	ErrClosed       = errors.New("gossip: node closed")
	ErrMessage      = errors.New("gossip: malformed message")
)

// Config configures a Node. Start from DefaultLANConfig or DefaultLocalConfig
// and change what you need; New validates it.
type Config struct {
	// Name is the node's name, unique in the cluster and stable across
	// restarts. It is also the memberlist node name.
	Name string

	// Incarnation changes every time the process starts; (Name,
	// Incarnation) is the node's replica id. A higher incarnation of a name
	// supersedes every lower one on every node, so it must grow across
	// restarts (the storage layer persists a counter; without storage a
	// start time in nanoseconds is used by the registry).
	Incarnation uint64

	// Scopes are the scopes this node serves. Only nodes serving a scope
	// receive its updates. At most MaxScopes, each a valid name; they are
	// advertised in memberlist node metadata (512 bytes in all).
	Scopes []string

	// BindAddr and BindPort are where memberlist listens (UDP and TCP).
	// Port 0 picks a free port. Ignored when Transport is set.
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are what other nodes use to reach
	// this one; empty/0 means derive from the bind address.
	AdvertiseAddr string
	AdvertisePort int

	// HTTPAddr is the base URL of this node's HTTP API as other nodes and
	// clients reach it, "http://host:port" or "https://host:port" (see
	// ValidHTTPAddr): roster serve's --advertise-http. It is advertised in
	// memberlist node metadata next to the scopes (512 bytes in all) and
	// shown by Nodes, so that any node can name, or forward a request to,
	// the node that owns a member or a session. Empty: none advertised
	// (the metadata then has the three fields nodes before it expect).
	HTTPAddr string

	// Seeds are addresses (host:port; DNS names are re-resolved on every
	// attempt) joined at start and retried forever by the rejoin loop
	// whenever they are not members.
	Seeds []string

	// SecretKey, when set (16, 24 or 32 bytes), encrypts and authenticates
	// all gossip with memberlist's keyring (AES-GCM): a party without the
	// key can neither read nor inject anything. Without it, anyone who can
	// send a packet to the gossip port can speak for any owner (see
	// docs/security.md), so New refuses to gossip in the clear on an
	// address other than loopback unless Insecure is set.
	SecretKey []byte

	// Insecure allows gossip without SecretKey on a non-loopback bind
	// address: every host that can reach the port is then trusted not to
	// forge members. For networks that are private by other means (a
	// WireGuard mesh, a pod network with policies). New logs a warning
	// when it is used. Loopback binds and custom transports (Transport
	// set: memnet in tests) need neither.
	Insecure bool

	// Cluster names the cluster: nodes of differently named clusters
	// ignore each other even when one reaches the other's address. It is
	// memberlist's Label, carried by every packet and stream; memberlist
	// drops those with another label. Without it, a node retrying a dead
	// peer's address joins whatever cluster listens there now (an address
	// another deployment was given since, a port another test took). At
	// most 255 bytes; empty (the default) names none, and such a node
	// talks only to nodes without a name. Every node of a cluster needs
	// the same name.
	Cluster string

	// Transport replaces the UDP/TCP transport (tests use memnet). Nil
	// means real sockets through NetTransport, bound to BindAddr:BindPort.
	Transport memberlist.NodeAwareTransport

	// Memberlist holds memberlist's own timings (probe interval, suspicion,
	// push/pull...). The presets fill it from memberlist's LAN or local
	// presets; Name, Transport, Delegate, Events, Logger and the
	// address fields are overwritten from this Config by New.
	Memberlist *memberlist.Config

	// AntiEntropyInterval is how often a node sends one random scope peer
	// its digest. Lower repairs lost packets sooner at the cost of a small
	// message per scope per interval. The exchange also runs whenever a
	// peer (re)appears (at most once per interval). memberlist's own
	// push/pull carries no roster state: every peer answering a fresh
	// node's digest would send it the whole scope.
	AntiEntropyInterval time.Duration

	// RejoinInterval is the base delay between attempts to rejoin peers
	// that are not members (dead, left, partitioned away) and seeds. Each
	// failed round doubles the delay up to RejoinMaxInterval; any success
	// resets it. Attempts never stop: a partition of any length heals.
	RejoinInterval    time.Duration
	RejoinMaxInterval time.Duration

	// Retention is how long the slice of an owner that is down is kept
	// (hidden) before it is forgotten. Within it, an owner that comes back
	// with the same incarnation reappears without any state transfer.
	Retention time.Duration

	// MaxPacketBytes bounds a best-effort (UDP) message. It must leave room
	// for memberlist's framing and encryption within UDPBufferSize.
	MaxPacketBytes int

	// ReliableBatchPackets: when one flush of local operations for a scope
	// would take more than this many packets, it is sent to each peer as
	// one stream (TCP) message instead.
	ReliableBatchPackets int

	// PiggybackQueue bounds how many packets of local deltas wait to be
	// piggy-backed on memberlist's gossip (each is retransmitted
	// RetransmitMult*log(N) times to random nodes). It is the epidemic
	// path that complements the direct push: it repairs a lost packet
	// within a few gossip intervals and relays around cuts the direct push
	// cannot cross. When the queue is full (a burst of joins) packets are
	// not queued and anti-entropy repairs what the push lost. 0 disables.
	PiggybackQueue int

	// FanOut bounds the direct push for large scopes. 0 (the presets)
	// pushes every batch of local operations to every scope peer, as
	// Erlang pg does: one hop, the lowest latency, at a cost to the writer
	// of one message per peer per batch. With FanOut k > 0, a scope with
	// more than k peers gets each batch down a relay tree: the peers are
	// dealt into k groups, the first node of each gets the batch with the
	// names of the rest of its group and deals them the same way. Every
	// node still gets one copy (N-1 messages per batch, as the full mesh),
	// but no node sends more than k, at log_k(N) hops of latency. A node
	// down or a packet lost cuts off its subtree until the piggy-backed
	// copy or anti-entropy reaches it. 0, or 2 to 64; set it alike on
	// every node: a node with FanOut 0 does not relay (a relay request
	// asks it to send packets for someone else; it merges the deltas and
	// passes nothing on, and its subtree waits for the piggy-backed copy
	// or anti-entropy), and a relay list names each alive scope peer at
	// most once whatever it says. roster-bench -run=fanout measures it
	// against the full mesh.
	FanOut int

	// DirectMax: a scope with more alive peers than this spreads local
	// batches with Plumtree (gossip/dissem: eager push down a spanning
	// tree, lazy announcements, grafts and prunes) instead of one copy
	// to every peer: the writer sends a handful of messages per batch
	// and each node receives about one copy, whatever the cluster's
	// size; the piggy-backed copy on memberlist's gossip is left out
	// (the announcements repair losses, in tens of milliseconds). At or
	// under it, the direct push and its 5-node latency are kept. 0 means
	// the default, 32; negative never uses Plumtree. FanOut > 0 takes
	// precedence (the relay tree). Every node accepts Plumtree messages
	// whatever its own setting.
	DirectMax int

	// PlumtreeTuning, if set, adjusts the Plumtree cores' configuration
	// (dissem.Config: eager and lazy peers, announcement period, graft
	// timeout, retention) before they are made; Self and Strategy are
	// this node's whatever it sets. For experts and experiments.
	PlumtreeTuning func(*dissem.Config)

	// HoldBack is how long a delta that arrives after a gap in its owner's
	// counters (an earlier packet lost or overtaken) waits for the gap to
	// fill before it is merged anyway. While it waits, watchers see each
	// owner's operations in the order the owner made them, as pg delivers
	// a sender's messages in order; past it, later operations are shown
	// first and the node sends its digest to the owner, which repairs the
	// gap (Stats.GapSyncs). 0 merges at once (and leaves gaps to
	// anti-entropy). Checked at each anti-entropy tick, so the wait is up
	// to HoldBack plus one AntiEntropyInterval.
	HoldBack time.Duration

	// ChunkBytes bounds one anti-entropy chunk (an encoded delta).
	ChunkBytes int

	// RangeRootMin: a scope whose state holds at least this many replicas
	// sends, in its periodic anti-entropy rounds, the 15-byte root of its
	// range digest (crdt.RangeDigest) instead of the full digest (about
	// 13 bytes per replica: 130 KB at 10,000 nodes, every round). A peer
	// whose root is the same does nothing; one whose root differs (and
	// is caught up) answers with its whole range digest (256 bucket sums,
	// about 2.3 KB, sent on a stream past MaxPacketBytes), and the two
	// then exchange digests of only the buckets whose sums differ
	// (crdt.State.DigestIn, DiffIn): a round in which they differ costs
	// the root, the range digest and the counters of the replicas in
	// those buckets, not of every replica. So background traffic stops
	// growing with the cluster while nothing changes, and under steady
	// writes a round costs about what the writes touched. Greetings,
	// catch-up, gap repairs and a node still hiding a cached replica
	// always send the full digest. 0 means the default, 64: small
	// clusters keep the plain exchange; negative never sends a root.
	// Nodes older than this field ignore a root or a range digest (a
	// decode error) and exchange with the others; a narrowed digest (a
	// sync message of eight fields) is one they reject likewise.
	RangeRootMin int

	// Logger receives structured logs; nil discards them. Records carry
	// "component" ("gossip", or "memberlist" for memberlist's own lines)
	// and "node": give a logger without those keys, or its records repeat
	// them. Peers joining, restarting, failing and leaving are logged at
	// info level.
	Logger *slog.Logger

	// Crdt tunes the scope states.
	Crdt crdt.Options
}

// MaxScopes bounds how many scopes one node serves.
const MaxScopes = 16

// DefaultLANConfig returns a configuration for a LAN: memberlist's LAN
// timings (probe every second, ~5 s to declare a node dead), anti-entropy
// every 2 s, rejoin attempts from 1 s backing off to 5 s, retention 24 h.
// It binds 0.0.0.0:7946, so it needs a SecretKey (or Insecure, or a
// loopback BindAddr) before New accepts it: a LAN preset is for a cluster,
// and an unkeyed cluster port believes whoever reaches it.
func DefaultLANConfig(name string) Config {
	ml := memberlist.DefaultLANConfig()
	// A restarted node may come back at another address (a rescheduled
	// pod): let its name be reclaimed once the old one is dead this long.
	ml.DeadNodeReclaimTime = 10 * time.Second
	// memberlist compresses every message by default, allocating a fresh
	// LZW table each time: on a LAN that costs more latency (p50 ~430 µs
	// against ~160 µs without, 5 loopback nodes) than the bytes it saves.
	ml.EnableCompression = false
	return Config{
		Name:                 name,
		Scopes:               []string{"default"},
		BindAddr:             "0.0.0.0",
		BindPort:             7946,
		Memberlist:           ml,
		AntiEntropyInterval:  2 * time.Second,
		RejoinInterval:       time.Second,
		RejoinMaxInterval:    5 * time.Second,
		Retention:            24 * time.Hour,
		MaxPacketBytes:       ml.UDPBufferSize - 128,
		ReliableBatchPackets: 8,
		PiggybackQueue:       256,
		HoldBack:             500 * time.Millisecond,
		ChunkBytes:           crdt.DefaultChunkBytes,
		// A log of 2048 events per replica (at least 1536 after its
		// amortised truncation, ~40 bytes each) lets a peer that missed up
		// to ~1500 of a replica's changes catch up by exactly those.
		Crdt: crdt.Options{LogCap: 2048},
	}
}

// DefaultWANConfig is DefaultLANConfig with memberlist's WAN timings
// (slower probes and gossip, more tolerant of latency), for nodes across
// data centres; a dead node's name is reclaimable as quickly as on a LAN.
func DefaultWANConfig(name string) Config {
	c := DefaultLANConfig(name)
	ml := memberlist.DefaultWANConfig()
	ml.DeadNodeReclaimTime = c.Memberlist.DeadNodeReclaimTime
	c.Memberlist = ml
	c.MaxPacketBytes = ml.UDPBufferSize - 128
	return c
}

// DefaultLocalConfig returns short timings for tests and single-machine
// clusters: failures detected in about a second, anti-entropy every
// 200 ms, rejoin from 100 ms backing off to 1 s, retention 1 minute. It
// binds to 127.0.0.1 on a free port.
func DefaultLocalConfig(name string) Config {
	c := DefaultLANConfig(name)
	ml := memberlist.DefaultLocalConfig()
	// Fast, but not so fast that a loaded 2-core CI machine running the
	// race detector makes the failure detector flap: a dead node is
	// declared in about a second.
	ml.ProbeInterval = 200 * time.Millisecond
	ml.ProbeTimeout = 100 * time.Millisecond
	ml.GossipInterval = 20 * time.Millisecond
	ml.PushPullInterval = time.Second
	ml.SuspicionMult = 3
	ml.TCPTimeout = time.Second
	ml.GossipToTheDeadTime = 2 * time.Second
	ml.DeadNodeReclaimTime = 200 * time.Millisecond
	ml.EnableCompression = false
	c.Memberlist = ml
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.AntiEntropyInterval = 200 * time.Millisecond
	c.HoldBack = 200 * time.Millisecond
	c.RejoinInterval = 100 * time.Millisecond
	c.RejoinMaxInterval = time.Second
	c.Retention = time.Minute
	c.MaxPacketBytes = ml.UDPBufferSize - 128
	return c
}

func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if err := crdt.ValidName(c.Name); err != nil {
		return bad("name: %v", err)
	}
	if c.Incarnation == 0 || c.Incarnation >= crdt.MaxCounter {
		return bad("incarnation %d out of range", c.Incarnation)
	}
	if len(c.Scopes) == 0 || len(c.Scopes) > MaxScopes {
		return bad("%d scopes, want 1..%d", len(c.Scopes), MaxScopes)
	}
	seen := map[string]bool{}
	for _, s := range c.Scopes {
		if err := crdt.ValidName(s); err != nil {
			return bad("scope %q: %v", s, err)
		}
		if seen[s] {
			return bad("scope %q listed twice", s)
		}
		seen[s] = true
	}
	if c.Memberlist == nil {
		return bad("Memberlist config is nil; start from a preset")
	}
	switch {
	case c.AntiEntropyInterval <= 0:
		return bad("AntiEntropyInterval must be positive")
	case c.RejoinInterval <= 0 || c.RejoinMaxInterval < c.RejoinInterval:
		return bad("RejoinInterval must be positive and at most RejoinMaxInterval")
	case c.Retention <= 0:
		return bad("Retention must be positive")
	case c.MaxPacketBytes < 256 || c.MaxPacketBytes > 65000:
		return bad("MaxPacketBytes %d out of range [256, 65000]", c.MaxPacketBytes)
	case c.HoldBack < 0:
		return bad("HoldBack must not be negative")
	case c.FanOut < 0 || c.FanOut == 1 || c.FanOut > 64:
		return bad("FanOut %d: want 0 (full mesh) or 2 to 64", c.FanOut)
	case c.PiggybackQueue < 0:
		return bad("PiggybackQueue must not be negative")
	case c.ReliableBatchPackets < 1:
		return bad("ReliableBatchPackets must be at least 1")
	case c.DirectMax > 1<<20:
		return bad("DirectMax must be at most 2^20")
	case c.RangeRootMin > 1<<20:
		return bad("RangeRootMin must be at most 2^20")
	case c.ChunkBytes < 1024:
		return bad("ChunkBytes must be at least 1024")
	case len(c.SecretKey) != 0 && len(c.SecretKey) != 16 && len(c.SecretKey) != 24 && len(c.SecretKey) != 32:
		return bad("SecretKey must be 16, 24 or 32 bytes")
	case len(c.Cluster) > 255:
		return bad("Cluster must be at most 255 bytes, not %d", len(c.Cluster))
	case c.Cluster != "" && c.Memberlist != nil && c.Memberlist.Label != "" && c.Memberlist.Label != c.Cluster:
		return bad("Cluster %q and Memberlist.Label %q differ (Cluster sets the label)", c.Cluster, c.Memberlist.Label)
	}
	if c.HTTPAddr != "" {
		if err := ValidHTTPAddr(c.HTTPAddr); err != nil {
			return bad("HTTPAddr: %v", err)
		}
	}
	if _, err := encodeNodeMeta(c.Incarnation, c.Scopes, c.HTTPAddr, memberlist.MetaMaxSize); err != nil {
		return bad("%v", err)
	}
	if c.Transport == nil && !c.encrypted() && !c.Insecure && !loopback(c.BindAddr) {
		return bad("gossip on %s without SecretKey: anyone who can reach the port could add, remove or hide any node's members; "+
			"set SecretKey (roster serve --gossip-key-file), bind a loopback address, or set Insecure (--gossip-insecure) "+
			"if the network is private by other means", c.BindAddr)
	}
	return nil
}

// encrypted reports whether gossip is encrypted: a SecretKey, or a keyring
// given in the memberlist configuration.
func (c *Config) encrypted() bool {
	return len(c.SecretKey) > 0 || (c.Memberlist != nil && c.Memberlist.Keyring != nil && len(c.Memberlist.Keyring.GetKeys()) > 0)
}

// loopback reports whether addr is a loopback IP address (127.0.0.0/8,
// ::1); "localhost" counts as well. Anything else, 0.0.0.0 included,
// is reachable from other hosts.
func loopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}
