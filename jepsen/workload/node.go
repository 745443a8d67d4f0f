// Package workload is what the partition suite's clients do: the
// workloads (join-set, join-leave, rejoin, owner-visibility, watch,
// persistence, session), each a generator of operations, the executor
// that performs an operation on a node and records its invocation and
// completion, and the watchers.
//
// It works against Node, an abstract roster node: over HTTP (HTTPNode,
// for processes) or embedded (runner's in-process nodes). It owns neither
// the nodes nor the faults (packages runner and nemesis) nor the judging
// (package checker).
package workload

import (
	"context"
	"errors"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// Errors a Node returns; test with errors.Is.
var (
	// ErrFailed wraps an error after which the operation certainly did
	// not happen (the node answered with an error): a fail completion.
	// Any other error (a timeout, a cut connection) leaves the outcome
	// unknown: an info completion.
	ErrFailed = errors.New("workload: operation failed")
	// ErrNotFound wraps ErrFailed for a session or member the node does
	// not know.
	ErrNotFound = errors.New("workload: not found")
)

// Node is one roster node as the clients see it. Every method may block
// until ctx ends.
type Node interface {
	Name() string
	// Join joins group/id with meta; with session set, bound to that
	// session, else durable (the server's default).
	Join(ctx context.Context, scope, group, id string, meta map[string]string, session string) error
	Leave(ctx context.Context, scope, group, id string) error
	// Members reads one group of scope: every reachable owner's members.
	Members(ctx context.Context, scope, group string) ([]history.Member, error)
	Groups(ctx context.Context, scope string) ([]string, error)
	// Peers is the node's view of the cluster: name -> state.
	Peers(ctx context.Context) (map[string]string, error)
	CreateSession(ctx context.Context, ttl time.Duration) (string, error)
	KeepAlive(ctx context.Context, id string) error
	CloseSession(ctx context.Context, id string) error
	// Watch follows scope from after lastEventID ("" for a snapshot
	// first). The stream reconnects by itself; it ends when ctx ends.
	Watch(ctx context.Context, scope, lastEventID string) (Stream, error)
	// Metrics samples the node's own figures (nil if it has none).
	Metrics(ctx context.Context) (map[string]float64, error)
}

// Stream is a watch: events in order, then io.EOF-like end when the
// watch ends (ok false).
type Stream interface {
	// Next returns the next event, the number of times the stream has
	// reconnected so far, and false when the stream ended.
	Next(ctx context.Context) (ev history.Event, reconnects int, ok bool)
	Close()
}
