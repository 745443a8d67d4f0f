// Package peers is a node's peer table and the decisions taken on it,
// as a pure state machine: which report of a node is news (incarnations
// only move forward; a new one is a restart), whether a node that went
// down left or failed (its leave announcement and memberlist's down event
// within LeaveWindow of each other), when a down node's replicas are
// forgotten (Expire, after the retention period), which addresses the
// rejoin loop calls (Missing) and when (Rejoin: backoff with jitter).
//
// # What it owns
//
// The table (Table: one Peer per name ever reported, or seen only as an
// owner in replicated state), its version (bumped on every report, so a
// driver rebuilds what it derives from the alive peers only after one),
// and the rejoin schedule.
//
// # What it must not touch
//
// No clock (times come in as arguments), no randomness of its own (a
// *rand.Rand comes in), no goroutines, no sockets, no locks: a Table is
// not safe for concurrent use, its driver (gossip) serialises calls. It
// does not know memberlist: a peer's gossip address is a string, and what
// else the driver keeps per peer (memberlist's node, the decoded
// metadata) is the opaque Info, which the table never reads. It does not
// decide what a report means for replicated state (suspend, resume,
// forget): it returns events and the driver applies them. Only the
// standard library is imported.
package peers

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"
)

// State is what a node believes about another node.
type State string

const (
	Alive   State = "alive"
	Dead    State = "dead"    // the failure detector declared it dead
	Left    State = "left"    // it left gracefully
	Unknown State = "unknown" // known only from replicated state, never reported
)

// LeaveWindow is how long a peer's announcement that it is leaving labels
// the down event memberlist reports for it (before or after) a graceful
// leave rather than a failure.
const LeaveWindow = 10 * time.Second

// Peer is what the table holds of one node.
type Peer[I any] struct {
	Name string
	// Inc is the incarnation last reported (or, for Unknown, seen in
	// replicated state).
	Inc uint64
	// Addr is the node's gossip address as last reported; "" for a node
	// never reported (Unknown).
	Addr  string
	State State
	// DownSince is when the node went down or was first seen as an owner
	// only (zero while alive).
	DownSince time.Time
	// Forgotten: its replicas were forgotten after the retention period
	// (Expire); cleared when it is reported alive again.
	Forgotten bool
	// Info is the driver's, set with each report; the table never reads it.
	Info I

	// leavingAt is when the peer announced a graceful leave of
	// incarnation leavingInc. It only labels the down event reported
	// within LeaveWindow as Left rather than Dead (a left peer is not
	// retried by the rejoin loop); it hides nothing by itself.
	leavingAt  time.Time
	leavingInc uint64
}

// Reported reports whether the node was ever reported (it has an
// address), as opposed to seen only as an owner in replicated state.
func (p *Peer[I]) Reported() bool { return p.Addr != "" }

// Event is a report that changed the table.
type Event struct {
	Name string
	Inc  uint64
	// Alive is the node's state after the report; WasAlive before it (a
	// restart, a new incarnation, counts as not alive before).
	Alive, WasAlive bool
	// Restarted: a new incarnation of a node reported before. Left: down
	// after announcing its leave (else a down node failed).
	Restarted, Left bool
}

// Table is a node's peer table. The zero value is not usable: call New.
type Table[I any] struct {
	self  string
	peers map[string]*Peer[I]
	ver   uint64
}

// New returns an empty table for the node named self (never entered).
func New[I any](self string) *Table[I] {
	return &Table[I]{self: self, peers: map[string]*Peer[I]{}}
}

// Version counts the reports applied (the only changes to which peers
// are alive and at which address).
func (t *Table[I]) Version() uint64 { return t.ver }

// Get returns the peer named name, nil if none. The pointer stays the
// table's: read it, do not keep it past the driver's lock.
func (t *Table[I]) Get(name string) *Peer[I] { return t.peers[name] }

// Len returns the number of peers in the table.
func (t *Table[I]) Len() int { return len(t.peers) }

// Each calls fn for every peer, in no particular order.
func (t *Table[I]) Each(fn func(p *Peer[I])) {
	for _, p := range t.peers {
		fn(p)
	}
}

// Report applies a report of node name (alive or down) at incarnation inc
// and address addr, received at now, and returns the event it makes, or
// false if it is not news: a report of an older incarnation, a down report
// of a node already left, or one about self.
func (t *Table[I]) Report(name string, inc uint64, addr string, info I, alive bool, now time.Time) (Event, bool) {
	if name == t.self {
		return Event{}, false
	}
	t.ver++
	p := t.peers[name]
	if p == nil {
		p = &Peer[I]{Name: name}
		t.peers[name] = p
	}
	if inc < p.Inc {
		return Event{}, false // an old incarnation's news
	}
	// A new incarnation is a new peer coming up, even if the old one was
	// never reported down (a quick restart).
	restarted := p.Inc != 0 && inc > p.Inc
	p.Inc, p.Addr, p.Info = inc, addr, info
	e := Event{Name: name, Inc: inc, Alive: alive, WasAlive: p.State == Alive && !restarted, Restarted: restarted}
	switch {
	case alive:
		p.State, p.DownSince, p.Forgotten = Alive, time.Time{}, false
	case p.State == Left:
		return Event{}, false // already down
	case p.leavingInc == inc && now.Sub(p.leavingAt) < LeaveWindow:
		// A down report does not say whether a node left or died; the
		// peer said it was leaving just before.
		p.State, p.DownSince = Left, now
		e.Left = true
	default:
		p.State, p.DownSince = Dead, now
	}
	return e, true
}

// Leaving notes node name's announcement, at now, that incarnation inc is
// leaving, and reports whether the table took it: only for a node
// reported at that incarnation (the driver checks the sender's address
// first: anyone can claim a name). A down event reported within
// LeaveWindow before it is relabelled Left (relabelled true).
func (t *Table[I]) Leaving(name string, inc uint64, now time.Time) (taken, relabelled bool) {
	p := t.peers[name]
	if p == nil || !p.Reported() || p.Inc != inc || name == t.self {
		return false, false
	}
	p.leavingAt, p.leavingInc = now, inc
	if p.State == Dead && now.Sub(p.DownSince) < LeaveWindow {
		p.State = Left // the down event came first
		return true, true
	}
	return true, false
}

// Owner notes a replica's owner seen in replicated state at now, and
// returns its peer: a name never reported is entered as Unknown (down
// since now, so that Expire forgets it after the retention period unless
// it is reported alive meanwhile).
func (t *Table[I]) Owner(name string, inc uint64, now time.Time) *Peer[I] {
	p := t.peers[name]
	if p == nil && name != t.self {
		p = &Peer[I]{Name: name, Inc: inc, State: Unknown, DownSince: now}
		t.peers[name] = p
	}
	return p
}

// Visible reports whether name's replica of incarnation inc is shown:
// its node is alive at that incarnation.
func (t *Table[I]) Visible(name string, inc uint64) bool {
	p := t.peers[name]
	return p != nil && p.State == Alive && p.Inc == inc
}

// Replica names one incarnation of a node.
type Replica struct {
	Name string
	Inc  uint64
}

// Expire marks the nodes down for retention or longer at now as
// forgotten and returns them, sorted by name: the driver forgets their
// replicas. A node is forgotten once per time down.
func (t *Table[I]) Expire(now time.Time, retention time.Duration) []Replica {
	var out []Replica
	for _, p := range t.peers {
		if p.State != Alive && !p.Forgotten && !p.DownSince.IsZero() && now.Sub(p.DownSince) >= retention {
			p.Forgotten = true
			out = append(out, Replica{p.Name, p.Inc})
		}
	}
	slices.SortFunc(out, func(a, b Replica) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Missing lists what the rejoin loop calls, sorted and without repeats:
// the seeds (addresses or names) no alive peer answers to, and the
// address of every node ever reported that is not alive, except nodes
// that left gracefully (a node that leaves is not retried forever; when
// it comes back it rejoins through its own seeds and peers).
func (t *Table[I]) Missing(seeds []string) []string {
	// One pass over the peers, with no map of them: this runs every
	// second on every node, and building one took 23% of the CPU of 500
	// nodes in one process (roster-bench -run=scale).
	seedAlive := make(map[string]bool, len(seeds))
	for _, s := range seeds {
		seedAlive[s] = false
	}
	var out []string
	for _, p := range t.peers {
		if !p.Reported() {
			continue
		}
		if p.State == Alive {
			for _, k := range [2]string{p.Addr, p.Name} {
				if _, ok := seedAlive[k]; ok {
					seedAlive[k] = true
				}
			}
			continue
		}
		if p.State != Left {
			out = append(out, p.Addr)
		}
	}
	for _, s := range seeds {
		if !seedAlive[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Addrs returns the gossip address of every node reported, alive or
// down but not left, sorted: what a restart needs to rejoin without
// seeds.
func (t *Table[I]) Addrs() []string {
	var out []string
	for _, p := range t.peers {
		if p.Reported() && p.State != Left {
			out = append(out, p.Addr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Rejoin schedules the rejoin loop: an attempt (joining the Missing
// addresses) is due at Due; when nothing is missing the next check comes
// after about Base, and after a failed attempt the wait doubles up to Max.
// Every wait but the first is jittered to between half and one and a half
// times its length, so that nodes cut off together do not all call at
// once.
type Rejoin struct {
	base, max time.Duration
	delay     time.Duration
	due       time.Time
	running   bool
}

// NewRejoin returns a schedule whose first check is due base after now.
func NewRejoin(base, max time.Duration, now time.Time) *Rejoin {
	return &Rejoin{base: base, max: max, delay: base, due: now.Add(base)}
}

// Due returns when the next check is due; zero while an attempt runs.
func (r *Rejoin) Due() time.Time {
	if r.running {
		return time.Time{}
	}
	return r.due
}

// Check is the check due at now: with nothing missing it schedules the
// next one and returns false; else an attempt starts (return true) and
// nothing more is due until Done.
func (r *Rejoin) Check(now time.Time, missing int, rng *rand.Rand) bool {
	if r.running {
		return false
	}
	if missing == 0 {
		r.delay = r.base
		r.due = now.Add(jitter(r.delay, rng))
		return false
	}
	r.running = true
	return true
}

// Done ends the attempt at now: joined resets the wait to Base, a failure
// doubles it (up to Max).
func (r *Rejoin) Done(now time.Time, joined bool, rng *rand.Rand) {
	r.running = false
	if joined {
		r.delay = r.base
	} else {
		r.delay = min(2*r.delay, r.max)
	}
	r.due = now.Add(jitter(r.delay, rng))
}

func jitter(d time.Duration, rng *rand.Rand) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rng.Int64N(int64(d)))
}
