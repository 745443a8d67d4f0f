package registry

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/internal/bug"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/registry/regtype"
)

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

// watcher is the engine behind a Watch (its regtype.WatchSource): it
// takes the scope's events from publish, queues them within the watch's
// limits and hands them to the Watch's C (out, in run), or falls behind
// and hands over a resync.
type watcher struct {
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

// Close ends the watch and closes its channel; Err then returns
// ErrWatchClosed (regtype.WatchSource).
func (w *watcher) Close() { w.end(ErrWatchClosed) }

// Err reports why the watch ended, nil while it runs (regtype.WatchSource;
// see Watch.Err).
func (w *watcher) Err() error {
	if p := w.why.Load(); p != nil {
		return *p
	}
	return nil
}

// end ends the watch for the reason why (the first reason wins).
func (w *watcher) end(why error) {
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
	ws       map[*watcher]struct{}
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
		if !w.behind && w.queue.len()+len(evs) > limit && w.queue.len()+count(w.sel, evs) > limit {
			// The batch would take the watch past its limit (a transfer,
			// a burst): it resyncs, and none of the batch is converted or
			// queued.
			w.behind = true
			w.queue.release()
			w.dropQueued()
		}
		if !w.behind {
			for i, e := range evs {
				if !w.sel.Matches(e.Group) {
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
func (w *watcher) hold(e Event, sign int64) {
	switch e.Type {
	case EventJoin:
		w.held.Add(sign)
	case EventLeave:
		w.held.Add(-sign)
	}
}

// offer hands e to C if C has room, without waiting. Under mu, while idle.
func (w *watcher) offer(e Event) bool {
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
func (w *watcher) limit(buffer int) int {
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
func count(s Selector, evs []crdt.Event) int {
	if s.IsAll() {
		return len(evs)
	}
	n := 0
	for i := range evs {
		if s.Matches(evs[i].Group) {
			n++
		}
	}
	return n
}

func (h *hub) remove(w *watcher) {
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
func (w *watcher) dropQueued() {
	w.h.total.Add(-int64(w.queued))
	w.queued = 0
}

func (h *hub) closeAll() {
	h.mu.Lock()
	ws := make([]*watcher, 0, len(h.ws))
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
	if g, ok := sel.GroupName(); ok {
		c := &confirmer{node: node}
		return c.convert(nil, st.Members(g))
	}
	var groups []string
	var ends []int // ends[i]: where groups[i]'s members end in out
	n := 0
	for _, g := range st.Groups() {
		if sel.Matches(g) {
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
	if g, ok := sel.GroupName(); ok {
		if err := validName("group", g); err != nil {
			return nil, err
		}
	}
	h := r.hubs[scope]
	if n := h.watchers.Add(1); n > h.maxWatchers {
		h.watchers.Add(-1)
		return nil, fmt.Errorf("%w: %d open watches (Limits.MaxWatchers)", ErrTooManyWatchers, n-1)
	}
	w := &watcher{h: h, sel: sel, out: make(chan Event, watchChanBuffer), sig: make(chan struct{}, 1), stall: make(chan struct{}, 1), done: make(chan struct{})}
	var snapshot []Member
	var seq uint64
	// Register and snapshot atomically with respect to the scope's events.
	h.scope.Locked(func(st *crdt.State) {
		snapshot = h.snapshot(st, sel)
		w.held.Store(int64(len(snapshot)))
		h.mu.Lock()
		// The changes made while nobody watched were only counted.
		h.seq += h.scope.TakeSkipped()
		seq = h.seq
		if h.ws == nil {
			h.ws = map[*watcher]struct{}{}
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
	return regtype.NewWatch(snapshot, seq, w.out, w), nil
}

// awaitReader waits until the consumer has taken every event in C, so
// that a resync (a snapshot of everything the watch follows) is built only
// for a consumer that reads: one that stalls holds C's events and nothing
// more, however large the scope. It reports false if the watch ended.
func (w *watcher) awaitReader() bool {
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

func (w *watcher) run() {
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
