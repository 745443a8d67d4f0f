package regtype

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSelector: Group follows exactly its group, Prefix every group
// starting with it, All (and the zero Selector) everything; only Group
// names a group and only All is whole.
func TestSelector(t *testing.T) {
	for _, c := range []struct {
		name      string
		sel       Selector
		match     []string
		miss      []string
		all       bool
		group     string
		someGroup bool
	}{
		{"all", All(), []string{"", "a", "room:1"}, nil, true, "", false},
		{"zero", Selector{}, []string{"a", "b"}, nil, true, "", false},
		{"group", Group("room"), []string{"room"}, []string{"room:1", "roo", ""}, false, "room", true},
		{"prefix", Prefix("room:"), []string{"room:", "room:1"}, []string{"room", "a:room:1"}, false, "", false},
		{"empty prefix", Prefix(""), []string{"", "x"}, nil, false, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, g := range c.match {
				require.True(t, c.sel.Matches(g), "%q", g)
			}
			for _, g := range c.miss {
				require.False(t, c.sel.Matches(g), "%q", g)
			}
			require.Equal(t, c.all, c.sel.IsAll())
			g, ok := c.sel.GroupName()
			require.Equal(t, c.someGroup, ok)
			require.Equal(t, c.group, g)
		})
	}
}

// TestLifetimeOf: each option chooses its lifetime, the last one wins,
// and no option is the process's lifetime.
func TestLifetimeOf(t *testing.T) {
	require.Equal(t, Lifetime{}, LifetimeOf())
	require.Equal(t, Lifetime{Durable: true}, LifetimeOf(Durable()))
	require.Equal(t, Lifetime{Session: "s1"}, LifetimeOf(InSession("s1")))
	require.Equal(t, Lifetime{Session: "s1"}, LifetimeOf(Durable(), InSession("s1")))
	require.Equal(t, Lifetime{Durable: true}, LifetimeOf(InSession("s1"), Durable()))
	require.Equal(t, Lifetime{Session: "s2"}, LifetimeOf(InSession("s1"), InSession("s2")))
}

// TestMessageKindNames: every kind has its metric label, and a kind out
// of range says so rather than borrowing one.
func TestMessageKindNames(t *testing.T) {
	require.Equal(t, []string{"deltas", "relay", "sync", "leaving"},
		[]string{KindDeltas.String(), KindRelay.String(), KindSync.String(), KindLeaving.String()})
	require.EqualValues(t, 4, NumMessageKinds)
	require.Equal(t, "kind(4)", NumMessageKinds.String())
	require.Equal(t, "kind(200)", MessageKind(200).String())
}

type fakeSource struct {
	closed int
	err    error
}

func (f *fakeSource) Close()     { f.closed++; f.err = ErrWatchClosed }
func (f *fakeSource) Err() error { return f.err }

// TestWatchDelegates: a Watch carries its snapshot, seq and channel as
// given, and its Close and Err are its source's; the zero Watch has
// nothing to close and no error.
func TestWatchDelegates(t *testing.T) {
	c := make(chan Event, 1)
	c <- Event{Seq: 8, Type: EventJoin, Reason: ReasonJoined, Member: Member{Group: "g", ID: "m"}}
	src := &fakeSource{}
	w := NewWatch([]Member{{Group: "g", ID: "a"}}, 7, c, src)
	require.Equal(t, []Member{{Group: "g", ID: "a"}}, w.Snapshot)
	require.EqualValues(t, 7, w.Seq)
	require.Equal(t, "m", (<-w.C).Member.ID)
	require.NoError(t, w.Err())
	w.Close()
	require.Equal(t, 1, src.closed)
	require.ErrorIs(t, w.Err(), ErrWatchClosed)

	var zero Watch
	zero.Close()
	require.NoError(t, zero.Err())
}

type call struct {
	op, scope, group, id string
	meta                 Meta
	opts                 int
}

type fakeOwner struct {
	calls []call
	err   error
}

func (f *fakeOwner) Join(_ context.Context, scope, group, id string, meta Meta, opts ...JoinOption) (*Membership, error) {
	f.calls = append(f.calls, call{"join", scope, group, id, meta, len(opts)})
	return NewMembership(f, scope, group, id), f.err
}

func (f *fakeOwner) Leave(_ context.Context, scope, group, id string) error {
	f.calls = append(f.calls, call{op: "leave", scope: scope, group: group, id: id})
	return f.err
}

// TestMembershipDelegates: a handle names its member, Update joins it
// again with the new metadata and no options, Leave leaves it, each on
// the owner that made it, with the owner's error.
func TestMembershipDelegates(t *testing.T) {
	ctx := context.Background()
	o := &fakeOwner{}
	m := NewMembership(o, "chat", "room", "c1")
	require.Equal(t, []string{"chat", "room", "c1"}, []string{m.Scope(), m.Group(), m.ID()})
	require.NoError(t, m.Update(ctx, Meta{"k": "v"}))
	require.NoError(t, m.Leave(ctx))
	require.Equal(t, []call{
		{op: "join", scope: "chat", group: "room", id: "c1", meta: Meta{"k": "v"}},
		{op: "leave", scope: "chat", group: "room", id: "c1"},
	}, o.calls)

	o.err = ErrNotMember
	require.ErrorIs(t, m.Update(ctx, nil), ErrNotMember)
	require.ErrorIs(t, m.Leave(ctx), ErrNotMember)
}

// TestLimitErrors: every limit's error is an ErrLimit, and only its own
// limit's.
func TestLimitErrors(t *testing.T) {
	limits := []error{ErrTooManySessions, ErrTooManyMembers, ErrTooManyGroups, ErrTooManyWatchers}
	for i, a := range limits {
		require.ErrorIs(t, a, ErrLimit)
		for j, b := range limits {
			require.Equal(t, i == j, errors.Is(a, b), "%v is %v", a, b)
		}
	}
	require.NotErrorIs(t, ErrClosed, ErrLimit)
}
