package regtype

import (
	"errors"
	"fmt"
)

// Sentinel errors of the registry's methods; test with errors.Is. They
// read "registry: ...", the API that returns them.
var (
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
	// ErrRestartRequired marks a StorageHealth error that recovery in
	// process cannot fix (corrupt data, or Pebble's commit pipeline
	// wedged): the node must be restarted. It is always wrapped together
	// with ErrStorage.
	ErrRestartRequired = errors.New("registry: storage failure needs a restart")
)

// Sentinel errors of the per-node limits (see Limits). Each matches
// ErrLimit too: errors.Is(err, ErrLimit) catches all of them.
var (
	// ErrLimit: a per-node limit was reached; nothing changed.
	ErrLimit = errors.New("registry: limit reached")
	// ErrTooManySessions: CreateSession beyond Limits.MaxSessions.
	ErrTooManySessions = fmt.Errorf("%w: too many sessions", ErrLimit)
	// ErrTooManyMembers: a Join adding a member beyond Limits.MaxMembers.
	ErrTooManyMembers = fmt.Errorf("%w: too many members", ErrLimit)
	// ErrTooManyGroups: a Join creating a group beyond Limits.MaxGroups.
	ErrTooManyGroups = fmt.Errorf("%w: too many groups", ErrLimit)
	// ErrTooManyWatchers: a Watch beyond Limits.MaxWatchers.
	ErrTooManyWatchers = fmt.Errorf("%w: too many watchers", ErrLimit)
)

// Sentinel errors of gossip key rotation.
var (
	// ErrNoKeyring: this node's gossip has no keyring to rotate.
	ErrNoKeyring = errors.New("registry: no gossip keyring to rotate")
	// ErrInvalidKey: a key that is not 16, 24 or 32 bytes.
	ErrInvalidKey = errors.New("registry: invalid gossip key")
	// ErrUnknownKey: a key (or fingerprint) the keyring does not hold.
	ErrUnknownKey = errors.New("registry: no such gossip key")
	// ErrPrimaryKey: an attempt to remove the primary key.
	ErrPrimaryKey = errors.New("registry: the primary gossip key cannot be removed")
)
