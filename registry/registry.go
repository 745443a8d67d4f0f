package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/registry/regtype"
	"github.com/roster-io/roster/storage"
)

// withDefaults validates l and fills its zero fields with the defaults.
func withDefaults(l Limits) (Limits, error) {
	d := DefaultLimits()
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxSessions", &l.MaxSessions, d.MaxSessions},
		{"MaxMembers", &l.MaxMembers, d.MaxMembers},
		{"MaxGroups", &l.MaxGroups, d.MaxGroups},
		{"MaxWatchers", &l.MaxWatchers, d.MaxWatchers},
		{"WatchBacklogBytes", &l.WatchBacklogBytes, d.WatchBacklogBytes},
		{"WatchBacklogTotalBytes", &l.WatchBacklogTotalBytes, d.WatchBacklogTotalBytes},
	} {
		switch {
		case *f.v < 0:
			return l, fmt.Errorf("%w: Limits.%s %d must not be negative", ErrConfig, f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return l, nil
}

// census counts what this node owns, for Limits: its members, and its
// members per group. Every local join that adds a member and every local
// leave that removes one goes through it (keyLock held for the member).
type census struct {
	mu      sync.Mutex
	members int
	groups  map[scopeGroup]int // members this node owns, per group
}

type scopeGroup struct{ scope, group string }

// reserve counts a new member of (scope, group), or fails with a limit
// error and counts nothing.
func (c *census) reserve(l *Limits, scope, group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members >= l.MaxMembers {
		return fmt.Errorf("%w: this node owns %d members (Limits.MaxMembers)", ErrTooManyMembers, c.members)
	}
	k := scopeGroup{scope, group}
	n := c.groups[k]
	if n == 0 && len(c.groups) >= l.MaxGroups {
		return fmt.Errorf("%w: this node has members in %d groups (Limits.MaxGroups)", ErrTooManyGroups, len(c.groups))
	}
	c.members++
	c.groups[k] = n + 1
	return nil
}

// nearMargin is how close to a limit the census counts joins exactly
// (checking the member's state before it joins): far from the limits a
// join is counted after it, so concurrent joins can pass a limit by at
// most their number, and near them (sequential joins) not at all.
const nearMargin = 1024

// near reports whether the counts are within nearMargin of a limit.
func (c *census) near(l *Limits) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members+nearMargin >= l.MaxMembers || len(c.groups)+nearMargin >= l.MaxGroups
}

// add counts a new member of (scope, group), limits or not (it joined).
func (c *census) add(scope, group string) {
	c.mu.Lock()
	c.members++
	c.groups[scopeGroup{scope, group}]++
	c.mu.Unlock()
}

// release uncounts a member of (scope, group) that left.
func (c *census) release(scope, group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := scopeGroup{scope, group}
	if n := c.groups[k]; n > 1 {
		c.groups[k] = n - 1
	} else {
		delete(c.groups, k)
	}
	if c.members > 0 {
		c.members--
	}
}

// recount counts the members this node owns from its state (at Open, after
// the persisted ones were restored).
func (r *Registry) recount() {
	c := &r.census
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members, c.groups = 0, map[scopeGroup]int{}
	for _, scope := range r.node.Scopes() {
		sc, _ := r.node.Scope(scope)
		sc.Read(func(st *crdt.State) {
			for _, g := range st.Groups() {
				if n := len(st.LocalMembers(g)); n > 0 {
					c.groups[scopeGroup{scope, g}] = n
					c.members += n
				}
			}
		})
	}
}

// Registry is one roster node, embedded in a Go process.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	node   *gossip.Node
	hubs   map[string]*hub
	closed atomic.Bool

	// handles holds the handles of members tied to a context (JoinWhile),
	// whose context watchers a Leave must stop.
	handlesMu sync.Mutex
	handles   map[handleKey]*tied

	keyLocks [256]sync.Mutex
	sess     sessions
	store    store
	limits   Limits // Config.Limits with defaults
	census   census
	watchers atomic.Int64 // open watches, for Limits.MaxWatchers
	backlog  atomic.Int64 // bytes queued by all watches, for Limits.WatchBacklogTotalBytes

	disk *storage.Store // nil without DataDir
	// reconciling is set from a failed store's recovery until it has been
	// reconciled with this node's members (StorageHealth still fails).
	reconciling atomic.Bool
	// savedVersion: per scope, gossip.Node.RemoteVersion at the last
	// cache save (used by the save loop, then by Close after it stops).
	savedVersion map[string]uint64
	savedPeers   []string
	saveStop     chan struct{}
	saveDone     chan struct{}
}

type handleKey struct{ scope, group, id string }

// Open starts a node and joins the cluster through cfg.Seeds (retried in
// the background until it succeeds). ctx bounds nothing that outlives Open.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	limits, err := withDefaults(cfg.Limits)
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r := &Registry{cfg: cfg, log: lg.With("component", "registry"), hubs: map[string]*hub{}, handles: map[handleKey]*tied{}, limits: limits}
	r.census.groups = map[scopeGroup]int{}
	r.sess.byID = map[string]*session{}
	r.sess.owned = map[handleKey]Lifetime{}
	r.savedVersion = map[string]uint64{}
	r.store = memStore{}
	for _, s := range cfg.Scopes {
		r.hubs[s] = &hub{name: s, buffer: cfg.WatchBuffer, backlog: limits.WatchBacklogBytes, watchers: &r.watchers, maxWatchers: int64(limits.MaxWatchers),
			total: &r.backlog, maxTotal: int64(limits.WatchBacklogTotalBytes)}
	}
	if cfg.DataDir != "" {
		st, err := openStore(&r.cfg)
		if err != nil {
			return nil, err
		}
		r.disk, r.store = st, diskStore{st}
		r.log.Info("opened data directory", "dir", st.Dir(), "incarnation", r.cfg.Incarnation, "seeds", r.cfg.Seeds)
	}
	var opts []gossip.Option
	if r.disk != nil {
		warm, err := loadCache(r.disk, r.cfg.Scopes)
		if err != nil {
			_ = r.disk.Close()
			return nil, err
		}
		opts = append(opts, gossip.Preload(warm, r.cfg.ConfirmGrace))
	}
	gcfg, err := r.cfg.gossipConfig()
	if err != nil {
		if r.disk != nil {
			_ = r.disk.Close()
		}
		return nil, err
	}
	node, err := gossip.New(gcfg, func(scope string, evs []crdt.Event) {
		if h := r.hubs[scope]; h != nil {
			h.publish(evs)
		}
	}, opts...)
	if err != nil {
		if r.disk != nil {
			_ = r.disk.Close()
		}
		switch {
		case errors.Is(err, gossip.ErrConfig):
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		case errors.Is(err, gossip.ErrMessage):
			return nil, fmt.Errorf("%w: cached state in %s: %w", ErrStorage, r.cfg.DataDir, err)
		}
		return nil, err
	}
	r.node = node
	for s, h := range r.hubs {
		h.scope, _ = node.Scope(s)
		h.node.Store(node)
		h.scope.SetQuiet(true) // no watch yet
	}
	if r.disk != nil {
		if err := r.restore(r.disk); err != nil {
			node.Crash()
			_ = r.disk.Close()
			return nil, err
		}
		r.recount()
		r.saveStop, r.saveDone = make(chan struct{}), make(chan struct{})
		go r.saveLoop(r.disk, r.saveStop, r.saveDone)
	}
	return r, nil
}

// Close leaves the cluster gracefully, so peers hide this node's members at
// once, ends every watch and releases resources. In-process members are
// gone with the process; they are not left one by one.
func (r *Registry) Close(ctx context.Context) error {
	if r.closed.Swap(true) {
		return nil
	}
	r.sess.mu.Lock()
	for _, s := range r.sess.byID {
		s.timer.Stop()
	}
	r.sess.mu.Unlock()
	// Contexts tied to members are no longer watched: the members leave
	// with the node.
	r.handlesMu.Lock()
	handles := r.handles
	r.handles = map[handleKey]*tied{}
	r.handlesMu.Unlock()
	for _, t := range handles {
		t.stopAll()
	}
	for _, h := range r.hubs {
		h.closeAll()
	}
	var saveErr error
	if r.disk != nil {
		close(r.saveStop)
		<-r.saveDone
		saveErr = r.save(r.disk, true)
	}
	err := r.node.Close(ctx)
	if r.disk != nil {
		err = errors.Join(err, saveErr, storageErr(r.disk.Close()))
	}
	return err
}

// Name returns this node's name; Incarnation its current run.
func (r *Registry) Name() string        { return r.node.Self().Name }
func (r *Registry) Incarnation() uint64 { return r.node.Self().Incarnation }

// Addr is the gossip address other nodes can use as a seed.
func (r *Registry) Addr() string { return r.node.Addr() }

// Scopes lists the scopes this node serves.
func (r *Registry) Scopes() []string { return r.node.Scopes() }

// Ready reports whether the node has joined its cluster (when it has seeds)
// and completed a first anti-entropy exchange for every scope with peers;
// see gossip.Node.Ready. Reads are served before that, possibly stale.
func (r *Registry) Ready() bool { return !r.closed.Load() && r.node.Ready() }

// Persistent reports whether this node keeps what must outlive the process
// (Config.DataDir is set): only then can it hold durable members.
func (r *Registry) Persistent() bool { return r.disk != nil }

// readyPoll is how often WaitReady looks at Ready.
const readyPoll = 10 * time.Millisecond

// WaitReady waits until Ready reports true, and returns nil then. It
// returns ctx's error, wrapped, if ctx ends first, and ErrClosed if the
// registry is (or gets) closed: a closed registry is never ready.
func (r *Registry) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		if r.closed.Load() {
			return ErrClosed
		}
		if r.node.Ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry: waiting for the node to be ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Stats returns the gossip layer's counters.
func (r *Registry) Stats() Stats { return statsOf(r.node.Stats()) }

// Nodes returns the cluster as this node sees it (itself included): name,
// incarnation, address, state (alive, dead, left, unknown) and scopes.
func (r *Registry) Nodes() []NodeInfo {
	ns := r.node.Nodes()
	out := make([]NodeInfo, len(ns))
	for i, n := range ns {
		out[i] = nodeInfo(n)
	}
	return out
}

func (r *Registry) check(scope string) (*gossip.Scope, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if err := validName("scope", scope); err != nil {
		return nil, err
	}
	sc, ok := r.node.Scope(scope)
	if !ok {
		return nil, fmt.Errorf("%w: %q (this node serves %v)", ErrUnknownScope, scope, r.node.Scopes())
	}
	return sc, nil
}

func (r *Registry) checkMember(scope, group, id string) (*gossip.Scope, error) {
	sc, err := r.check(scope)
	if err != nil {
		return nil, err
	}
	if err := validName("group", group); err != nil {
		return nil, err
	}
	if err := validName("member id", id); err != nil {
		return nil, err
	}
	return sc, nil
}

// Join adds the member (group, id) owned by this node, or updates its
// metadata if it is already a member here. It is acknowledged once applied
// locally (and, for a durable or session member with Config.DataDir set,
// persisted with fsync first), and reaches every reachable node serving the
// scope shortly after. Options choose how long the member lives (see
// JoinOption); without any it lives until Leave, Close or the end of the
// process. Joining again replaces both metadata and lifetime.
func (r *Registry) Join(ctx context.Context, scope, group, id string, meta Meta, opts ...JoinOption) (*Membership, error) {
	return r.join(ctx, scope, group, id, meta, nil, opts...)
}

// join is Join, and JoinWhile when tie is not nil.
func (r *Registry) join(ctx context.Context, scope, group, id string, meta Meta, tie context.Context, opts ...JoinOption) (*Membership, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := r.checkMember(scope, group, id); err != nil {
		return nil, err
	}
	raw, err := crdt.EncodeMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	var o Lifetime
	if len(opts) > 0 {
		o = regtype.LifetimeOf(opts...) // a plain join allocates no options
		if err := r.checkDurable(o.Durable && o.Session == ""); err != nil {
			return nil, err
		}
	}
	k := handleKey{scope, group, id}
	kl := r.keyLock(k)
	kl.Lock()
	defer kl.Unlock()
	// The member as it was, for undoJoin (a session join may be undone)
	// and, near the limits, for the limits (an update of a member is
	// always allowed). Far from them, a join is counted once it is known
	// to be new: a second look at the state for every join cost the
	// local join rate about 40% (roster-bench -run=throughput, 10k members
	// in one group, local only: median 1.67M/s -> 0.97M/s).
	var prev prior
	exact := o.Session != "" || r.census.near(&r.limits)
	if exact {
		prev = r.prior(k)
		if !prev.had {
			if err := r.census.reserve(&r.limits, scope, group); err != nil {
				return nil, err
			}
		}
	}
	life, err := r.recordJoin(k, o, raw)
	if err != nil {
		if exact && !prev.had {
			r.census.release(scope, group)
		}
		return nil, err
	}
	if err := r.applyJoin(k, raw, life, prev, exact, exact && !prev.had); err != nil {
		return nil, err
	}
	if tie != nil {
		return r.tie(k, tie).pub, nil
	}
	// Only handles tied to a context are kept: a map entry per member
	// would cost every join an insert, and the heap a copy of every
	// member's key.
	r.handlesMu.Lock()
	t := r.handles[k]
	r.handlesMu.Unlock()
	if t != nil {
		return t.pub, nil
	}
	return regtype.NewMembership(r, scope, group, id), nil
}

// applyJoin adds k, a member whose join is recorded (lifetime life), to
// the replicated state, counts it, and commits its lifetime; prev is the
// member before (for undoJoin), exact whether the census counted it
// before, reserved whether it reserved a member for it, released here if
// the join fails (key lock held). On an error nothing changed in memory.
func (r *Registry) applyJoin(k handleKey, raw crdt.RawMeta, life Lifetime, prev prior, exact, reserved bool) error {
	added, err := r.node.JoinAdded(k.scope, k.group, k.id, raw)
	if err != nil {
		if reserved {
			r.census.release(k.scope, k.group)
		}
		return r.mapErr(err)
	}
	if !exact && added {
		r.census.add(k.scope, k.group)
	}
	if err := r.commitJoin(k, life); err != nil {
		// The session ended while the join was persisted: undo it
		// (which uncounts a member it removes).
		r.undoJoin(k, prev)
		return err
	}
	return nil
}

// prior is a local member as it was before a join: whether it existed,
// and its metadata.
type prior struct {
	had  bool
	meta crdt.RawMeta
}

// prior returns the local member k as it is now (keyLock held).
func (r *Registry) prior(k handleKey) prior {
	var b prior
	if sc, ok := r.node.Scope(k.scope); ok {
		sc.Read(func(st *crdt.State) { b.meta, b.had = st.LocalMeta(k.group, k.id) })
	}
	return b
}

// undoJoin puts member k back as it was before a join whose session ended
// while the join was persisted (keyLock held): absent if it was new, else
// with its metadata, ties and lifetime as before (commitJoin changed no
// lifetime). The join is refused, so it must not have changed anything,
// least of all removed a member that was there before it.
func (r *Registry) undoJoin(k handleKey, prev prior) {
	var errs []error
	if !prev.had {
		err := r.node.Leave(k.scope, k.group, k.id)
		if err == nil {
			r.census.release(k.scope, k.group)
		}
		errs = append(errs, r.store.deleteMember(k), err)
		r.dropHandle(k)
	} else {
		r.sess.mu.Lock()
		life := r.sess.owned[k]
		r.sess.mu.Unlock()
		if life == (Lifetime{}) {
			errs = append(errs, r.store.deleteMember(k))
		} else {
			errs = append(errs, r.store.putMember(k, life.Session, []byte(prev.meta)))
		}
		errs = append(errs, r.node.Join(k.scope, k.group, k.id, prev.meta))
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Warn("undoing a join whose session ended failed", "scope", k.scope, "group", k.group, "id", k.id, "err", err)
	}
}

// JoinWhile is Join for a member tied to ctx: it leaves when ctx is done
// (e.g. the connection it stands for closes). The Membership can also be
// left earlier, which unties it. A member tied again (JoinWhile with
// another context) leaves when the first of its contexts ends; joining it
// again with Join, or with JoinWhile and the same context (to update its
// metadata), keeps its ties and adds none.
func (r *Registry) JoinWhile(ctx context.Context, scope, group, id string, meta Meta) (*Membership, error) {
	return r.join(ctx, scope, group, id, meta, ctx)
}

// leaveTied leaves t's member when a context it is tied to ends, unless t
// is no longer the key's registered handle: the member was left meanwhile
// (which stops the ties, but not one already firing), and maybe joined
// again, which this context must not undo.
func (r *Registry) leaveTied(t *tied) {
	k := t.key
	kl := r.keyLock(k)
	kl.Lock()
	defer kl.Unlock()
	r.handlesMu.Lock()
	current := r.handles[k] == t
	r.handlesMu.Unlock()
	if !current {
		return
	}
	sc, err := r.check(k.scope)
	if err == nil {
		err = r.leaveLocked(sc, k)
	}
	if err != nil && !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrClosed) {
		r.log.Warn("leave on context end failed", "scope", k.scope, "group", k.group, "id", k.id, "err", err)
	}
}

// tie makes the member leave when ctx is done. The key's handle is
// registered, so that leaving the member any other way stops watching ctx
// (dropHandle). keyLock is held, so no Leave comes in between.
func (r *Registry) tie(k handleKey, ctx context.Context) *tied {
	r.handlesMu.Lock()
	t := r.handles[k]
	if t == nil {
		t = &tied{pub: regtype.NewMembership(r, k.scope, k.group, k.id), key: k}
		r.handles[k] = t
	}
	r.handlesMu.Unlock()
	done := ctx.Done()
	if done == nil {
		return t // a context that never ends: nothing to watch
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.ties {
		if c.done == done {
			// Already tied to it (a metadata update through JoinWhile
			// with the connection's context): one watcher is enough.
			return t
		}
	}
	stop := context.AfterFunc(ctx, func() { r.leaveTied(t) })
	t.ties = append(t.ties, tie{done, stop})
	return t
}

// Leave removes the member (group, id) owned by this node. It fails with
// ErrNotOwner if only other nodes own such a member, ErrNotMember if nobody
// does; either way nothing changes. For a durable or session member the
// removal is persisted before it is applied.
func (r *Registry) Leave(ctx context.Context, scope, group, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sc, err := r.checkMember(scope, group, id)
	if err != nil {
		return err
	}
	k := handleKey{scope, group, id}
	kl := r.keyLock(k)
	kl.Lock()
	defer kl.Unlock()
	return r.leaveLocked(sc, k)
}

// Owners lists the nodes that hold a member (group, id) of scope, sorted,
// whether this node can reach them or not (so also an owner that is down,
// whose member Members hides), itself included when it owns one. The
// same id joined on two nodes is two members: two owners. A server uses
// it to send a leave to the owner (Leave answers ErrNotOwner elsewhere).
func (r *Registry) Owners(scope, group, id string) ([]string, error) {
	sc, err := r.checkMember(scope, group, id)
	if err != nil {
		return nil, err
	}
	var out []string
	sc.Read(func(st *crdt.State) {
		for _, h := range st.Holders(group, id) {
			out = append(out, h.Name)
		}
	})
	slices.Sort(out)
	return slices.Compact(out), nil
}

// leaveLocked is Leave with the key's lock held.
func (r *Registry) leaveLocked(sc *gossip.Scope, k handleKey) error {
	if !r.ownsLocal(k.scope, k.group, k.id) {
		return r.notLocal(k)
	}
	if err := r.recordLeave(k); err != nil {
		return err
	}
	return r.applyLeave(k)
}

// applyLeave removes k, a member this node owns whose leave is recorded,
// from the replicated state, the census and the handles (key lock held).
func (r *Registry) applyLeave(k handleKey) error {
	if err := r.node.Leave(k.scope, k.group, k.id); err != nil {
		if errors.Is(err, crdt.ErrNotMember) {
			return fmt.Errorf("%w: %q in %s/%s", ErrNotMember, k.id, k.scope, k.group)
		}
		return r.mapErr(err)
	}
	r.census.release(k.scope, k.group)
	r.dropHandle(k)
	return nil
}

// notLocal is the error of a leave of k, which this node does not own:
// ErrNotOwner if other nodes own such a member (possibly one that is
// down), ErrNotMember if none does.
func (r *Registry) notLocal(k handleKey) error {
	owned := false
	if sc, ok := r.node.Scope(k.scope); ok {
		sc.Read(func(st *crdt.State) { owned = len(st.Holders(k.group, k.id)) > 0 })
	}
	if owned {
		return fmt.Errorf("%w: %q in %s/%s", ErrNotOwner, k.id, k.scope, k.group)
	}
	return fmt.Errorf("%w: %q in %s/%s", ErrNotMember, k.id, k.scope, k.group)
}

func (r *Registry) dropHandle(k handleKey) {
	r.handlesMu.Lock()
	t := r.handles[k]
	delete(r.handles, k)
	r.handlesMu.Unlock()
	if t != nil {
		t.stopAll()
	}
}

func (r *Registry) mapErr(err error) error {
	switch {
	case errors.Is(err, gossip.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, gossip.ErrUnknownScope):
		return fmt.Errorf("%w: %w", ErrUnknownScope, err)
	case errors.Is(err, crdt.ErrInvalidName):
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return err
}

// Members returns the reachable members of a group, from every node,
// sorted by id then owner.
func (r *Registry) Members(scope, group string) ([]Member, error) {
	return r.read(scope, group, (*crdt.State).Members)
}

// LocalMembers returns the members of a group owned by this node.
func (r *Registry) LocalMembers(scope, group string) ([]Member, error) {
	return r.read(scope, group, (*crdt.State).LocalMembers)
}

func (r *Registry) read(scope, group string, list func(*crdt.State, string) []crdt.Member) ([]Member, error) {
	out, _, err := r.readPage(scope, group, 0, math.MaxInt, list)
	return out, err
}

// MembersPage returns limit members of a group from position offset of
// the listing Members returns (sorted by id then owner), and how many
// members the whole listing holds: a page of a large group, at the cost of
// converting that page only. Pages read at different times may overlap or
// skip members when the group changes in between. offset must not be
// negative and limit must be positive (ErrInvalidPage).
func (r *Registry) MembersPage(scope, group string, offset, limit int) ([]Member, int, error) {
	return r.readPage(scope, group, offset, limit, (*crdt.State).Members)
}

// LocalMembersPage is MembersPage over the members this node owns.
func (r *Registry) LocalMembersPage(scope, group string, offset, limit int) ([]Member, int, error) {
	return r.readPage(scope, group, offset, limit, (*crdt.State).LocalMembers)
}

func (r *Registry) readPage(scope, group string, offset, limit int, list func(*crdt.State, string) []crdt.Member) ([]Member, int, error) {
	if offset < 0 || limit <= 0 {
		return nil, 0, fmt.Errorf("%w: offset %d, limit %d", ErrInvalidPage, offset, limit)
	}
	sc, err := r.check(scope)
	if err != nil {
		return nil, 0, err
	}
	if err := validName("group", group); err != nil {
		return nil, 0, err
	}
	var out []Member
	total := 0
	c := &confirmer{node: r.node}
	sc.Read(func(st *crdt.State) {
		all := list(st, group)
		total = len(all)
		if offset < total {
			out = c.convert(nil, all[offset:min(total, offset+limit)])
		}
	})
	return out, total, nil
}

// GroupSizes returns the scope's groups as Groups does (sorted, none
// empty), each with its number of reachable members, all as of one
// moment.
func (r *Registry) GroupSizes(scope string) ([]GroupSize, error) {
	sc, err := r.check(scope)
	if err != nil {
		return nil, err
	}
	var out []GroupSize
	sc.Read(func(st *crdt.State) {
		gs := st.Groups()
		out = make([]GroupSize, len(gs))
		for i, g := range gs {
			out[i] = GroupSize{Name: g, Members: st.Visible(g)}
		}
	})
	return out, nil
}

// Divergence returns, by peer name, how far each peer that has sent this
// node a digest was from agreeing with it, per scope.
func (r *Registry) Divergence() map[string][]Divergence {
	in := r.node.Divergence()
	out := make(map[string][]Divergence, len(in))
	for peer, ds := range in {
		conv := make([]Divergence, len(ds))
		for i, d := range ds {
			conv[i] = Divergence{Scope: d.Scope, Behind: d.Behind, Ahead: d.Ahead, Age: d.Age}
		}
		out[peer] = conv
	}
	return out
}

// Count returns how many members are visible in scope, over all its
// groups: as many as Members of every group would return together, at the
// cost of a glance (no member is copied).
func (r *Registry) Count(scope string) (int, error) {
	sc, err := r.check(scope)
	if err != nil {
		return 0, err
	}
	n := 0
	sc.Read(func(st *crdt.State) { n = st.VisibleLen() })
	return n, nil
}

// Groups returns the scope's groups that have at least one reachable
// member, sorted. There are no empty groups.
func (r *Registry) Groups(scope string) ([]string, error) {
	sc, err := r.check(scope)
	if err != nil {
		return nil, err
	}
	var out []string
	sc.Read(func(st *crdt.State) { out = st.Groups() })
	return out, nil
}

// confirmer answers Member.Confirmed, asking the gossip layer once per
// owner (for the first 16 owners of a batch; then per member).
type confirmer struct {
	node *gossip.Node
	// The answers so far: a batch of events comes from one or a few
	// owners, so a short list beats a map.
	seen []confirmed
}

type confirmed struct {
	r  crdt.ReplicaID
	ok bool
}

func (c *confirmer) ok(r crdt.ReplicaID) bool {
	if c == nil || c.node == nil {
		return true
	}
	for _, s := range c.seen {
		if s.r == r {
			return s.ok
		}
	}
	v := c.node.Confirmed(r)
	if len(c.seen) < 16 {
		c.seen = append(c.seen, confirmed{r, v})
	}
	return v
}

func (c *confirmer) member(group, id string, meta crdt.RawMeta, owner crdt.ReplicaID) Member {
	return Member{Group: group, ID: id, Meta: meta.MustDecode(), Owner: owner.Name, Incarnation: owner.Incarnation, Confirmed: c.ok(owner)}
}

// convert appends ms, converted, to out.
func (c *confirmer) convert(out []Member, ms []crdt.Member) []Member {
	out = slices.Grow(out, len(ms))
	for _, m := range ms {
		out = append(out, c.member(m.Group, m.ID, m.Meta, m.Owner))
	}
	return out
}

// tied is a member tied to contexts (JoinWhile): its handle, the one Join
// and JoinWhile return while it is tied, and its ties.
type tied struct {
	pub  *Membership
	key  handleKey
	mu   sync.Mutex
	ties []tie
}

// tie is a context a member is tied to (JoinWhile): its Done channel, one
// tie per context, and the stop of its watcher.
type tie struct {
	done <-chan struct{}
	stop func() bool
}

// stopAll stops watching the contexts t is tied to.
func (t *tied) stopAll() {
	t.mu.Lock()
	ties := t.ties
	t.ties = nil
	t.mu.Unlock()
	for _, c := range ties {
		c.stop()
	}
}
