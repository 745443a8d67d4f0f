// Package pace decides when a node's anti-entropy exchanges go out, as a
// pure state machine: at each periodic round, per scope, whether to send
// anything (not while a transfer flows in or a repair is awaited, nor for
// a bounded number of rounds while received deltas queue for merging), to
// which peer (at random, from the rng given), and what (the 15-byte root
// of the range digest when both sides can use it, else the full digest);
// and, outside the rounds, whether an exchange may start now: a greeting
// to a peer coming up, a node catching up answering a digest, a digest
// to an owner for a gap in its operations, a repair that would repeat
// one just sent.
//
// # What it owns
//
// The rate limits and their memory: the last out-of-round digest per
// scope (catching up), the last greeting per (scope, peer), the last gap
// digest per (scope, owner), the last repair per (scope, peer) with the
// hash of the digest it answered, and the rounds skipped in a row per
// scope. The (scope, peer) and (scope, owner) maps are bounded
// (MaxTracked; past it they are cleared, which only lets one extra
// message through).
//
// # What it must not touch
//
// No clock (times come in as arguments), no randomness of its own, no
// goroutines, no sockets, no locks (a Pacer is not safe for concurrent
// use: its driver, gossip, serialises calls), and no crdt: the facts it
// decides on (a transfer flowing in, deltas queued, peers, caught up,
// replicas) are given, and what a repair carries is the driver's (crdt's
// Diff). Only the standard library is imported.
package pace

import (
	"math/rand/v2"
	"time"
)

// MaxBusy bounds how many rounds in a row a scope skips while deltas are
// queued for merging: a digest taken then shows them as missing and asks
// for them again, but a lost packet under a steady stream must still be
// repaired.
const MaxBusy = 4

// DefaultRangeRootMin is gossip's RangeRootMin unless configured: below
// it a full digest (about 19 bytes a replica) costs little more than a
// root and, when the roots differ, the 2.3 KB of bucket sums it brings.
const DefaultRangeRootMin = 64

// MaxTracked bounds the per-(scope, peer) and per-(scope, owner) maps.
const MaxTracked = 4096

// Config is a Pacer's configuration.
type Config struct {
	// Interval is the anti-entropy interval: the period of the rounds,
	// and the least time between two out-of-round exchanges of one kind
	// and key.
	Interval time.Duration
	// RangeRootMin is the number of replicas from which a caught-up
	// node's round sends the root of its range digest instead of its
	// digest; negative: never.
	RangeRootMin int
}

// Facts are what the driver knows of one scope at a round.
type Facts struct {
	// Transferring: an authoritative transfer is flowing in, or a peer's
	// answer showed a repair is on its way: a digest now would fetch the
	// same state again.
	Transferring bool
	// Merging: received deltas are queued for merging.
	Merging bool
	// Peers is the number of alive peers serving the scope.
	Peers int
	// CaughtUp: this node completed one exchange for the scope.
	CaughtUp bool
	// Unsynced: this node hides cached replicas until their owners'
	// digests show how far they are (they need full digests).
	Unsynced bool
	// Replicas is the number of replicas in the range digest. Taking it
	// costs a pass over the state: the driver takes it only when
	// RootCandidate says a root could be sent (else it is ignored).
	Replicas int
}

// Action is what a round does for one scope.
type Action int

const (
	// Wait: a transfer or repair is on its way, or (not caught up) this
	// interval's exchange already went out.
	Wait Action = iota
	// Busy: deltas are queued for merging; skipped (at most MaxBusy
	// rounds in a row).
	Busy
	// Alone: no peer serves the scope; the node holds it alone and greets
	// the peers that come up.
	Alone
	// Digest: send the full digest to Peer, asking for the peer's.
	Digest
	// Root: send the range digest's root to Peer.
	Root
)

func (a Action) String() string {
	return [...]string{"wait", "busy", "alone", "digest", "root"}[a]
}

// Decision is a round's decision for one scope: Peer indexes the
// driver's list of the scope's alive peers (Digest and Root only).
type Decision struct {
	Action Action
	Peer   int
}

type served struct {
	sum uint64
	at  time.Time
}

// Pacer is one node's anti-entropy pacing, for all its scopes.
type Pacer struct {
	cfg        Config
	busy       map[string]int
	catchUp    map[string]time.Time
	greeted    map[[2]string]time.Time
	askedOwner map[[2]string]time.Time
	served     map[[2]string]served
}

// New returns a pacer for cfg. Its maps are made on first use, so that a
// simulator's thousands of pacers cost little.
func New(cfg Config) *Pacer { return &Pacer{cfg: cfg} }

// Round decides what the periodic round at now does for scope.
func (p *Pacer) Round(now time.Time, scope string, f Facts, rng *rand.Rand) Decision {
	if f.Transferring {
		return Decision{Action: Wait}
	}
	if f.Merging && p.busy[scope] < MaxBusy {
		if p.busy == nil {
			p.busy = map[string]int{}
		}
		p.busy[scope]++
		return Decision{Action: Busy}
	}
	delete(p.busy, scope)
	if f.Peers == 0 {
		return Decision{Action: Alone}
	}
	if !f.CaughtUp && !onceEvery(&p.catchUp, scope, now, p.cfg.Interval) {
		// Not caught up yet, and this interval's exchange is under way
		// (a greeting answered): a second digest now would fetch the
		// scope twice, from two peers.
		return Decision{Action: Wait}
	}
	d := Decision{Action: Digest, Peer: rng.IntN(f.Peers)}
	if p.RootFits(f) {
		d.Action = Root
	}
	return d
}

// RootFits reports whether the root of the range digest can stand for
// the digest: RootCandidate, and the scope has RangeRootMin replicas or
// more.
func (p *Pacer) RootFits(f Facts) bool {
	return p.RootCandidate(f) && f.Replicas >= p.cfg.RangeRootMin
}

// RootCandidate reports whether a root could stand for the digest,
// whatever the replica count: roots are on, the node is caught up (a node
// catching up needs everything) and hides no cached replica (it needs the
// owners' own digests to show what it hides). It reads only the
// configuration: safe to call without the driver's lock.
func (p *Pacer) RootCandidate(f Facts) bool {
	return p.cfg.RangeRootMin >= 0 && f.CaughtUp && !f.Unsynced
}

// MayCatchUp decides whether the node sends its digest of scope outside
// the periodic round (to a peer coming up, or in reply to a peer's digest)
// at now: not while a transfer flows in, and at most once per interval.
// Every peer that receives the digest answers with all the node lacks,
// so sending it to the four nodes that came up together would fetch a
// newcomer's scope four times.
func (p *Pacer) MayCatchUp(now time.Time, scope string, transferring bool) bool {
	return !transferring && onceEvery(&p.catchUp, scope, now, p.cfg.Interval)
}

// MayReply decides whether to answer a peer's digest of scope with ours
// (which makes the peer send what we lack): a node not caught up answers
// as MayCatchUp allows, so it fetches the scope from one peer rather than
// all; afterwards it answers unless a transfer is coming or deltas are
// queued (its digest would ask for them again; the peer's own rounds
// complete the exchange later).
func (p *Pacer) MayReply(now time.Time, scope string, f Facts) bool {
	if !f.CaughtUp {
		return p.MayCatchUp(now, scope, f.Transferring)
	}
	return !f.Transferring && !f.Merging
}

// MayGreet decides whether the node greets peer, just seen up, with its
// digest of scope: once per interval per peer, so a flapping peer is not
// greeted at every flap.
func (p *Pacer) MayGreet(now time.Time, scope, peer string) bool {
	return onceEveryBounded(&p.greeted, [2]string{scope, peer}, now, p.cfg.Interval)
}

// MayAskOwner decides whether the node sends its digest of scope to owner
// for a gap in owner's operations: once per interval per owner, so that a
// gap the owner cannot fill (another incarnation came) costs one digest a
// round.
func (p *Pacer) MayAskOwner(now time.Time, scope, owner string) bool {
	return onceEveryBounded(&p.askedOwner, [2]string{scope, owner}, now, p.cfg.Interval)
}

// RepeatRepair reports whether the digest with hash sum from peer in
// scope was answered with a repair less than half an interval before now;
// if not, it records this one: the same digest arriving again while that
// repair is still in flight (peer-up exchanges from both sides and the
// rounds often coincide) is not answered with the same bytes twice. A
// repair that was lost is resent by the next round. Keyed by peers the driver counts alive, so bounded by them;
// Forget drops a peer's.
func (p *Pacer) RepeatRepair(now time.Time, scope, peer string, sum uint64) bool {
	k := [2]string{scope, peer}
	if last, ok := p.served[k]; ok && last.sum == sum && now.Sub(last.at) < p.cfg.Interval/2 {
		return true
	}
	if p.served == nil {
		p.served = map[[2]string]served{}
	}
	p.served[k] = served{sum, now}
	return false
}

// Forget drops what the pacer keeps for peer in scope (it went away).
func (p *Pacer) Forget(scope, peer string) {
	k := [2]string{scope, peer}
	delete(p.served, k)
	delete(p.greeted, k)
	delete(p.askedOwner, k)
}

// onceEvery reports whether k was last let through at least every before
// now, and if so records now as its time (making the map if need be).
func onceEvery[K comparable](last *map[K]time.Time, k K, now time.Time, every time.Duration) bool {
	if t, ok := (*last)[k]; ok && now.Sub(t) < every {
		return false
	}
	if *last == nil {
		*last = map[K]time.Time{}
	}
	(*last)[k] = now
	return true
}

func onceEveryBounded(last *map[[2]string]time.Time, k [2]string, now time.Time, every time.Duration) bool {
	if len(*last) >= MaxTracked {
		clear(*last) // forgetting only lets one extra message through
	}
	return onceEvery(last, k, now, every)
}
