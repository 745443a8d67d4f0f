package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// openDisk opens a single node on dir (a real directory) without cache
// saves, so that every WAL sync counted is the members'.
func openDisk(t *testing.T, dir string, edit func(*Config)) *Registry {
	t.Helper()
	cfg := LocalConfig("disk")
	cfg.Scopes = []string{"chat", "games"}
	cfg.DataDir = dir
	cfg.CacheInterval = 0
	if edit != nil {
		edit(&cfg)
	}
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	return r
}

func walSyncs(r *Registry) uint64 { return r.disk.Metrics().WALSyncs }

// TestApplyOneFsync: a batch of durable, session and in-process joins and
// of leaves is persisted with one fsync (where Join costs one per member),
// applied in full (watchers see every change, in order), and a restart
// finds exactly its durable and session members.
func TestApplyOneFsync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openDisk(t, dir, nil)
	s, err := r.CreateSession(ctx, time.Hour)
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "room", "gone", nil, Durable())
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "room", "temp", nil)
	require.NoError(t, err)
	w, err := r.Watch(ctx, "chat", Group("room"))
	require.NoError(t, err)
	defer w.Close()

	var ops []Op
	var want []string
	for i := range 300 {
		op := Op{Group: "room", ID: fmt.Sprintf("m%03d", i), Meta: Meta{"i": fmt.Sprint(i)}}
		switch i % 3 {
		case 0:
			op.Lifetime = Lifetime{Durable: true}
		case 1:
			op.Lifetime = Lifetime{Session: s.ID}
		}
		ops = append(ops, op)
		want = append(want, "join "+op.ID)
	}
	ops = append(ops, Op{Leave: true, Group: "room", ID: "gone"}, Op{Leave: true, Group: "room", ID: "temp"})
	want = append(want, "leave gone", "leave temp")

	before := walSyncs(r)
	errs, err := r.Apply(ctx, "chat", ops)
	require.NoError(t, err)
	require.Equal(t, make([]error, len(ops)), errs)
	require.Equal(t, before+1, walSyncs(r), "one fsync for 300 joins and a leave")

	var got []string
	for range want {
		e := next(t, w)
		got = append(got, string(e.Type)+" "+e.Member.ID)
	}
	require.Equal(t, want, got)
	ms, err := r.Members("chat", "room")
	require.NoError(t, err)
	require.Len(t, ms, 300)
	require.Equal(t, Meta{"i": "7"}, ms[7].Meta)
	life, ok := r.Lifetime("chat", "room", "m001")
	require.True(t, ok)
	require.Equal(t, Lifetime{Session: s.ID}, life)
	life, _ = r.Lifetime("chat", "room", "m000")
	require.Equal(t, Lifetime{Durable: true}, life)
	life, _ = r.Lifetime("chat", "room", "m002")
	require.Equal(t, Lifetime{}, life)

	// The same 300 joins one by one: one fsync each (200 are persisted).
	before = walSyncs(r)
	for _, op := range ops[:300] {
		_, err := r.Join(ctx, "chat", "again", op.ID, op.Meta, joinOpts(op.Lifetime)...)
		require.NoError(t, err)
	}
	require.Equal(t, before+200, walSyncs(r))

	w.Close()
	require.NoError(t, r.Close(ctx))
	r = openDisk(t, dir, nil)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	ms, err = r.LocalMembers("chat", "room")
	require.NoError(t, err)
	require.Len(t, ms, 200, "durable and session members survive, in-process ones and the left one do not")
	for _, m := range ms {
		require.NotEqual(t, "gone", m.ID)
		var i int
		_, _ = fmt.Sscanf(m.ID, "m%d", &i)
		require.NotEqual(t, 2, i%3, "in-process member %s restored", m.ID)
	}
}

func joinOpts(l Lifetime) []JoinOption {
	switch {
	case l.Session != "":
		return []JoinOption{InSession(l.Session)}
	case l.Durable:
		return []JoinOption{Durable()}
	}
	return nil
}

// TestApplyBadOps: each bad op is answered with its own sentinel and
// changes nothing; the others are applied. Errors that stop the whole
// batch come as err, with nothing applied.
func TestApplyBadOps(t *testing.T) {
	ctx := context.Background()
	r := openLimited(t, Limits{MaxMembers: 5, MaxGroups: 2}, func(c *Config) { c.DataDir = t.TempDir() })
	_, err := r.Join(ctx, "chat", "g1", "old", nil, Durable())
	require.NoError(t, err)
	s, err := r.CreateSession(ctx, time.Hour)
	require.NoError(t, err)

	ops := []Op{
		{Group: "g1", ID: "a", Lifetime: Lifetime{Durable: true}},          // 0 ok
		{Group: "g1", ID: strings.Repeat("x", 256)},                        // 1 name
		{Group: "g1", ID: "b", Meta: Meta{"": "v"}},                        // 2 meta key
		{Group: "g1", ID: "c", Lifetime: Lifetime{Session: "no-such"}},     // 3 session
		{Group: "g1", ID: "d", Lifetime: Lifetime{Session: s.ID}},          // 4 ok
		{Leave: true, Group: "g1", ID: "nobody"},                           // 5 not a member
		{Leave: true, Group: "g1", ID: "old"},                              // 6 ok
		{Group: "g2", ID: "e"},                                             // 7 ok: second group
		{Group: "g3", ID: "f", Lifetime: Lifetime{Durable: true}},          // 8 third group
		{Group: "", ID: "g"},                                               // 9 name
		{Group: "g2", ID: "h", Meta: Meta{"k": strings.Repeat("v", 5000)}}, // 10 meta size
	}
	errs, err := r.Apply(ctx, "chat", ops)
	require.NoError(t, err)
	require.Len(t, errs, len(ops))
	for i, want := range []error{nil, ErrInvalidName, ErrInvalidMeta, ErrNoSession, nil, ErrNotMember, nil, nil, ErrTooManyGroups, ErrInvalidName, ErrInvalidMeta} {
		if want == nil {
			require.NoError(t, errs[i], "op %d", i)
		} else {
			require.ErrorIs(t, errs[i], want, "op %d", i)
		}
	}
	require.Equal(t, "a@lim,d@lim", membersOf(r, "g1"))
	require.Equal(t, "e@lim", membersOf(r, "g2"))
	_, ok := r.Lifetime("chat", "g1", "c")
	require.False(t, ok)

	// Limits count the batch's own joins: 3 members held, 2 more fit.
	errs, err = r.Apply(ctx, "chat", []Op{{Group: "g2", ID: "x"}, {Group: "g2", ID: "y"}, {Group: "g2", ID: "z"}})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], ErrTooManyMembers)
	require.Equal(t, "e@lim,x@lim,y@lim", membersOf(r, "g2"))

	// Whole-batch errors: nothing applied.
	for _, c := range []struct {
		scope string
		want  error
	}{{"nope", ErrUnknownScope}, {"", ErrInvalidName}} {
		errs, err = r.Apply(ctx, c.scope, []Op{{Group: "g1", ID: "late"}})
		require.ErrorIs(t, err, c.want)
		require.Nil(t, errs)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	errs, err = r.Apply(cctx, "chat", []Op{{Leave: true, Group: "g1", ID: "a"}})
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, errs)
	require.Equal(t, "a@lim,d@lim", membersOf(r, "g1"))
}

// TestApplyInOrder: a member named more than once takes every op in turn
// (one round, and one fsync, per repetition); the batch ends as the same
// ops one after another would.
func TestApplyInOrder(t *testing.T) {
	ctx := context.Background()
	r := openDisk(t, t.TempDir(), nil)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	w, err := r.Watch(ctx, "chat", Group("g"))
	require.NoError(t, err)
	defer w.Close()
	durable := Lifetime{Durable: true}
	ops := []Op{
		{Group: "g", ID: "a", Lifetime: durable},
		{Group: "g", ID: "b", Lifetime: durable},
		{Group: "g", ID: "a", Meta: Meta{"v": "2"}, Lifetime: durable}, // round 2
		{Leave: true, Group: "g", ID: "b"},
		{Leave: true, Group: "g", ID: "a"},          // round 3
		{Group: "g", ID: "a", Meta: Meta{"v": "3"}}, // round 4: in-process now
	}
	before := walSyncs(r)
	errs, err := r.Apply(ctx, "chat", ops)
	require.NoError(t, err)
	require.Equal(t, make([]error, len(ops)), errs)
	require.Equal(t, before+3, walSyncs(r), "rounds 1-3 persist; round 4's in-process join writes nothing")
	var got []string
	for range 6 {
		e := next(t, w)
		got = append(got, fmt.Sprintf("%s %s %v", e.Type, e.Member.ID, e.Member.Meta))
	}
	require.Equal(t, []string{"join a map[]", "join b map[]", "update a map[v:2]", "leave b map[]", "leave a map[v:2]", "join a map[v:3]"}, got)
	life, ok := r.Lifetime("chat", "g", "a")
	require.True(t, ok)
	require.Equal(t, Lifetime{}, life)
	m, ok, err := r.disk.Member("chat", "g", "a")
	require.NoError(t, err)
	require.False(t, ok, "left, then joined in-process: no record %v", m)
}

// TestApplyStorageFailure: when the batch's write fails, every op it
// carried fails with ErrStorage and changes nothing in memory; an
// in-process join, which writes nothing, still succeeds.
func TestApplyStorageFailure(t *testing.T) {
	ctx := context.Background()
	disk := &faultyDisk{}
	r := openOnFS(t, errorfs.Wrap(vfs.NewMem(), disk))
	defer func() { _ = r.Close(ctx) }()
	_, err := r.Join(ctx, "chat", "room", "kept", nil, Durable())
	require.NoError(t, err)
	disk.full.Store(true)
	errs, err := r.Apply(ctx, "chat", []Op{
		{Group: "room", ID: "d", Lifetime: Lifetime{Durable: true}},
		{Group: "room", ID: "p"},
		{Leave: true, Group: "room", ID: "kept"},
	})
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], ErrStorage)
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], ErrStorage)
	require.Equal(t, "kept@disk,p@disk", membersOf(r, "room"))
	life, ok := r.Lifetime("chat", "room", "kept")
	require.True(t, ok)
	require.True(t, life.Durable)
}

// TestApplyNotOwner: leaving another node's member in a batch is
// ErrNotOwner for that op only.
func TestApplyNotOwner(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	defer func() { require.NoError(t, a.Close(ctx)) }()
	b := openLocal(t, "b", 1, a.Addr())
	defer func() { require.NoError(t, b.Close(ctx)) }()
	_, err := a.Join(ctx, "chat", "room", "x", nil)
	require.NoError(t, err)
	eventually(t, "x on b", func() bool { return membersOf(b, "room") == "x@a" })
	errs, err := b.Apply(ctx, "chat", []Op{{Leave: true, Group: "room", ID: "x"}, {Group: "room", ID: "y"}})
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], ErrNotOwner)
	require.NoError(t, errs[1])
	eventually(t, "y on a", func() bool { return membersOf(a, "room") == "x@a,y@b" })
}
