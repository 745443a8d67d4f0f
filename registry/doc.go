// Package registry is roster's public embedded API: an eventually
// consistent process-group registry (Erlang/OTP pg on CRDTs and SWIM
// gossip) for Go services.
//
//	r, err := registry.Open(ctx, registry.DefaultConfig("node-1"))
//	m, err := r.Join(ctx, "chat", "room:42", connID, registry.Meta{"addr": "10.0.0.5:4000"})
//	ms, err := r.Members("chat", "room:42")   // reachable members, all nodes
//	w, err := r.Watch(ctx, "chat", registry.Group("room:42"))
//	err = m.Leave(ctx)
//	errs, err := r.Apply(ctx, "chat", ops) // many joins and leaves, answered each, one fsync
//
// Join, Leave and every read are served from the local replica and succeed
// on both sides of a partition. A member is identified by (scope, group, id,
// owner): only its owner (the node where it joined) can remove it, and it
// lives until the owner removes it, the process exits, or the context it is
// bound to (JoinWhile) ends. Members of an owner that the failure detector
// declares down are hidden from reads and watchers get leave events with
// reason owner-down; they reappear (owner-up) if the same run of that node
// comes back.
//
// The values it hands out (members, handles, lifetimes, sessions, batch
// ops, selectors, events and watches, the cluster view, figures, limits
// and sentinel errors) are defined in package regtype and re-exported here
// under the same names (aliases.go): registry.Member is regtype.Member.
// Package server uses a registry through an interface written in
// regtype's terms, so it does not import this package, nor gossip and
// memberlist through it.
//
// # What it owns
//
// Configuration and its validation, input validation with sentinel errors,
// the engine behind member handles and watch streams (snapshot, then
// ordered events, with an explicit resync for a consumer that falls
// behind), and the conversion of the gossip layer's values to regtype's.
//
// # What it must not touch
//
// Networking and replication (package gossip), the CRDT (package crdt),
// storage and HTTP. No signature of a method package server calls may
// mention a gossip type (server declares them in server.Registry).
package registry
