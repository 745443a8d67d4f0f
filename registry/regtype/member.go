package regtype

import (
	"context"
	"time"

	"github.com/roster-io/roster/crdt"
)

// Meta is a member's metadata: a small string map (at most
// crdt.MaxMetaPairs pairs and crdt.MaxMetaBytes encoded).
type Meta = crdt.Meta

// Member is one member of a group as seen from this node.
type Member struct {
	Group string
	ID    string
	Meta  Meta
	// Owner is the node the member joined on; only it can remove it.
	Owner string
	// Incarnation is the owner's run that added it.
	Incarnation uint64
	// Confirmed is false for a member loaded from this node's cache after
	// a restart whose owner has not been seen alive yet, which is shown
	// only with a positive Config.ConfirmGrace; true otherwise.
	Confirmed bool
}

// MemberOwner is what a Membership's Update and Leave act on: the node
// that owns the member (package registry's *Registry).
type MemberOwner interface {
	Join(ctx context.Context, scope, group, id string, meta Meta, opts ...JoinOption) (*Membership, error)
	Leave(ctx context.Context, scope, group, id string) error
}

// Membership is the handle of a member owned by this node.
type Membership struct {
	scope, group, id string
	owner            MemberOwner
}

// NewMembership returns the handle of member (scope, group, id) of owner.
// It is for implementations of the registry's API (package registry, test
// doubles); embedders get handles from Join.
func NewMembership(owner MemberOwner, scope, group, id string) *Membership {
	return &Membership{scope: scope, group: group, id: id, owner: owner}
}

// Scope, Group and ID identify the member.
func (m *Membership) Scope() string { return m.scope }
func (m *Membership) Group() string { return m.group }
func (m *Membership) ID() string    { return m.id }

// Update replaces the member's metadata.
func (m *Membership) Update(ctx context.Context, meta Meta) error {
	_, err := m.owner.Join(ctx, m.scope, m.group, m.id, meta)
	return err
}

// Leave removes the member. Leaving twice returns ErrNotMember.
func (m *Membership) Leave(ctx context.Context) error {
	return m.owner.Leave(ctx, m.scope, m.group, m.id)
}

// JoinOption chooses a member's lifetime; see Durable and InSession.
type JoinOption func(*joinOptions)

type joinOptions struct {
	durable bool
	session string
}

// Durable makes the member outlive restarts of this node until it is left.
// It needs Config.DataDir; without one the join fails with ErrNotDurable.
func Durable() JoinOption { return func(o *joinOptions) { o.durable, o.session = true, "" } }

// InSession binds the member to a session (see CreateSession): it leaves
// when the session expires or is closed.
func InSession(id string) JoinOption {
	return func(o *joinOptions) { o.durable, o.session = false, id }
}

// LifetimeOf returns the lifetime opts choose, the last option winning:
// Lifetime{Durable: true} for Durable(), Lifetime{Session: id} for
// InSession(id), the zero Lifetime (as long as the process) for none.
// (The options escape to the heap, as opts are arbitrary functions: a
// caller without options should not call it.)
func LifetimeOf(opts ...JoinOption) Lifetime {
	o := new(joinOptions)
	for _, opt := range opts {
		opt(o)
	}
	return Lifetime{Durable: o.durable, Session: o.session}
}

// Lifetime says how long a member owned by this node lives.
type Lifetime struct {
	Durable bool
	Session string // "" unless bound to a session
}

// Session is a lease that keeps its members alive while it is refreshed.
type Session struct {
	ID      string
	TTL     time.Duration
	Expires time.Time
}

// Session TTL bounds.
const (
	MinSessionTTL = time.Second
	MaxSessionTTL = 24 * time.Hour
)

// Op is one operation of a batch (see Apply): the join of the member
// (Group, ID) with Meta and Lifetime, or, with Leave, its leave.
type Op struct {
	Leave bool
	Group string
	ID    string
	// Meta is a join's metadata (ignored by a leave).
	Meta Meta
	// Lifetime is a join's lifetime, as the options give it:
	// Lifetime{Durable: true} is Durable(), Lifetime{Session: id} is
	// InSession(id) (Durable is then ignored), and the zero Lifetime a
	// member that lives as long as the process (ignored by a leave).
	Lifetime Lifetime
}

// GroupSize is a group's name and how many reachable members it has.
type GroupSize struct {
	Name    string
	Members int
}
