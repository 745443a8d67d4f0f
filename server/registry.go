package server

import (
	"context"
	"time"

	"github.com/roster-io/roster/registry/regtype"
)

// Registry is what a Server needs of the registry it serves: the methods
// of package registry's *Registry that the server calls, each written in
// package regtype's values (registry.Member is regtype.Member). The server
// does not import package registry, and so neither the gossip layer nor
// memberlist: cmd/roster opens the registry and hands it to New, which
// takes it as this interface (cmd/roster asserts at compile time that
// *registry.Registry satisfies it). A method the server starts calling is
// added here, with a signature that names no gossip type.
type Registry interface {
	// Name is this node's name; Incarnation its current run.
	Name() string
	Incarnation() uint64
	// Scopes lists the scopes this node serves.
	Scopes() []string
	// Persistent reports whether the node has a store (Config.DataDir):
	// New refuses a registry without one.
	Persistent() bool
	// Ready reports whether the node has joined and caught up (/readyz).
	Ready() bool
	// StorageHealth is nil while the store takes writes.
	StorageHealth() error

	// Members and their lifetimes.
	Join(ctx context.Context, scope, group, id string, meta regtype.Meta, opts ...regtype.JoinOption) (*regtype.Membership, error)
	Leave(ctx context.Context, scope, group, id string) error
	Apply(ctx context.Context, scope string, ops []regtype.Op) (errs []error, err error)
	Lifetime(scope, group, id string) (regtype.Lifetime, bool)
	Owners(scope, group, id string) ([]string, error)

	// Listings.
	Members(scope, group string) ([]regtype.Member, error)
	LocalMembers(scope, group string) ([]regtype.Member, error)
	MembersPage(scope, group string, offset, limit int) ([]regtype.Member, int, error)
	LocalMembersPage(scope, group string, offset, limit int) ([]regtype.Member, int, error)
	GroupSizes(scope string) ([]regtype.GroupSize, error)

	// Watch streams a scope's changes after a snapshot.
	Watch(ctx context.Context, scope string, sel regtype.Selector) (*regtype.Watch, error)

	// Sessions.
	CreateSession(ctx context.Context, ttl time.Duration) (regtype.Session, error)
	KeepAlive(ctx context.Context, id string) (regtype.Session, error)
	GetSession(id string) (regtype.Session, error)
	Sessions() []regtype.Session
	CloseSession(ctx context.Context, id string) error
	SessionOwner(id string) (regtype.NodeInfo, bool)

	// The cluster and the node's figures.
	Nodes() []regtype.NodeInfo
	Divergence() map[string][]regtype.Divergence
	Stats() regtype.Stats
	ScopeStats(scope string) (regtype.ScopeStats, error)
	StorageStats() (regtype.StorageStats, bool)

	// Gossip key rotation on this node (/v1/keyring).
	GossipKeys() ([]regtype.KeyInfo, error)
	InstallGossipKey(key []byte) error
	UseGossipKey(key []byte, fingerprint string) error
	RemoveGossipKey(key []byte, fingerprint string) error
}
