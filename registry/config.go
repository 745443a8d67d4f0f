package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/storage"
)

// ErrConfig: the Config given to Open is invalid (the other sentinel
// errors are regtype's, re-exported in aliases.go); test with errors.Is.
var ErrConfig = errors.New("registry: invalid configuration")

// Profile chooses the failure detector's and gossip's timings.
type Profile string

// Profiles.
const (
	// ProfileLAN: memberlist's LAN timings (a dead node is detected in
	// about 5 s), anti-entropy every 2 s.
	ProfileLAN Profile = "lan"
	// ProfileWAN: memberlist's WAN timings, for nodes across data centres
	// (slower probes, more tolerant of latency), otherwise as LAN.
	ProfileWAN Profile = "wan"
	// ProfileLocal: short timings (about 1 s to detect a dead node,
	// anti-entropy every 200 ms) for tests and clusters on one machine.
	ProfileLocal Profile = "local"
)

// Config configures a Registry. Start from a preset (DefaultConfig for a
// LAN, WANConfig, LocalConfig for tests and one machine) and change what
// you need; Open validates it. The registry's records carry
// component=registry; those of the layers under it component=gossip,
// memberlist, storage or pebble (give a Logger without a "component" key,
// or records repeat it). Experts reach the gossip layer's every setting
// with Tuning (advanced.go).
type Config struct {
	// Name is the node's name, unique in the cluster and stable across
	// restarts.
	Name string

	// Profile chooses the timings of the failure detector and of gossip
	// (the presets set it; the timing fields below follow it unless set).
	Profile Profile

	// Scopes are the scopes this node serves (1 to 16 valid names): only
	// nodes serving a scope receive its updates. The presets serve
	// "default".
	Scopes []string

	// Seeds are addresses (host:port; DNS names are re-resolved on every
	// attempt) of nodes to join at start, retried forever whenever they
	// are not members.
	Seeds []string

	// BindAddr and BindPort are where gossip listens (UDP and TCP); port 0
	// picks a free one. DefaultConfig and WANConfig bind 0.0.0.0:7946,
	// LocalConfig 127.0.0.1 on a free port.
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are what other nodes use to reach
	// this one; empty and 0 derive them from the bind address.
	AdvertiseAddr string
	AdvertisePort int

	// HTTPAddr, when set, is the base URL of this node's HTTP API as other
	// nodes and clients reach it ("http://host:port" or
	// "https://host:port", see ValidHTTPAddr), advertised to the cluster
	// and shown by Nodes.
	HTTPAddr string

	// SecretKey, when set (16, 24 or 32 bytes), encrypts and
	// authenticates all gossip (AES-GCM). Without a key, anyone who can
	// send a packet to the gossip port can speak for any owner (see
	// docs/security.md), so Open refuses unkeyed gossip on an address
	// other than loopback unless Insecure is set.
	SecretKey []byte

	// GossipKeys, when set, is a keyring instead of SecretKey: the first
	// key encrypts, all of them are accepted, and keys can be rotated at
	// run time (InstallGossipKey, UseGossipKey, RemoveGossipKey). Each is
	// 16, 24 or 32 bytes.
	GossipKeys [][]byte

	// Insecure allows gossip without a key on a non-loopback address, for
	// networks private by other means (a WireGuard mesh, a pod network
	// with policies); Open logs a warning.
	Insecure bool

	// Cluster names the cluster: nodes with another name ignore each
	// other even when one reaches the other's address (an address reused
	// since). At most 255 bytes; the same on every node; empty names none.
	Cluster string

	// Incarnation is the node's run; 0 (the usual) lets Open choose it:
	// from DataDir a persisted counter, else the start time. It must grow
	// across restarts of a name.
	Incarnation uint64

	// AntiEntropyInterval is how often the node sends a random scope peer
	// its digest, which repairs lost packets (profile: 2 s, local 200 ms).
	AntiEntropyInterval time.Duration

	// Retention is how long the members of an owner that is down are kept
	// (hidden) before they are forgotten: within it, an owner that comes
	// back with the same incarnation reappears without a transfer
	// (profile: 24 h, local 1 min).
	Retention time.Duration

	// HoldBack is how long a delta that arrives after a gap in its owner's
	// operations waits for the gap to fill, so that watchers see an
	// owner's operations in its order (profile: 500 ms, local 200 ms; 0
	// merges at once and leaves gaps to anti-entropy).
	HoldBack time.Duration

	// FanOut, 0 (the default) or 2 to 64, has each delta sent to that
	// many scope peers which relay it on (a tree), instead of to every
	// scope peer; set it alike on every node.
	FanOut int

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// Tuning, for experts, adjusts the gossip layer's configuration
	// (memberlist's, the transport, packet sizes) before Open uses it;
	// see Tuning (advanced.go). Nil for nearly everyone.
	Tuning Tuning

	// WatchBuffer is how many events a watcher may fall behind before its
	// stream is reset with an explicit resync (a fresh snapshot) instead of
	// buffering without bound. A consumer already holding more members
	// than this (its snapshot, plus the joins and minus the leaves it has
	// taken) may fall behind by as many events as it holds, at most 2^20:
	// up to there a resync, a snapshot of every member it follows, would
	// cost it more than the backlog it replaces.
	WatchBuffer int

	// Limits bound what clients can make this node hold (sessions,
	// members, groups, watchers, a watch's backlog); zero fields take the
	// defaults of DefaultLimits. See Limits (regtype.Limits).
	Limits Limits

	// DataDir, when set, is the Pebble directory holding what must outlive
	// the process: the node's identity (a new incarnation is fsynced there
	// at every start, so one is never reused), its durable and
	// session-bound members and its sessions (re-announced under the new
	// incarnation after a restart), the peers it has seen (rejoined
	// without seeds), and a cache of the other replicas' state (served at
	// once after a restart, then caught up by delta). Empty: nothing is
	// persisted; durable and session members then live only as long as
	// the process.
	DataDir string

	// Storage tunes the store in DataDir: by default every durable or
	// session join and leave is fsynced before it is acknowledged, with
	// concurrent writers sharing fsyncs; see storage.SyncMode for the
	// faster, weaker mode and exactly what it risks.
	Storage storage.Options

	// CacheInterval is how often the cache of other replicas' state and
	// the peer list are saved to DataDir (also at Close). Each save
	// rewrites the cache (about 20 bytes per member). 0 saves only at
	// Close.
	CacheInterval time.Duration

	// ConfirmGrace decides what a restarted node does with the members of
	// other nodes loaded from its cache. 0 (both presets): they stay
	// hidden until this node has caught up with each owner (the owner is
	// seen alive with that incarnation and its digest shows nothing newer
	// than what is held; what is newer is fetched first), then appear with
	// reason owner-up; a member left just before the restart never shows
	// again (guarantee 4). Catching up takes one digest exchange with the
	// owner (milliseconds on a LAN; an owner that stays unreachable keeps
	// its members hidden, as the failure detector would). Anti-entropy
	// fetches only what changed since the save either way.
	//
	// Positive: they are shown at once with Member.Confirmed false, and
	// owners not seen alive within ConfirmGrace are hidden (owner-down).
	// Reads are then served from the cache right away, at a price: until
	// anti-entropy catches up, a member its owner removed after the cache
	// was saved (CacheInterval) can show again, which breaks guarantee 4
	// for that while. The partition suite (jepsen/) finds exactly that.
	ConfirmGrace time.Duration
}

// DefaultConfig returns a configuration for a LAN cluster: memberlist's LAN
// timings, anti-entropy every 2 s, retention 24 h, serving scope "default".
// It gossips on 0.0.0.0:7946, so Open refuses it until SecretKey (or
// GossipKeys) is set (or a loopback BindAddr, or Insecure for a network
// private by other means): an unkeyed gossip port believes whoever
// reaches it (see docs/security.md). LocalConfig binds 127.0.0.1 and needs
// no key.
func DefaultConfig(name string) Config {
	return fromGossip(gossip.DefaultLANConfig(name), ProfileLAN, 30*time.Second)
}

// WANConfig is DefaultConfig with memberlist's WAN timings, for nodes
// across data centres.
func WANConfig(name string) Config {
	return fromGossip(gossip.DefaultWANConfig(name), ProfileWAN, 30*time.Second)
}

// LocalConfig returns short timings for tests and single-machine clusters,
// bound to 127.0.0.1 on a free port.
func LocalConfig(name string) Config {
	return fromGossip(gossip.DefaultLocalConfig(name), ProfileLocal, 2*time.Second)
}

// fromGossip is a preset: the registry's fields of a gossip preset.
func fromGossip(g gossip.Config, p Profile, cache time.Duration) Config {
	return Config{Name: g.Name, Profile: p, Scopes: g.Scopes, BindAddr: g.BindAddr, BindPort: g.BindPort,
		AntiEntropyInterval: g.AntiEntropyInterval, Retention: g.Retention, HoldBack: g.HoldBack, FanOut: g.FanOut,
		WatchBuffer: 16384, Storage: storage.DefaultOptions(), CacheInterval: cache}
}

// gossipConfig is the gossip layer's configuration for c: its profile's
// preset, c's fields, then Tuning.
func (c *Config) gossipConfig() (gossip.Config, error) {
	var g gossip.Config
	switch c.Profile {
	case ProfileLAN, "":
		g = gossip.DefaultLANConfig(c.Name)
	case ProfileWAN:
		g = gossip.DefaultWANConfig(c.Name)
	case ProfileLocal:
		g = gossip.DefaultLocalConfig(c.Name)
	default:
		return g, fmt.Errorf("%w: Profile %q: want lan, wan or local", ErrConfig, c.Profile)
	}
	g.Name, g.Incarnation, g.Scopes, g.Seeds = c.Name, c.Incarnation, c.Scopes, c.Seeds
	g.BindAddr, g.BindPort, g.AdvertiseAddr, g.AdvertisePort = c.BindAddr, c.BindPort, c.AdvertiseAddr, c.AdvertisePort
	g.HTTPAddr, g.SecretKey, g.Insecure, g.Cluster = c.HTTPAddr, c.SecretKey, c.Insecure, c.Cluster
	g.AntiEntropyInterval, g.Retention, g.HoldBack, g.FanOut = c.AntiEntropyInterval, c.Retention, c.HoldBack, c.FanOut
	g.Logger = c.Logger
	if len(c.GossipKeys) > 0 {
		kr, err := gossip.NewKeyring(c.GossipKeys)
		if err != nil {
			return g, fmt.Errorf("%w: GossipKeys: %w", ErrConfig, err)
		}
		ml := *g.Memberlist
		ml.Keyring = kr
		g.Memberlist = &ml
	}
	if c.Tuning != nil {
		c.Tuning(&g)
	}
	return g, nil
}

func (c *Config) validate() error {
	if c.WatchBuffer < 1 || c.WatchBuffer > 1<<20 {
		return fmt.Errorf("%w: WatchBuffer %d out of range [1, 2^20]", ErrConfig, c.WatchBuffer)
	}
	if c.CacheInterval < 0 {
		return fmt.Errorf("%w: CacheInterval must not be negative", ErrConfig)
	}
	if c.ConfirmGrace < 0 {
		return fmt.Errorf("%w: ConfirmGrace must not be negative", ErrConfig)
	}
	if c.Incarnation == 0 && c.DataDir == "" {
		// Without persisted identity, the start time orders restarts.
		c.Incarnation = uint64(time.Now().UnixNano()) & (crdt.MaxCounter - 1)
	}
	return nil
}

func validName(what, s string) error {
	if err := crdt.ValidName(s); err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrInvalidName, what, truncate(s), err)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
