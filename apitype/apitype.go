// Package apitype holds the JSON shapes of roster's HTTP API (`roster
// serve`, package server): the server encodes them and the Go client
// (package client) decodes them, so that the two cannot drift apart.
// Field names and tags are the public contract; openapi.json in package
// server describes the same shapes.
//
// It imports only the standard library, so that a client needs nothing
// of the server to use it.
//
// Incarnations (a node's run) are decimal strings in JSON: they exceed
// 2^53, which JavaScript numbers (and many JSON decoders) cannot hold
// exactly. The types here encode them as strings and decode either a
// string or a number (older nodes sent numbers).
package apitype

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Member is a member of a group as a node reports it.
type Member struct {
	ID    string            `json:"id"`
	Group string            `json:"group"`
	Meta  map[string]string `json:"meta"`
	Owner string            `json:"owner"`
	// Incarnation is the owner's run, a decimal string in JSON.
	Incarnation uint64 `json:"incarnation,string"`
	// Confirmed is false for a member loaded from the node's cache after a
	// restart whose owner has not been seen alive yet (shown only when the
	// node runs with a positive registry.Config.ConfirmGrace).
	Confirmed bool `json:"confirmed"`
	// Durable and Session, only in the answer to a join: the member's
	// lifetime.
	Durable bool   `json:"durable,omitempty"`
	Session string `json:"session,omitempty"`
	// Created, only in the answer to a join: true when the join created
	// the member, false when it updated one the node already owned; nil
	// elsewhere.
	Created *bool `json:"created,omitempty"`
}

// UnmarshalJSON decodes a member, its incarnation given as a string or a
// number.
func (m *Member) UnmarshalJSON(b []byte) error {
	type plain Member
	raw := struct {
		*plain
		Incarnation Incarnation `json:"incarnation"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Incarnation = uint64(raw.Incarnation)
	return nil
}

// Members is a group's members; Total, in a page only (?limit=), is the
// number of members of the whole listing.
type Members struct {
	Members []Member `json:"members"`
	Total   *int     `json:"total,omitempty"`
}

// Groups is a scope's groups. Counts (?counts=true) gives each listed
// group's number of members; in a page (?limit=), Total is the number of
// groups matching the prefix and Next, when more follow, the after= of the
// next page.
type Groups struct {
	Groups []string       `json:"groups"`
	Counts map[string]int `json:"counts,omitempty"`
	Total  *int           `json:"total,omitempty"`
	Next   string         `json:"next,omitempty"`
}

// JoinRequest is the body of a join (PUT on a member). Without Session
// the member is durable.
type JoinRequest struct {
	Meta    map[string]string `json:"meta,omitempty"`
	Session string            `json:"session,omitempty"`
}

// SessionRequest is the body of a session creation; TTL is a Go duration
// ("15s", "1m30s") or a number of seconds.
type SessionRequest struct {
	TTL any `json:"ttl"`
}

// Session is a session. ID, its only credential, is in the answers to its
// creator and to those who name it (create, get, keep-alive), never in a
// listing: there the Fingerprint (not secret) identifies it. TTL is a Go
// duration ("15s").
type Session struct {
	ID          string    `json:"id,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	TTL         string    `json:"ttl"`
	Expires     time.Time `json:"expires"`
}

// Sessions is a page of the session listing, by fingerprint; Next, when
// set, is the after= of the next page.
type Sessions struct {
	Sessions []Session `json:"sessions"`
	Next     string    `json:"next,omitempty"`
}

// Node is one node of the cluster as the queried node sees it.
type Node struct {
	Name        string   `json:"name"`
	Incarnation uint64   `json:"incarnation,string"` // a decimal string, as in Member
	State       string   `json:"state"`              // alive, dead, left, unknown
	Scopes      []string `json:"scopes"`
	Addr        string   `json:"addr"`
	HTTPAddr    string   `json:"http_addr"` // base URL of its API; "" when it advertises none
	Self        bool     `json:"self"`
	// Divergence, for a peer that has sent this node a digest: per scope
	// (sorted), how far it was from agreeing with this node.
	Divergence []Divergence `json:"divergence,omitempty"`
}

// UnmarshalJSON decodes a node, its incarnation given as a string or a
// number.
func (n *Node) UnmarshalJSON(b []byte) error {
	type plain Node
	raw := struct {
		*plain
		Incarnation Incarnation `json:"incarnation"`
	}{plain: (*plain)(n)}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	n.Incarnation = uint64(raw.Incarnation)
	return nil
}

// Divergence: the peer's last anti-entropy digest of Scope, AgeMS
// milliseconds old, lacked Behind operations this node holds, and held
// Ahead operations this node lacks.
type Divergence struct {
	Scope  string `json:"scope"`
	Behind uint64 `json:"behind"`
	Ahead  uint64 `json:"ahead"`
	AgeMS  int64  `json:"age_ms"`
}

// Nodes is the answer of GET /v1/nodes.
type Nodes struct {
	Nodes []Node `json:"nodes"`
}

// Status is the answer of the health endpoints.
type Status struct {
	Status string `json:"status"`
}

// Event is the data of a join, leave or update watch event.
type Event struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Seq    uint64 `json:"seq"`
	Member Member `json:"member"`
}

// Snapshot is the data of a snapshot or resync watch event: the whole
// membership the watch follows as of Seq, and the node serving it.
type Snapshot struct {
	Type        string   `json:"type"`
	Reason      string   `json:"reason,omitempty"`
	Seq         uint64   `json:"seq"`
	Members     []Member `json:"members"`
	Node        string   `json:"node"`
	Incarnation uint64   `json:"incarnation,string"` // a decimal string, as in Member
}

// Error is the body of every error answer:
// {"error":{"code":"...","message":"..."}}.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is an error's code and message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Owners, on not_owner, session_not_found and owner_unreachable when
	// the node knows who holds the member or session: where a client can
	// send the request itself.
	Owners []Owner `json:"owners,omitempty"`
}

// Owner names a node that holds what a request is about.
type Owner struct {
	Name     string `json:"name"`
	HTTPAddr string `json:"http_addr"` // base URL of its API; "" when it advertises none
	State    string `json:"state"`     // alive, dead, left, unknown
}

// BatchRequest is the body of POST /v1/scopes/{scope}/batch.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchOp is one operation of a batch: {"op":"join","group":...,"id":...,
// "meta":{...},"session":"..."} (durable without a session, as PUT on a
// member) or {"op":"leave","group":...,"id":...}.
type BatchOp struct {
	Op      string            `json:"op"`
	Group   string            `json:"group"`
	ID      string            `json:"id"`
	Meta    map[string]string `json:"meta,omitempty"`
	Session string            `json:"session,omitempty"`
}

// BatchResult answers one op, as the single request would have been
// answered: status 200 and the member for a join, 204 for a leave, or the
// error's status and body.
type BatchResult struct {
	Status int        `json:"status"`
	Member *Member    `json:"member,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// BatchResponse is the answer to a batch: one result per op, in order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// Incarnation decodes a node's run given as a decimal string (the API's
// form) or as a JSON number (older nodes); null leaves it unchanged. It
// encodes as a decimal string.
type Incarnation uint64

// MarshalJSON encodes the incarnation as a decimal string.
func (i Incarnation) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(i), 10)), nil
}

// UnmarshalJSON decodes a decimal string or a number.
func (i *Incarnation) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("apitype: incarnation %s: want a decimal string", b)
	}
	*i = Incarnation(v)
	return nil
}
