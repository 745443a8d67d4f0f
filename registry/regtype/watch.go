package regtype

import "strings"

// Selector chooses the members a watch follows.
type Selector struct {
	kind  selKind
	value string
}

type selKind uint8

const (
	selAll selKind = iota
	selGroup
	selPrefix
)

// Group follows one group; Prefix every group whose name starts with p;
// All the whole scope.
func Group(g string) Selector  { return Selector{selGroup, g} }
func Prefix(p string) Selector { return Selector{selPrefix, p} }
func All() Selector            { return Selector{selAll, ""} }

// Matches reports whether the selector follows group.
func (s Selector) Matches(group string) bool {
	switch s.kind {
	case selGroup:
		return group == s.value
	case selPrefix:
		return strings.HasPrefix(group, s.value)
	}
	return true
}

// IsAll reports whether the selector follows the whole scope (All).
func (s Selector) IsAll() bool { return s.kind == selAll }

// GroupName returns the group a Group selector follows; ok is false for
// All and Prefix.
func (s Selector) GroupName() (group string, ok bool) {
	if s.kind != selGroup {
		return "", false
	}
	return s.value, true
}

// EventType is what happened.
type EventType string

const (
	EventJoin   EventType = "join"
	EventLeave  EventType = "leave"
	EventUpdate EventType = "update"
	// EventResync replaces everything the consumer knew with Snapshot: the
	// consumer fell more than Config.WatchBuffer events behind, and more
	// events than the members it holds.
	EventResync EventType = "resync"
)

// Reason says why it happened.
type Reason string

const (
	ReasonJoined         Reason = "joined"
	ReasonLeft           Reason = "left"
	ReasonUpdated        Reason = "updated"
	ReasonOwnerDown      Reason = "owner-down"
	ReasonOwnerUp        Reason = "owner-up"
	ReasonOwnerRestarted Reason = "owner-restarted"
	ReasonOwnerForgotten Reason = "owner-forgotten"
	// ReasonSessionExpired: the member's session was not kept alive. Only
	// watchers on the owner see it; other nodes see ReasonLeft.
	ReasonSessionExpired Reason = "session-expired"
	ReasonResync         Reason = "resync"
)

// Event is one change seen by a watch.
type Event struct {
	// Seq numbers the scope's changes on this node: it grows by one per
	// change, in the order every watch of the scope sees them, and is
	// never reused while the registry runs. A resync carries the Seq of the
	// last change it includes.
	Seq     uint64
	Type    EventType
	Reason  Reason
	Member  Member   // join, leave, update
	Members []Member // resync: the full current membership the watch follows
}

// WatchSource is what a Watch's Close and Err act on: the stream that
// feeds its C (in package registry, the scope's watch engine).
type WatchSource interface {
	// Close ends the stream and closes C; Err then returns ErrWatchClosed.
	Close()
	// Err reports why the stream ended, nil while it runs.
	Err() error
}

// Watch is a stream of one scope's membership changes: Snapshot is the
// membership when the watch started, then C delivers every change after it,
// in order, exactly once, until the watch is closed or its context ends (C
// is then closed, and Err says why). A consumer that falls behind gets an
// EventResync, never a silent gap.
type Watch struct {
	Snapshot []Member
	// Seq is the Seq of the last change the snapshot includes; the first
	// event has a higher one.
	Seq uint64
	C   <-chan Event

	src WatchSource
}

// NewWatch returns a Watch of snapshot (as of seq) and the changes c
// delivers, which src ends and explains. It is for implementations of the
// registry's API (package registry, test doubles); embedders get watches
// from Watch. The zero Watch, made without one, has nothing to close and
// no error.
func NewWatch(snapshot []Member, seq uint64, c <-chan Event, src WatchSource) *Watch {
	return &Watch{Snapshot: snapshot, Seq: seq, C: c, src: src}
}

// Close ends the watch and closes C; Err then returns ErrWatchClosed.
func (w *Watch) Close() {
	if w.src != nil {
		w.src.Close()
	}
}

// Err reports why the watch ended: nil while it runs, ErrWatchClosed after
// Close, the context's error (context.Canceled or DeadlineExceeded) when
// the context given to Watch ended, and ErrClosed when the registry
// closed. Once C is closed, Err is not nil. A consumer that reads C until
// it is closed learns the reason here:
//
//	for e := range w.C { ... }
//	if err := w.Err(); !errors.Is(err, context.Canceled) { ... }
func (w *Watch) Err() error {
	if w.src == nil {
		return nil
	}
	return w.src.Err()
}
