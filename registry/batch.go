package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/internal/bug"
)

// Apply performs many joins and leaves in one scope at once: each as Join
// (without a context to tie to) or Leave would, answered one by one, but
// with one write to storage for all of them. With Config.DataDir the
// durable and session members of the batch are persisted with one fsync
// (shared, like every durable write, with concurrent writers) before any
// of them is applied, instead of one per member: a gateway that restarts
// re-registers its connections in a few calls.
//
// errs has one entry per op: nil, or why that op alone failed
// (ErrInvalidName, ErrInvalidMeta, ErrNoSession, ErrNotMember,
// ErrNotOwner, a limit such as ErrTooManyMembers, ErrStorage); the other
// ops are applied all the same. err, when set, is why none was
// attempted (ctx done, ErrClosed, an invalid or unknown scope) and errs is
// nil. A failed storage write fails the ops it carried, and changes
// nothing in memory for them.
//
// Ops take effect in order. A member named again later in the same batch
// starts a new round: the ops before it are persisted and applied first
// (one fsync per round), so a batch behaves as its ops one after another.
// The batch holds the locks of all its members while it runs, so
// operations on those members wait for it: keep batches to thousands of
// ops.
func (r *Registry) Apply(ctx context.Context, scope string, ops []Op) (errs []error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := r.check(scope); err != nil {
		return nil, err
	}
	errs = make([]error, len(ops))
	keys := make([]handleKey, len(ops))
	raws := make([]crdt.RawMeta, len(ops))
	var stripes []int
	for i, op := range ops {
		if err := validName("group", op.Group); err != nil {
			errs[i] = err
			continue
		}
		if err := validName("member id", op.ID); err != nil {
			errs[i] = err
			continue
		}
		if !op.Leave {
			raw, err := crdt.EncodeMeta(op.Meta)
			if err != nil {
				errs[i] = fmt.Errorf("%w: %w", ErrInvalidMeta, err)
				continue
			}
			raws[i] = raw
		}
		keys[i] = handleKey{scope, op.Group, op.ID}
		stripes = append(stripes, r.keyStripe(keys[i]))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		r.keyLocks[s].Lock()
	}
	defer func() {
		for _, s := range stripes {
			r.keyLocks[s].Unlock()
		}
	}()

	b := &batch{r: r, ops: ops, keys: keys, raws: raws, errs: errs}
	round := make(map[handleKey]bool)
	start := 0
	for i := range ops {
		if errs[i] != nil {
			continue
		}
		if round[keys[i]] {
			b.run(ctx, start, i)
			clear(round)
			start = i
		}
		round[keys[i]] = true
	}
	b.run(ctx, start, len(ops))
	return errs, nil
}

// batch is the state of one Apply.
type batch struct {
	r    *Registry
	ops  []Op
	keys []handleKey
	raws []crdt.RawMeta
	errs []error
	// Per op of the current round, what the apply phase needs.
	plans []opPlan
}

// opPlan is what a round's first phase decided for one op.
type opPlan struct {
	i        int
	life     Lifetime // a join's lifetime to commit
	prev     prior    // the member before a join (exact only)
	exact    bool     // the census counted the join before it (see join)
	reserved bool     // and reserved a member for it
	write    int      // index of its store write, or -1
}

// run performs ops[from:to], whose keys are distinct and whose key locks
// are held: plan each op, write what must be persisted in one store
// write, then apply each op whose write succeeded.
func (b *batch) run(ctx context.Context, from, to int) {
	r := b.r
	if err := ctx.Err(); err != nil {
		for i := from; i < to; i++ {
			if b.errs[i] == nil {
				b.errs[i] = err
			}
		}
		return
	}
	if r.closed.Load() {
		for i := from; i < to; i++ {
			if b.errs[i] == nil {
				b.errs[i] = ErrClosed
			}
		}
		return
	}
	b.plans = b.plans[:0]
	var writes []memberWrite
	for i := from; i < to; i++ {
		if b.errs[i] != nil {
			continue
		}
		p, w, err := b.plan(i)
		if err != nil {
			b.errs[i] = err
			continue
		}
		p.write = -1
		if w != nil {
			p.write = len(writes)
			writes = append(writes, *w)
		}
		b.plans = append(b.plans, p)
	}
	var werrs []error
	if len(writes) > 0 {
		var err error
		if bug.AckBeforeFsync && !slices.ContainsFunc(writes, func(w memberWrite) bool { return w.del }) {
			// As recordJoin: acknowledged now, written later (or never).
			go func(ws []memberWrite) {
				time.Sleep(2 * time.Second)
				_, _ = r.store.writeMembers(ws)
			}(writes)
			werrs = make([]error, len(writes))
		} else if werrs, err = r.store.writeMembers(writes); err != nil {
			werrs = make([]error, len(writes))
			for j := range werrs {
				werrs[j] = err
			}
		}
	}
	for _, p := range b.plans {
		if p.write >= 0 && werrs[p.write] != nil {
			b.errs[p.i] = werrs[p.write]
			if p.reserved {
				r.census.release(b.keys[p.i].scope, b.keys[p.i].group)
			}
			continue
		}
		b.errs[p.i] = b.apply(p)
	}
}

// plan checks op i against the node's state and returns the store write
// it needs, if any (key lock held). A join near the limits (or into a
// session) reserves its member in the census here, as join does.
func (b *batch) plan(i int) (opPlan, *memberWrite, error) {
	r, op, k := b.r, b.ops[i], b.keys[i]
	p := opPlan{i: i}
	r.sess.mu.Lock()
	_, had := r.sess.owned[k]
	r.sess.mu.Unlock()
	if op.Leave {
		if !r.ownsLocal(k.scope, k.group, k.id) {
			return p, nil, r.notLocal(k)
		}
		if !had {
			return p, nil, nil // in-process: nothing persisted
		}
		return p, &memberWrite{k: k, del: true}, nil
	}
	switch {
	case op.Lifetime.Session != "":
		if _, err := r.GetSession(op.Lifetime.Session); err != nil {
			return p, nil, err
		}
		p.life = Lifetime{Session: op.Lifetime.Session}
	case op.Lifetime.Durable:
		if err := r.checkDurable(true); err != nil {
			return p, nil, err
		}
		p.life = Lifetime{Durable: true}
	}
	p.exact = p.life.Session != "" || r.census.near(&r.limits)
	if p.exact {
		p.prev = r.prior(k)
		if !p.prev.had {
			if err := r.census.reserve(&r.limits, k.scope, k.group); err != nil {
				return p, nil, err
			}
			p.reserved = true
		}
	}
	switch {
	case p.life != (Lifetime{}):
		return p, &memberWrite{k: k, session: p.life.Session, meta: []byte(b.raws[i])}, nil
	case had:
		return p, &memberWrite{k: k, del: true}, nil
	}
	return p, nil, nil
}

// apply applies a planned op whose write (if any) is persisted (key lock
// held); an error means the op changed nothing in memory (and released
// what it reserved).
func (b *batch) apply(p opPlan) error {
	r, op, k := b.r, b.ops[p.i], b.keys[p.i]
	if op.Leave {
		r.forgetLifetime(k)
		return r.applyLeave(k)
	}
	return r.applyJoin(k, b.raws[p.i], p.life, p.prev, p.exact, p.reserved)
}
