// Package regtype holds the values the embedded API (package registry)
// hands out, with no engine behind them: members and their metadata,
// lifetimes and sessions, batch operations, watch selectors, events and
// streams, the cluster view, the node's figures and limits, and the
// sentinel errors its methods return.
//
// Package registry re-exports every type, constant, constructor of
// selectors and options, and error here (registry.Member is
// regtype.Member, registry.ErrClosed is regtype.ErrClosed), so an
// embedder needs only registry. This package exists so that code which
// uses a registry through an interface, package server above all, can
// name these values without importing registry, and with it the gossip
// layer and memberlist. NewWatch, NewMembership, WatchSource, MemberOwner
// and LifetimeOf are not re-exported: they serve implementations of the
// API (package registry, test doubles), not embedders.
//
// # What it owns
//
// The definitions of those values, their documented meaning, and the few
// pure helpers on them (selector matching, the lifetime a set of join
// options chooses, the names of message kinds).
//
// # What it must not touch
//
// Any engine: it must not import package registry, gossip or memberlist
// (the test in internal/depcheck fails if it does), and it holds no state.
// Watch and Membership delegate their Close, Err, Update and Leave to the
// implementation that made them (NewWatch, NewMembership).
package regtype
