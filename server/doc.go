// Package server is roster's HTTP/JSON API: the public contract of
// `roster serve`, on top of an embedded registry (package registry's
// *Registry, which New takes as the interface Registry).
//
//	PUT    /v1/scopes/{scope}/groups/{group}/members/{id}   join or update ({"meta":{...},"session":"<id>"})
//	DELETE /v1/scopes/{scope}/groups/{group}/members/{id}   leave (on the owner)
//	GET    /v1/scopes/{scope}/groups/{group}/members        ?local=true &limit=N&offset=K (a page, with total)
//	GET    /v1/scopes/{scope}/groups                        ?prefix=p &counts=true &limit=N&after=g (a page, with total and next)
//	GET    /v1/scopes/{scope}/watch                         ?group=g | ?prefix=p, &snapshot=false (Server-Sent Events)
//	POST   /v1/scopes/{scope}/batch                         {"ops":[{"op":"join"|"leave","group","id","meta","session"},...]}
//	POST   /v1/sessions {"ttl":"15s"} · GET|PUT|DELETE /v1/sessions/{id}
//	GET    /v1/sessions                                     ?limit=N&after=F (a page, by fingerprint, without ids)
//	GET    /v1/nodes                                        with each node's http_addr and each peer's divergence
//	GET    /v1/keyring · POST /v1/keyring                   gossip keys (server/keyring.go)
//	GET    /v1/openapi.json                                 this API as an OpenAPI 3 document (openapi.json)
//	GET    /healthz · /readyz · /metrics
//	GET    /ui                                              the dashboard (package ui; its files need no token)
//
// openapi.json documents every route, parameter, schema and error code;
// its tests fail when a route of apiRoutes, a query parameter a handler
// reads or an error code the server answers is missing from it, and check
// real answers against it.
//
// A join without a session creates a durable member (it lives until it is
// left); a join with a session binds the member to it (it leaves when the
// session expires or is closed). The answer to a join carries "created":
// true when it created the member, false when it updated one the node
// already owned. Every member in a response carries id, group, meta,
// owner and incarnation. Incarnations (of members, nodes and snapshots)
// are decimal strings: they exceed 2^53, which JavaScript numbers cannot
// hold exactly. Errors are
// {"error":{"code":"...","message":"..."}} with a fitting status, including
// the answers net/http would give by itself (400 bad_request, 431
// headers_too_large, 501 not_implemented) and paths that are not canonical
// (404, where http.ServeMux would redirect); bad input is rejected before
// anything changes. Bodies are strict JSON: valid UTF-8, no duplicate keys,
// field names exactly as documented. Storage errors answer a generic
// message; the detail (file names) goes to the log.
//
// # Batches
//
// POST /v1/scopes/{scope}/batch joins and leaves many members in one
// request (a restarting gateway re-registers its connections in a few):
// {"ops":[...]} answers {"results":[...]}, one result per op in order,
// each {"status":200,"member":{...}} for a join, {"status":204} for a
// leave, or {"status":S,"error":{...}} with what the single request would
// have answered. A bad op fails alone; the durable and session members of
// the batch are persisted with one fsync before any is applied
// (registry.Apply), and a member named twice takes its ops in order. The
// request fails as a whole, changing nothing, only when it cannot be read
// (400 bad_json or invalid_batch, 413 body_too_large past
// Config.MaxBatchBytes or batch_too_large past Config.MaxBatchOps, an
// unknown scope). Config.MaxBatchesInFlight batches are read and applied
// at a time; more wait.
//
// # Sessions
//
// A session's id is its only credential: it is in the answers to create,
// get and keep-alive (which name it), never in the listing, which shows a
// fingerprint instead (the first 8 bytes of the id's SHA-256, in hex) a
// page at a time (limit, default 100, at most 1000; next gives the after=
// of the following page).
//
// # Listings
//
// A group's members are listed whole, or a page at a time with limit (at
// most 1000) and offset (a position in the listing, sorted by id then
// owner; pages read while the group changes may overlap or skip members),
// the answer then giving the listing's total. Groups can be filtered by
// prefix, counted (counts: members per listed group) and paged by name
// (limit, after; total is the number of groups matching, next the after=
// of the next page). In /v1/nodes, each peer that has sent this node an
// anti-entropy digest carries its divergence per scope: how many
// operations (joins, updates, leaves, by their owners' counters) its last
// digest lacked of this node's (behind) and held that this node lacks
// (ahead), and how old that digest is (age_ms); all zero is agreement.
//
// # Routing
//
// GET /v1/nodes shows every node's http_addr, the base URL it advertises
// (registry.Config.HTTPAddr). A request about a member or a session that
// another node holds (a leave; a session's get, keep-alive or close; a
// join into a session) is forwarded to that node, one hop, when
// Config.Forward is on and the owner is known, alive and has an address:
// the answer then carries Roster-Forwarded-To, and 502 owner_unreachable
// if the owner did not answer. Otherwise the error (409 not_owner, 404
// session_not_found) has "owners": name, http_addr and state of each
// node holding it. A session id names its node (registry.SessionOwner);
// a request marked Roster-Forwarded-By is never forwarded again.
//
// # Limits
//
// The node's registry.Limits (sessions, owned members, groups, watchers)
// answer 429 with too_many_sessions, too_many_members, too_many_groups or
// too_many_watchers. Serve holds at most Config.MaxConns connections and
// bounds reading headers (ReadHeaderTimeout), a whole request with its
// body (ReadTimeout), writing an answer (WriteTimeout), idle keep-alive
// connections (IdleTimeout) and headers' size (MaxHeaderBytes).
//
// # Watch streams
//
// A watch (GET only) first sends a "snapshot" event (unless
// snapshot=false: changes only), then "join", "leave" and "update" events, and "resync" events (a fresh snapshot) when the
// consumer fell behind. Every event's SSE id is "<incarnation>-<seq>": the
// registry run (the Roster-Incarnation response header too) and the
// per-scope event Seq. A client that reconnects with Last-Event-ID (or
// ?last_event_id=) gets exactly the events after it when the id is of this
// run and the server still holds them in its per-scope history ring
// (Config.WatchHistory events), and a resync otherwise: an id of another
// run, a malformed one, or one too old. (A bare seq, as older clients
// send, is resumed only with a matching Roster-Incarnation request
// header.) Each write to a stream has Config.WatchWriteTimeout: a client
// that stops reading is dropped, not buffered for; the registry's
// Limits.WatchBacklogBytes bounds what a slow one may queue before it gets
// a resync.
//
// # What it owns
//
// HTTP routing, JSON encoding, request validation and limits, the mapping of
// registry errors to status codes, authentication (bearer token, mutual
// TLS) and TLS (with certificate reload), connection limits and timeouts,
// the watch history ring and SSE framing, Prometheus metrics, and graceful
// shutdown of HTTP traffic.
//
// # What it must not touch
//
// Replication, CRDTs, gossip and storage: it only calls the registry's
// public API and never changes replicated state except through it. Closing
// the registry is the caller's job.
//
// It must not import package registry, nor package gossip or memberlist
// (not even indirectly): it calls the registry through Registry and names
// the registry's values through package regtype, so that `go list -deps`
// of this package holds neither. The test in internal/depcheck fails when
// that changes.
package server
