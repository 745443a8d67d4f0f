package registry

import "github.com/roster-io/roster/registry/regtype"

// The values this package hands out are defined in package regtype, with
// no engine behind them, so that code using a registry through an
// interface (package server) names them without importing this package
// and, through it, the gossip layer. The names below are those same
// types, constants, functions' results and error values: registry.Member
// is regtype.Member, and errors.Is matches either name of a sentinel.

// Member is one member of a group as seen from this node.
type Member = regtype.Member

// Meta is a member's metadata: a small string map (at most
// crdt.MaxMetaPairs pairs and crdt.MaxMetaBytes encoded).
type Meta = regtype.Meta

// Membership is the handle of a member owned by this node (Join,
// JoinWhile).
type Membership = regtype.Membership

// JoinOption chooses a member's lifetime; see Durable and InSession.
type JoinOption = regtype.JoinOption

// Durable makes the member outlive restarts of this node until it is left.
// It needs Config.DataDir; without one the join fails with ErrNotDurable.
func Durable() JoinOption { return regtype.Durable() }

// InSession binds the member to a session (see CreateSession): it leaves
// when the session expires or is closed.
func InSession(id string) JoinOption { return regtype.InSession(id) }

// Lifetime says how long a member owned by this node lives.
type Lifetime = regtype.Lifetime

// Session is a lease that keeps its members alive while it is refreshed.
type Session = regtype.Session

// Session TTL bounds.
const (
	MinSessionTTL = regtype.MinSessionTTL
	MaxSessionTTL = regtype.MaxSessionTTL
)

// Op is one operation of a batch (see Apply).
type Op = regtype.Op

// GroupSize is a group's name and how many reachable members it has.
type GroupSize = regtype.GroupSize

// Selector chooses the members a watch follows.
type Selector = regtype.Selector

// Group follows one group; Prefix every group whose name starts with p;
// All the whole scope.
func Group(g string) Selector  { return regtype.Group(g) }
func Prefix(p string) Selector { return regtype.Prefix(p) }
func All() Selector            { return regtype.All() }

// Watch is a stream of one scope's membership changes (see Registry.Watch).
type Watch = regtype.Watch

// Event is one change seen by a watch.
type Event = regtype.Event

// EventType is what happened.
type EventType = regtype.EventType

// Event types.
const (
	EventJoin   = regtype.EventJoin
	EventLeave  = regtype.EventLeave
	EventUpdate = regtype.EventUpdate
	EventResync = regtype.EventResync
)

// Reason says why it happened.
type Reason = regtype.Reason

// Reasons.
const (
	ReasonJoined         = regtype.ReasonJoined
	ReasonLeft           = regtype.ReasonLeft
	ReasonUpdated        = regtype.ReasonUpdated
	ReasonOwnerDown      = regtype.ReasonOwnerDown
	ReasonOwnerUp        = regtype.ReasonOwnerUp
	ReasonOwnerRestarted = regtype.ReasonOwnerRestarted
	ReasonOwnerForgotten = regtype.ReasonOwnerForgotten
	ReasonSessionExpired = regtype.ReasonSessionExpired
	ReasonResync         = regtype.ReasonResync
)

// PeerState is what this node believes of another node.
type PeerState = regtype.PeerState

// Peer states.
const (
	PeerAlive   = regtype.PeerAlive
	PeerDead    = regtype.PeerDead
	PeerLeft    = regtype.PeerLeft
	PeerUnknown = regtype.PeerUnknown
)

// NodeInfo is one node of the cluster as this node sees it.
type NodeInfo = regtype.NodeInfo

// Divergence describes how far a peer was from agreeing with this node on
// a scope.
type Divergence = regtype.Divergence

// KeyInfo describes one gossip key without its material.
type KeyInfo = regtype.KeyInfo

// MessageKind is a kind of roster gossip message; Stats.Sent and
// Stats.Received are indexed by it.
type MessageKind = regtype.MessageKind

// Message kinds.
const (
	KindDeltas      = regtype.KindDeltas
	KindRelay       = regtype.KindRelay
	KindSync        = regtype.KindSync
	KindLeaving     = regtype.KindLeaving
	NumMessageKinds = regtype.NumMessageKinds
)

// Traffic counts messages and their bytes.
type Traffic = regtype.Traffic

// TransportStats count what the node's network transport sent and
// received.
type TransportStats = regtype.TransportStats

// Stats are the node's cumulative gossip counters, for metrics and tests.
type Stats = regtype.Stats

// ScopeStats describe one scope's replication and watch backlog on this
// node, for metrics.
type ScopeStats = regtype.ScopeStats

// StorageStats are the figures of this node's store (Config.DataDir).
type StorageStats = regtype.StorageStats

// Limits bound what clients can make one node hold; see regtype.Limits.
type Limits = regtype.Limits

// DefaultLimits returns the default per-node limits.
func DefaultLimits() Limits { return regtype.DefaultLimits() }

// Sentinel errors; test with errors.Is (see regtype for each one's
// meaning). ErrConfig is this package's own (config.go).
var (
	ErrClosed          = regtype.ErrClosed
	ErrInvalidName     = regtype.ErrInvalidName
	ErrInvalidMeta     = regtype.ErrInvalidMeta
	ErrUnknownScope    = regtype.ErrUnknownScope
	ErrNotMember       = regtype.ErrNotMember
	ErrNotOwner        = regtype.ErrNotOwner
	ErrNoSession       = regtype.ErrNoSession
	ErrInvalidTTL      = regtype.ErrInvalidTTL
	ErrInvalidPage     = regtype.ErrInvalidPage
	ErrStorage         = regtype.ErrStorage
	ErrWatchClosed     = regtype.ErrWatchClosed
	ErrNotDurable      = regtype.ErrNotDurable
	ErrRestartRequired = regtype.ErrRestartRequired

	ErrLimit           = regtype.ErrLimit
	ErrTooManySessions = regtype.ErrTooManySessions
	ErrTooManyMembers  = regtype.ErrTooManyMembers
	ErrTooManyGroups   = regtype.ErrTooManyGroups
	ErrTooManyWatchers = regtype.ErrTooManyWatchers

	ErrNoKeyring  = regtype.ErrNoKeyring
	ErrInvalidKey = regtype.ErrInvalidKey
	ErrUnknownKey = regtype.ErrUnknownKey
	ErrPrimaryKey = regtype.ErrPrimaryKey
)
