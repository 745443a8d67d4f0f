package registry

import (
	"errors"
	"fmt"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
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
	ErrStorage      = errors.New("registry: storage failed")
)

// Config configures a Registry. Start from DefaultConfig (LAN) or
// LocalConfig (tests, one machine) and change what you need; Open validates
// it. The embedded gossip.Config documents the cluster fields: Name, Scopes,
// Seeds, bind and advertise addresses, SecretKey, timings, Retention and
// Logger.
type Config struct {
	gossip.Config

	// WatchBuffer is how many events a watcher may fall behind before its
	// stream is reset with an explicit resync (a fresh snapshot) instead of
	// buffering without bound.
	WatchBuffer int
}

// DefaultConfig returns a configuration for a LAN cluster: memberlist's LAN
// timings, anti-entropy every 2 s, retention 24 h, serving scope "default".
func DefaultConfig(name string) Config {
	return Config{Config: gossip.DefaultLANConfig(name), WatchBuffer: 4096}
}

// LocalConfig returns short timings for tests and single-machine clusters,
// bound to 127.0.0.1 on a free port.
func LocalConfig(name string) Config {
	return Config{Config: gossip.DefaultLocalConfig(name), WatchBuffer: 4096}
}

func (c *Config) validate() error {
	if c.WatchBuffer < 1 || c.WatchBuffer > 1<<20 {
		return fmt.Errorf("%w: WatchBuffer %d out of range [1, 2^20]", ErrConfig, c.WatchBuffer)
	}
	if c.Incarnation == 0 {
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
