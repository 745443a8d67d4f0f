package registry

import (
	"errors"
	"fmt"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/storage"
)

// Sentinel errors; test with errors.Is.
var (
	ErrConfig       = errors.New("registry: invalid configuration")
	ErrClosed       = errors.New("registry: closed")
	ErrInvalidName  = errors.New("registry: invalid name")
	ErrInvalidMeta  = errors.New("registry: invalid metadata")
	ErrUnknownScope = errors.New("registry: unknown scope")
	ErrNotMember    = errors.New("registry: no such member")
	ErrNotOwner     = errors.New("registry: member is owned by another node")
	ErrNoSession    = errors.New("registry: no such session (unknown, expired or closed)")
	ErrInvalidTTL   = errors.New("registry: invalid session TTL")
	ErrInvalidPage  = errors.New("registry: invalid page (offset must not be negative, limit must be positive)")
	ErrStorage      = errors.New("registry: storage failed")
	// ErrWatchClosed is Watch.Err after Watch.Close.
	ErrWatchClosed = errors.New("registry: watch closed")
	// ErrNotDurable: a durable member (Durable(), Lifetime{Durable:
	// true}) was asked of a registry without Config.DataDir, where it
	// could not outlive a restart as promised.
	ErrNotDurable = errors.New("registry: durable member needs Config.DataDir")
)

// Config configures a Registry. Start from DefaultConfig (LAN) or
// LocalConfig (tests, one machine) and change what you need; Open validates
// it. The embedded gossip.Config documents the cluster fields: Name, Scopes,
// Seeds, bind and advertise addresses, SecretKey, timings, Retention and
// Logger. The registry's records carry component=registry; those of the
// layers under it component=gossip, memberlist, storage or pebble (give a
// Logger without a "component" key, or records repeat it).
type Config struct {
	gossip.Config

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
	// defaults of DefaultLimits. See Limits (registry.go).
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
// It gossips on 0.0.0.0:7946, so Open refuses it until SecretKey is set
// (or a loopback BindAddr, or Insecure for a network private by other
// means): an unkeyed gossip port believes whoever reaches it (see
// docs/security.md). LocalConfig binds 127.0.0.1 and needs no key.
func DefaultConfig(name string) Config {
	return Config{Config: gossip.DefaultLANConfig(name), WatchBuffer: 16384,
		Storage: storage.DefaultOptions(), CacheInterval: 30 * time.Second}
}

// LocalConfig returns short timings for tests and single-machine clusters,
// bound to 127.0.0.1 on a free port.
func LocalConfig(name string) Config {
	return Config{Config: gossip.DefaultLocalConfig(name), WatchBuffer: 16384,
		Storage: storage.DefaultOptions(), CacheInterval: 2 * time.Second}
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
