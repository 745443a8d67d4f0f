// Package server is roster's HTTP/JSON API: the public contract of
// `roster serve`, on top of an embedded *registry.Registry.
//
//	PUT    /v1/scopes/{scope}/groups/{group}/members/{id}   join or update ({"meta":{...},"session":"<id>"})
//	DELETE /v1/scopes/{scope}/groups/{group}/members/{id}   leave (on the owner)
//	GET    /v1/scopes/{scope}/groups/{group}/members        ?local=true
//	GET    /v1/scopes/{scope}/groups
//	GET    /v1/scopes/{scope}/watch                         ?group=g | ?prefix=p (Server-Sent Events)
//	POST   /v1/sessions {"ttl":"15s"} · GET|PUT|DELETE /v1/sessions/{id} · GET /v1/sessions
//	GET    /v1/nodes
//	GET    /healthz · /readyz · /metrics
//
// A join without a session creates a durable member (it lives until it is
// left); a join with a session binds the member to it (it leaves when the
// session expires or is closed). Every member in a response carries id,
// group, meta, owner and incarnation. Errors are
// {"error":{"code":"...","message":"..."}} with a fitting status; bad input
// is rejected before anything changes.
//
// # Watch streams
//
// A watch first sends a "snapshot" event, then "join", "leave" and "update"
// events whose SSE id is the registry's per-scope event Seq, and "resync"
// events (a fresh snapshot) when the consumer fell behind. A client that
// reconnects with Last-Event-ID: N gets exactly the events after N when the
// server still holds them in its per-scope history ring (Config.WatchHistory
// events), and a resync otherwise. Seqs restart with the process: the
// response header Roster-Incarnation names the registry run, and a client
// that sends it back on reconnect gets a resync instead of a replay from
// another run (the Go client does this).
//
// # What it owns
//
// HTTP routing, JSON encoding, request validation and limits, the mapping of
// registry errors to status codes, authentication (bearer token) and TLS,
// the watch history ring and SSE framing, Prometheus metrics, and graceful
// shutdown of HTTP traffic.
//
// # What it must not touch
//
// Replication, CRDTs, gossip and storage: it only calls the registry's
// public API and never changes replicated state except through it. Closing
// the registry is the caller's job.
package server
