package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// Workload generates the clients' operations. A process is bound to one
// node for the whole run (Jepsen's client per node), so the operations it
// generates go to that node: a join's owner is the node it went to, and a
// leave goes to the member's owner.
type Workload interface {
	Name() string
	Description() string
	// Groups are the groups the final reads cover.
	Groups() []string
	// Watchers says whether a watcher follows the scope on every node.
	Watchers() bool
	// Setup is what each node does once before the faults start (static
	// members).
	Setup(node string) []history.Op
	// Next is process p's next invocation on node, or false to idle for
	// a moment.
	Next(p int, node string, rng *rand.Rand) (history.Op, bool)
	// Done reports how an invocation of Next or Setup completed.
	Done(inv, comp history.Op)
}

// Options tune the workloads.
type Options struct {
	// Groups is how many groups the members are spread over: many small
	// independent groups, so that races multiply.
	Groups int
	// SessionTTL is the TTL of the session workload's sessions.
	SessionTTL time.Duration
}

// DefaultOptions are the defaults of roster-jepsen.
func DefaultOptions() Options { return Options{Groups: 64, SessionTTL: 3 * time.Second} }

// New returns the named workload.
func New(name string, o Options) (Workload, error) {
	for _, d := range All() {
		if d.Name == name {
			return d.make(o), nil
		}
	}
	return nil, fmt.Errorf("%w: unknown workload %q", ErrFailed, name)
}

// Desc describes a workload for roster-jepsen list.
type Desc struct {
	Name, Description string
	make              func(Options) Workload
}

// All lists the workloads.
func All() []Desc {
	return []Desc{
		{"join-set", "unique members joined on random nodes, reads everywhere (Jepsen set-full)", func(o Options) Workload { return &joinSet{o: o} }},
		{"join-leave", "each member joined once and maybe left once, on its owner", func(o Options) Workload { return newJoinLeave(o, "join-leave", false) }},
		{"rejoin", "a small pool of ids joined and left again and again on their owner (the owner's last operation wins)", func(o Options) Workload { return newRejoin(o) }},
		{"owner-visibility", "static members per owner; reads on every node with the node's view of its peers", func(o Options) Workload { return &ownerVis{o: o} }},
		{"watch", "join-leave with an SSE watcher per node for the whole run, resuming with Last-Event-ID", func(o Options) Workload { return newJoinLeave(o, "watch", true) }},
		{"persistence", "durable and session members on owners that are killed and restarted", func(o Options) Workload { return newPersistence(o) }},
		{"session", "sessions whose TTL runs out (keep-alives that stop), members bound to them", func(o Options) Workload { return newSessions(o) }},
	}
}

func group(o Options, k int) string { return "g" + strconv.Itoa(k%max(o.Groups, 1)) }

func read(o Options, rng *rand.Rand) history.Op {
	return history.Op{F: history.FRead, Value: history.Value{Group: group(o, rng.IntN(max(o.Groups, 1)))}}
}

func allGroups(o Options) []string {
	var gs []string
	for k := range max(o.Groups, 1) {
		gs = append(gs, group(o, k))
	}
	return gs
}

// --- join-set -------------------------------------------------------------------

type joinSet struct {
	o    Options
	mu   sync.Mutex
	next map[int]int
}

func (w *joinSet) Name() string              { return "join-set" }
func (w *joinSet) Description() string       { return All()[0].Description }
func (w *joinSet) Groups() []string          { return allGroups(w.o) }
func (w *joinSet) Watchers() bool            { return false }
func (w *joinSet) Setup(string) []history.Op { return nil }
func (w *joinSet) Done(inv, comp history.Op) {}
func (w *joinSet) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	// A third reads: a read records its whole group, so a long run's
	// history grows with joins times reads (16 groups and half reads held
	// 20 GB of history after a few minutes at 300 operations/s).
	if rng.IntN(3) == 0 {
		return read(w.o, rng), true
	}
	w.mu.Lock()
	if w.next == nil {
		w.next = map[int]int{}
	}
	k := w.next[p]
	w.next[p]++
	w.mu.Unlock()
	id := fmt.Sprintf("s%d-%d", p, k)
	return history.Op{F: history.FJoin, Value: history.Value{Group: group(w.o, rng.IntN(1<<30)), ID: id, Durable: true}}, true
}

// --- join-leave (and watch) -------------------------------------------------------

type joinLeave struct {
	o     Options
	name  string
	watch bool
	mu    sync.Mutex
	next  map[int]int
	// joined: per node, members whose join was acknowledged (or may have
	// happened) and that have not been left yet.
	joined map[string][]history.Member
}

func newJoinLeave(o Options, name string, watch bool) *joinLeave {
	return &joinLeave{o: o, name: name, watch: watch, next: map[int]int{}, joined: map[string][]history.Member{}}
}

func (w *joinLeave) Name() string { return w.name }
func (w *joinLeave) Description() string {
	for _, d := range All() {
		if d.Name == w.name {
			return d.Description
		}
	}
	return ""
}
func (w *joinLeave) Groups() []string          { return allGroups(w.o) }
func (w *joinLeave) Watchers() bool            { return w.watch }
func (w *joinLeave) Setup(string) []history.Op { return nil }
func (w *joinLeave) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch r := rng.IntN(10); {
	case r < 4:
		k := w.next[p]
		w.next[p]++
		id := fmt.Sprintf("m%d-%d", p, k)
		return history.Op{F: history.FJoin, Value: history.Value{Group: group(w.o, rng.IntN(1<<30)), ID: id, Durable: true}}, true
	case r < 7 && len(w.joined[node]) > 0:
		js := w.joined[node]
		i := rng.IntN(len(js))
		m := js[i]
		w.joined[node] = slices.Delete(js, i, i+1) // each member is left at most once
		return history.Op{F: history.FLeave, Value: history.Value{Group: m.Group, ID: m.ID}}, true
	default:
		return read(w.o, rng), true
	}
}

func (w *joinLeave) Done(inv, comp history.Op) {
	if inv.F != history.FJoin || comp.Type == history.Fail {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.joined[inv.Node] = append(w.joined[inv.Node], history.Member{Group: inv.Value.Group, ID: inv.Value.ID, Owner: inv.Node})
}

// --- rejoin --------------------------------------------------------------------------

// rejoin keeps a pool of ids per node and joins and leaves them in turn;
// each join carries a new version in Meta["v"], so the owner's last
// operation can be told apart from an older one.
type rejoin struct {
	o   Options
	mu  sync.Mutex
	in  map[string]bool // node/id -> joined (or maybe)
	ver map[string]int
}

const rejoinPool = 4

func newRejoin(o Options) *rejoin { return &rejoin{o: o, in: map[string]bool{}, ver: map[string]int{}} }

func (w *rejoin) Name() string              { return "rejoin" }
func (w *rejoin) Description() string       { return All()[2].Description }
func (w *rejoin) Groups() []string          { return []string{"rejoin"} }
func (w *rejoin) Watchers() bool            { return false }
func (w *rejoin) Setup(string) []history.Op { return nil }
func (w *rejoin) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	if rng.IntN(3) == 0 {
		return history.Op{F: history.FRead, Value: history.Value{Group: "rejoin"}}, true
	}
	// The id is the process's own (one process per id at a time: the
	// owner's operations on it are sequential).
	id := fmt.Sprintf("r%d-%d", p, rng.IntN(rejoinPool))
	k := node + "/" + id
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.in[k] {
		return history.Op{F: history.FLeave, Value: history.Value{Group: "rejoin", ID: id}}, true
	}
	w.ver[k]++
	return history.Op{F: history.FJoin, Value: history.Value{Group: "rejoin", ID: id, Durable: true, Meta: map[string]string{"v": strconv.Itoa(w.ver[k])}}}, true
}

func (w *rejoin) Done(inv, comp history.Op) {
	k := inv.Node + "/" + inv.Value.ID
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case inv.F == history.FJoin && comp.Type != history.Fail:
		w.in[k] = true
	case inv.F == history.FLeave && comp.Type != history.Fail:
		w.in[k] = false
	}
}

// --- owner-visibility ----------------------------------------------------------------

type ownerVis struct{ o Options }

const ownerStatic = 8

func (w *ownerVis) Name() string        { return "owner-visibility" }
func (w *ownerVis) Description() string { return All()[3].Description }
func (w *ownerVis) Groups() []string    { return []string{"owners"} }
func (w *ownerVis) Watchers() bool      { return false }
func (w *ownerVis) Setup(node string) []history.Op {
	var ops []history.Op
	for i := range ownerStatic {
		ops = append(ops, history.Op{F: history.FJoin, Value: history.Value{Group: "owners", ID: fmt.Sprintf("%s-static-%d", node, i), Durable: true}})
	}
	return ops
}
func (w *ownerVis) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	return history.Op{F: history.FRead, Value: history.Value{Group: "owners"}}, true
}
func (w *ownerVis) Done(inv, comp history.Op) {}

// --- persistence ---------------------------------------------------------------------

// persistence joins durable members and members bound to a session of
// its process (kept alive), leaves some, and reads; the nemesis kills,
// restarts and wipes their owners. After a restart the process's session
// is found again (sessions survive restarts) or, after amnesia, recreated.
type persistence struct {
	*joinLeave
	o        Options
	mu       sync.Mutex
	sessions map[int]string // process -> session
	pending  map[int]bool
	lastKA   map[int]time.Time
}

func newPersistence(o Options) *persistence {
	return &persistence{joinLeave: newJoinLeave(o, "persistence", false), o: o, sessions: map[int]string{}, pending: map[int]bool{}, lastKA: map[int]time.Time{}}
}

func (w *persistence) Name() string        { return "persistence" }
func (w *persistence) Description() string { return All()[5].Description }
func (w *persistence) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	w.mu.Lock()
	s, ok := w.sessions[p]
	pending := w.pending[p]
	due := time.Since(w.lastKA[p]) > w.o.SessionTTL/3
	if !ok && !pending {
		w.pending[p] = true
		w.mu.Unlock()
		return history.Op{F: history.FSessionCreate, Value: history.Value{TTL: (10 * w.o.SessionTTL).String()}}, true
	}
	if ok && due {
		w.lastKA[p] = time.Now()
		w.mu.Unlock()
		return history.Op{F: history.FSessionKeepAlive, Value: history.Value{Session: s}}, true
	}
	w.mu.Unlock()
	op, more := w.joinLeave.Next(p, node, rng)
	if op.F == history.FJoin && ok && rng.IntN(2) == 0 {
		op.Value.Durable, op.Value.Session = false, s
	}
	return op, more
}

func (w *persistence) Done(inv, comp history.Op) {
	w.mu.Lock()
	switch inv.F {
	case history.FSessionCreate:
		delete(w.pending, inv.Process)
		if comp.Type == history.OK {
			w.sessions[inv.Process] = comp.Value.Session
			w.lastKA[inv.Process] = time.Now()
		}
	case history.FSessionKeepAlive:
		if comp.Type == history.Fail {
			delete(w.sessions, inv.Process) // gone (amnesia): make another
		}
	}
	w.mu.Unlock()
	w.joinLeave.Done(inv, comp)
}

// --- session -------------------------------------------------------------------------

// sessions has each process open a short session, join a few members
// bound to it, keep it alive for a while, then stop: the session expires
// (during a partition as often as not) and its members must leave
// everywhere.
type sessions struct {
	o  Options
	mu sync.Mutex
	st map[int]*procSession
}

type procSession struct {
	id        string
	pending   bool
	joined    int
	keepUntil time.Time
	lastKA    time.Time
	k         int
}

func newSessions(o Options) *sessions { return &sessions{o: o, st: map[int]*procSession{}} }

func (w *sessions) Name() string              { return "session" }
func (w *sessions) Description() string       { return All()[6].Description }
func (w *sessions) Groups() []string          { return allGroups(w.o) }
func (w *sessions) Watchers() bool            { return false }
func (w *sessions) Setup(string) []history.Op { return nil }
func (w *sessions) Next(p int, node string, rng *rand.Rand) (history.Op, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st[p]
	now := time.Now()
	switch {
	case s == nil || (s.id == "" && !s.pending) || (s.id != "" && now.After(s.keepUntil.Add(2*w.o.SessionTTL))):
		// A new session once the last one has surely expired.
		w.st[p] = &procSession{pending: true, k: func() int {
			if s != nil {
				return s.k + 1
			}
			return 0
		}()}
		return history.Op{F: history.FSessionCreate, Value: history.Value{TTL: w.o.SessionTTL.String()}}, true
	case s.pending:
		return history.Op{}, false
	case s.joined < 3:
		s.joined++
		id := fmt.Sprintf("x%d-%d-%d", p, s.k, s.joined)
		return history.Op{F: history.FJoin, Value: history.Value{Group: group(w.o, rng.IntN(1<<30)), ID: id, Session: s.id}}, true
	case now.Before(s.keepUntil) && now.Sub(s.lastKA) > w.o.SessionTTL/3:
		s.lastKA = now
		return history.Op{F: history.FSessionKeepAlive, Value: history.Value{Session: s.id}}, true
	default:
		return read(w.o, rng), true
	}
}

func (w *sessions) Done(inv, comp history.Op) {
	if inv.F != history.FSessionCreate {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st[inv.Process]
	if s == nil {
		return
	}
	s.pending = false
	if comp.Type == history.OK {
		s.id = comp.Value.Session
		s.lastKA = time.Now()
		s.keepUntil = time.Now().Add(time.Duration(2+s.k%3) * w.o.SessionTTL)
	}
}
