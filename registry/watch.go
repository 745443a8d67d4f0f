package registry

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/internal/bug"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
)

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

func (s Selector) matches(group string) bool {
	switch s.kind {
	case selGroup:
		return group == s.value
	case selPrefix:
		return strings.HasPrefix(group, s.value)
	}
	return true
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

func reasonOf(e crdt.Event) Reason {
	switch e.Cause {
	case crdt.CauseSuperseded:
		return ReasonOwnerRestarted
	case crdt.CauseForgotten:
		return ReasonOwnerForgotten
	case crdt.CauseSuspended:
		return ReasonOwnerDown
	case crdt.CauseResumed:
		return ReasonOwnerUp
	}
	switch e.Kind {
	case crdt.EventJoin:
		return ReasonJoined
	case crdt.EventLeave:
		return ReasonLeft
	}
	return ReasonUpdated
}

// watchChanBuffer is the capacity of a watch's channel: a consumer that
// keeps up drains events in runs rather than waking the sender for each.
const watchChanBuffer = 256

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

	h      *hub
	sel    Selector
	out    chan Event
	mu     sync.Mutex
	queue  eventQueue
	behind bool
	// queued and inHand are the approximate bytes (eventCost) of the
	// events in queue and of the batch run is delivering (under mu): the
	// backlog bounded by Limits.WatchBacklogBytes.
	queued, inHand int
	// handing counts the events of the batch run is delivering that are
	// not in C yet (for ScopeStats).
	handing atomic.Int64
	// stall tells run that the watch fell behind while it was blocked
	// handing a batch to a consumer that does not read: it drops the
	// batch and resyncs instead of keeping it.
	stall chan struct{}
	// idle: run holds no events and is waiting for more (under mu).
	idle bool
	// held is how many members the consumer has been given: its snapshot
	// (or last resync), plus the joins and minus the leaves handed to C
	// since. Written by run, read by publish.
	held atomic.Int64
	sig  chan struct{}
	done chan struct{}
	once sync.Once
	// why is the reason the watch ended (see Err), set once, before done
	// is closed.
	why atomic.Pointer[error]
}

// Close ends the watch and closes C; Err then returns ErrWatchClosed.
func (w *Watch) Close() { w.end(ErrWatchClosed) }

// Err reports why the watch ended: nil while it runs, ErrWatchClosed after
// Close, the context's error (context.Canceled or DeadlineExceeded) when
// the context given to Watch ended, and ErrClosed when the registry
// closed. Once C is closed, Err is not nil. A consumer that reads C until
// it is closed learns the reason here:
//
//	for e := range w.C { ... }
//	if err := w.Err(); !errors.Is(err, context.Canceled) { ... }
func (w *Watch) Err() error {
	if p := w.why.Load(); p != nil {
		return *p
	}
	return nil
}

// end ends the watch for the reason why (the first reason wins).
func (w *Watch) end(why error) {
	w.once.Do(func() {
		w.why.Store(&why)
		close(w.done)
		w.h.remove(w)
		w.h.watchers.Add(-1)
	})
}

type hub struct {
	node    atomic.Pointer[gossip.Node] // set once gossip.New returns
	name    string
	scope   *gossip.Scope
	buffer  int
	backlog int // Limits.WatchBacklogBytes
	// watchers counts the registry's open watches (all scopes), bounded
	// by maxWatchers (Limits.MaxWatchers).
	watchers    *atomic.Int64
	maxWatchers int64
	// total counts the backlog bytes (queued and inHand) of every watch of
	// the registry, bounded by maxTotal (Limits.WatchBacklogTotalBytes).
	total    *atomic.Int64
	maxTotal int64
	mu       sync.Mutex
	ws       map[*Watch]struct{}
	seq      uint64 // last change's Seq; guarded by the scope's lock

	bugCount int // bug.WatchDrop's count of events; guarded by the scope's lock

	reasonMu sync.Mutex
	reasons  map[handleKey]Reason // local leaves with a special reason
}

// setReason makes the next local leave of k carry reason ("" clears it).
func (h *hub) setReason(k handleKey, reason Reason) {
	h.reasonMu.Lock()
	defer h.reasonMu.Unlock()
	if reason == "" {
		delete(h.reasons, k)
		return
	}
	if h.reasons == nil {
		h.reasons = map[handleKey]Reason{}
	}
	h.reasons[k] = reason
}

func (h *hub) reasonFor(e crdt.Event) Reason {
	reason := reasonOf(e)
	if e.Kind != crdt.EventLeave || e.Cause != crdt.CauseLocal {
		return reason
	}
	h.reasonMu.Lock()
	defer h.reasonMu.Unlock()
	if r, ok := h.reasons[handleKey{h.name, e.Group, e.ID}]; ok {
		return r
	}
	return reason
}

// publish is the gossip sink: it runs with the scope's lock held, so it
// sees the scope's events in order and must not block.
func (h *hub) publish(evs []crdt.Event) {
	if bug.WatchDrop {
		kept := evs[:0:0]
		for _, e := range evs {
			if h.bugCount++; h.bugCount%50 != 0 {
				kept = append(kept, e)
			}
		}
		evs = kept
	}
	first := h.seq + 1
	h.seq += uint64(len(evs))
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ws) == 0 {
		return
	}
	// Events are converted on first use: a batch larger than a watch's
	// buffer (a transfer) ends in a resync without converting the rest.
	c := &confirmer{node: h.node.Load()}
	event := func(i int) Event {
		e := evs[i]
		return Event{
			Seq:    first + uint64(i),
			Type:   EventType(e.Kind.String()),
			Reason: h.reasonFor(e),
			Member: c.member(e.Group, e.ID, e.Meta, e.Owner),
		}
	}
	if len(h.ws) > 1 {
		// Memoised: more than one watch may need the same event.
		convert := event
		converted, done := make([]Event, len(evs)), make([]bool, len(evs))
		event = func(i int) Event {
			if !done[i] {
				converted[i], done[i] = convert(i), true
			}
			return converted[i]
		}
	}
	for w := range h.ws {
		w.mu.Lock()
		limit := w.limit(h.buffer)
		if !w.behind && w.queue.len()+len(evs) > limit && w.queue.len()+w.sel.count(evs) > limit {
			// The batch would take the watch past its limit (a transfer,
			// a burst): it resyncs, and none of the batch is converted or
			// queued.
			w.behind = true
			w.queue.release()
			w.dropQueued()
		}
		if !w.behind {
			for i, e := range evs {
				if !w.sel.matches(e.Group) {
					continue
				}
				// An idle watch with room in C takes the event at once,
				// without waking run: one goroutine hop less between a
				// change and its consumer.
				if ev := event(i); !w.idle || w.queue.len() > 0 || !w.offer(ev) {
					c := eventCost(&evs[i])
					if w.queued+w.inHand+c > h.backlog || h.total.Load()+int64(c) > h.maxTotal {
						// Its backlog would outgrow its byte budget, or
						// the node's for all watches: a consumer this far
						// behind (or not reading at all) gets a resync
						// instead.
						w.behind = true
						w.queue.release()
						w.dropQueued()
						break
					}
					w.queue.push(ev)
					w.queued += c
					h.total.Add(int64(c))
				}
			}
		}
		wake, stall := w.behind || w.queue.len() > 0, w.behind
		w.mu.Unlock()
		if wake {
			select {
			case w.sig <- struct{}{}:
			default:
			}
		}
		if stall {
			select {
			case w.stall <- struct{}{}:
			default:
			}
		}
	}
}

// hold adds sign times e's effect to held. An event is counted before it
// is handed over, so that a consumer that has received it is known to
// hold it.
func (w *Watch) hold(e Event, sign int64) {
	switch e.Type {
	case EventJoin:
		w.held.Add(sign)
	case EventLeave:
		w.held.Add(-sign)
	}
}

// offer hands e to C if C has room, without waiting. Under mu, while idle.
func (w *Watch) offer(e Event) bool {
	w.hold(e, 1)
	select {
	case w.out <- e:
		return true
	default:
		w.hold(e, -1)
		return false
	}
}

// limit is how many events w may hold queued: the configured buffer, or
// as many as the members its consumer already holds if more (up to
// maxWatchBacklog). A resync hands over a snapshot of every followed
// member, so a consumer of a 100k-member scope that falls 16k events
// behind in a burst is better served by the backlog than by a 100k
// snapshot (which it used to get, again and again while the burst
// lasted); a consumer that stops reading is still resynced once its
// backlog outgrows what it holds.
func (w *Watch) limit(buffer int) int {
	return max(buffer, int(min(w.held.Load(), maxWatchBacklog)))
}

// maxWatchBacklog caps how far a watch of many members may fall behind:
// the largest WatchBuffer allowed.
const maxWatchBacklog = 1 << 20

// eventCost estimates the memory a queued event holds: the Event itself,
// its names, and its decoded metadata (a map costs about twice its
// encoding). Only an estimate, for Limits.WatchBacklogBytes.
func eventCost(e *crdt.Event) int {
	const eventBytes = 160 // unsafe.Sizeof(Event{}) and a map header
	return eventBytes + len(e.Group) + len(e.ID) + len(e.Owner.Name) + 2*len(e.Meta)
}

// count returns how many of evs the selector follows.
func (s Selector) count(evs []crdt.Event) int {
	if s.kind == selAll {
		return len(evs)
	}
	n := 0
	for i := range evs {
		if s.matches(evs[i].Group) {
			n++
		}
	}
	return n
}

func (h *hub) remove(w *Watch) {
	h.mu.Lock()
	delete(h.ws, w)
	if len(h.ws) == 0 {
		h.scope.SetQuiet(true)
	}
	h.mu.Unlock()
	// No publish reaches w any more: what it still queues leaves the
	// node's backlog (what run holds in hand leaves when run returns).
	w.mu.Lock()
	w.queue.release()
	w.dropQueued()
	w.mu.Unlock()
}

// dropQueued takes w's queued bytes out of the node's backlog. Under mu.
func (w *Watch) dropQueued() {
	w.h.total.Add(-int64(w.queued))
	w.queued = 0
}

func (h *hub) closeAll() {
	h.mu.Lock()
	ws := make([]*Watch, 0, len(h.ws))
	for w := range h.ws {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.end(ErrClosed)
	}
}

// snapshot reads the members a selector follows; st must be locked.
func (h *hub) snapshot(st *crdt.State, sel Selector) []Member {
	node := h.node.Load()
	if sel.kind == selGroup {
		c := &confirmer{node: node}
		return c.convert(nil, st.Members(sel.value))
	}
	var groups []string
	var ends []int // ends[i]: where groups[i]'s members end in out
	n := 0
	for _, g := range st.Groups() {
		if sel.matches(g) {
			groups = append(groups, g)
			n += st.Visible(g)
			ends = append(ends, n)
		}
	}
	// A large snapshot (a resync after a transfer, a watch of a whole
	// scope) is built on every CPU: the state is only read, under the lock
	// the caller holds, and each part fills its own place in the result.
	if workers := min(runtime.GOMAXPROCS(0), n/snapshotPart); workers >= 2 {
		if out, ok := snapshotParallel(st, node, groups, ends, workers); ok {
			return out
		}
	}
	out := make([]Member, 0, n)
	c := &confirmer{node: node}
	var ms []crdt.Member // one group's, reused
	for _, g := range groups {
		ms = st.AppendMembers(ms[:0], g)
		out = c.convert(out, ms)
	}
	clear(ms)
	// Groups and each group's members come sorted, so out is in (group, id,
	// owner) order already.
	return out
}

// snapshotParallel converts groups on workers goroutines, each into the
// places ends (the running member counts by group) give it in the result.
// It reports false, and the caller lists them one by one instead, if a
// group's listing does not have the size counted for it.
func snapshotParallel(st *crdt.State, node *gossip.Node, groups []string, ends []int, workers int) ([]Member, bool) {
	n := ends[len(ends)-1]
	out := make([]Member, n)
	var mismatch atomic.Bool
	fill := func(lo, hi int) {
		c := &confirmer{node: node}
		var ms []crdt.Member // one group's, reused
		defer func() { clear(ms) }()
		for i := lo; i < hi; i++ {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			ms = st.AppendMembers(ms[:0], groups[i])
			if len(ms) != ends[i]-start {
				mismatch.Store(true)
				return
			}
			for k, m := range ms {
				out[start+k] = c.member(m.Group, m.ID, m.Meta, m.Owner)
			}
		}
	}
	var wg sync.WaitGroup
	lo := 0
	for w := 1; w <= workers; w++ {
		hi := lo
		for hi < len(groups) && (w == workers || ends[hi] <= n*w/workers) {
			hi++
		}
		from := lo
		wg.Go(func() { fill(from, hi) })
		lo = hi
	}
	wg.Wait()
	return out, !mismatch.Load()
}

// snapshotPart is the fewest members a snapshot gives each CPU building it.
const snapshotPart = 8192

// Watch starts a watch on scope: a snapshot of what sel follows, then its
// changes. It ends when ctx is done, Close is called, or the registry
// closes; Watch.Err then tells which.
func (r *Registry) Watch(ctx context.Context, scope string, sel Selector) (*Watch, error) {
	if _, err := r.check(scope); err != nil {
		return nil, err
	}
	if sel.kind == selGroup {
		if err := validName("group", sel.value); err != nil {
			return nil, err
		}
	}
	h := r.hubs[scope]
	if n := h.watchers.Add(1); n > h.maxWatchers {
		h.watchers.Add(-1)
		return nil, fmt.Errorf("%w: %d open watches (Limits.MaxWatchers)", ErrTooManyWatchers, n-1)
	}
	w := &Watch{h: h, sel: sel, out: make(chan Event, watchChanBuffer), sig: make(chan struct{}, 1), stall: make(chan struct{}, 1), done: make(chan struct{})}
	w.C = w.out
	// Register and snapshot atomically with respect to the scope's events.
	h.scope.Locked(func(st *crdt.State) {
		w.Snapshot = h.snapshot(st, sel)
		w.held.Store(int64(len(w.Snapshot)))
		h.mu.Lock()
		// The changes made while nobody watched were only counted.
		h.seq += h.scope.TakeSkipped()
		w.Seq = h.seq
		if h.ws == nil {
			h.ws = map[*Watch]struct{}{}
		}
		h.ws[w] = struct{}{}
		h.scope.SetQuiet(false)
		h.mu.Unlock()
	})
	stop := context.AfterFunc(ctx, func() { w.end(ctx.Err()) })
	go func() {
		defer stop()
		w.run()
	}()
	return w, nil
}

// awaitReader waits until the consumer has taken every event in C, so
// that a resync (a snapshot of everything the watch follows) is built only
// for a consumer that reads: one that stalls holds C's events and nothing
// more, however large the scope. It reports false if the watch ended.
func (w *Watch) awaitReader() bool {
	delay := time.Millisecond
	for len(w.out) > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.done:
			t.Stop()
			return false
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	return true
}

func (w *Watch) run() {
	defer func() {
		// publish sends on out only while idle, under mu.
		w.mu.Lock()
		w.idle = false
		w.h.total.Add(-int64(w.inHand))
		w.inHand = 0
		w.handing.Store(0)
		w.mu.Unlock()
		close(w.out)
	}()
	// q is the batch being delivered, swapped with w.queue (empty) each
	// round, so that publish keeps filling one while this sends the other.
	var q eventQueue
	// send hands e to C. It reports false when the watch ends (done) or
	// when it fell behind meanwhile (dropped): then what run holds is
	// superseded by the resync to come, and is dropped.
	var dropped bool
	send := func(e Event) bool {
		w.hold(e, 1)
		for {
			select {
			case w.out <- e:
				w.handing.Add(-1)
				return true
			case <-w.done:
				return false
			case <-w.stall:
				w.mu.Lock()
				behind := w.behind
				w.mu.Unlock()
				if behind {
					w.hold(e, -1)
					dropped = true
					return false
				}
				// A stale signal: the resync it asked for was made.
			}
		}
	}
	for {
		dropped = false
		w.mu.Lock()
		behind := w.behind
		if !behind {
			q, w.queue = w.queue, q
			w.inHand, w.queued = w.queued, 0
			w.handing.Store(int64(q.len()))
		}
		// Idle: nothing in hand, so publish may hand events to C itself
		// without overtaking any.
		w.idle = !behind && q.len() == 0
		w.mu.Unlock()
		if behind {
			if !w.awaitReader() {
				return
			}
			ev := Event{Type: EventResync, Reason: ReasonResync}
			w.h.scope.Locked(func(st *crdt.State) {
				ev.Members = w.h.snapshot(st, w.sel)
				ev.Seq = w.h.seq
				w.mu.Lock()
				w.queue.release()
				w.dropQueued()
				w.behind = false
				w.held.Store(int64(len(ev.Members)))
				w.mu.Unlock()
			})
			if !send(ev) && !dropped {
				return
			}
			continue
		}
		if q.len() > 0 {
			ok := q.each(send)
			q.release() // the channel holds copies
			w.mu.Lock()
			w.h.total.Add(-int64(w.inHand))
			w.inHand = 0
			w.handing.Store(0)
			w.mu.Unlock()
			if !ok && !dropped {
				return
			}
			continue
		}
		select {
		case <-w.sig:
		case <-w.done:
			return
		}
	}
}
