package server

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/roster-io/roster/registry"
)

// The JSON shapes of the API. Field names are the public contract.

type memberJSON struct {
	ID    string            `json:"id"`
	Group string            `json:"group"`
	Meta  map[string]string `json:"meta"`
	Owner string            `json:"owner"`
	// Incarnation is the owner's run, a decimal string: it exceeds 2^53,
	// which JavaScript numbers (and many JSON decoders) cannot hold exactly.
	Incarnation uint64 `json:"incarnation,string"`
	// Confirmed is false for a member loaded from the node's cache after a
	// restart whose owner has not been seen alive yet (shown only when the
	// node runs with a positive registry.Config.ConfirmGrace).
	Confirmed bool `json:"confirmed"`
	// Lifetime, only in the answer to a join.
	Durable bool   `json:"durable,omitempty"`
	Session string `json:"session,omitempty"`
	// Created, only in the answer to a join: true when the join created
	// the member, false when it updated one this node already owned.
	Created *bool `json:"created,omitempty"`
}

func toMember(m registry.Member) memberJSON {
	meta := m.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return memberJSON{ID: m.ID, Group: m.Group, Meta: meta, Owner: m.Owner, Incarnation: m.Incarnation, Confirmed: m.Confirmed}
}

func toMembers(ms []registry.Member) []memberJSON {
	out := make([]memberJSON, len(ms))
	for i, m := range ms {
		out[i] = toMember(m)
	}
	return out
}

// membersJSON is a group's members; Total, in a page only (?limit=), is
// the number of members of the whole listing.
type membersJSON struct {
	Members []memberJSON `json:"members"`
	Total   *int         `json:"total,omitempty"`
}

// groupsJSON is a scope's groups. Counts (?counts=true) gives each listed
// group's number of members; in a page (?limit=), Total is the number of
// groups matching the prefix and Next, when more follow, the after= of the
// next page.
type groupsJSON struct {
	Groups []string       `json:"groups"`
	Counts map[string]int `json:"counts,omitempty"`
	Total  *int           `json:"total,omitempty"`
	Next   string         `json:"next,omitempty"`
}

// joinRequest is the body of a join. Without Session the member is durable.
type joinRequest struct {
	Meta    map[string]string `json:"meta"`
	Session string            `json:"session"`
}

// sessionRequest is the body of a session creation; TTL is a Go duration
// ("15s", "1m30s") or a number of seconds.
type sessionRequest struct {
	TTL any `json:"ttl"`
}

// sessionJSON is a session. ID, its only credential, is in the answers to
// its creator and to those who name it (create, get, keep-alive), never in
// a listing: there the Fingerprint (not secret) identifies it.
type sessionJSON struct {
	ID          string    `json:"id,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	TTL         string    `json:"ttl"`
	Expires     time.Time `json:"expires"`
}

func toSession(s registry.Session) sessionJSON {
	return sessionJSON{ID: s.ID, Fingerprint: fingerprint(s.ID), TTL: s.TTL.String(), Expires: s.Expires.UTC()}
}

// fingerprint identifies a session without revealing its id: the first 8
// bytes of the SHA-256 of the id, in hex.
func fingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// sessionsJSON is a page of the session listing, by fingerprint; Next, when
// set, is the after= of the next page.
type sessionsJSON struct {
	Sessions []sessionJSON `json:"sessions"`
	Next     string        `json:"next,omitempty"`
}

type nodeJSON struct {
	Name        string   `json:"name"`
	Incarnation uint64   `json:"incarnation,string"` // a decimal string, as in memberJSON
	State       string   `json:"state"`
	Scopes      []string `json:"scopes"`
	Addr        string   `json:"addr"`
	HTTPAddr    string   `json:"http_addr"` // "" when the node advertises none
	Self        bool     `json:"self"`
	// Divergence, for a peer that has sent this node a digest: per scope
	// (sorted), how far it was from agreeing with this node.
	Divergence []divergenceJSON `json:"divergence,omitempty"`
}

// divergenceJSON: the peer's last anti-entropy digest of Scope, AgeMS
// milliseconds old, lacked Behind operations this node holds, and held
// Ahead operations this node lacks (registry.Divergence).
type divergenceJSON struct {
	Scope  string `json:"scope"`
	Behind uint64 `json:"behind"`
	Ahead  uint64 `json:"ahead"`
	AgeMS  int64  `json:"age_ms"`
}

type nodesJSON struct {
	Nodes []nodeJSON `json:"nodes"`
}

type statusJSON struct {
	Status string `json:"status"`
}

// eventJSON is the data of a join, leave or update watch event.
type eventJSON struct {
	Type   string     `json:"type"`
	Reason string     `json:"reason"`
	Seq    uint64     `json:"seq"`
	Member memberJSON `json:"member"`
}

// snapshotJSON is the data of a snapshot or resync watch event: the whole
// membership the watch follows as of Seq, and the node serving it.
type snapshotJSON struct {
	Type        string       `json:"type"`
	Reason      string       `json:"reason,omitempty"`
	Seq         uint64       `json:"seq"`
	Members     []memberJSON `json:"members"`
	Node        string       `json:"node"`
	Incarnation uint64       `json:"incarnation,string"` // a decimal string, as in memberJSON
}

type errorJSON struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Owners, on not_owner, session_not_found and owner_unreachable when
	// this node knows who holds the member or session (see forward.go).
	Owners []ownerJSON `json:"owners,omitempty"`
}
