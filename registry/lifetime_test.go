package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// openStored opens a local node named name with its data in dir.
func openStored(t *testing.T, name, dir string, seeds ...string) *Registry {
	t.Helper()
	cfg := LocalConfig(name)
	cfg.Scopes = []string{"chat", "games"}
	cfg.Seeds = seeds
	cfg.DataDir = dir
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	return r
}

// TestDurableNeedsDataDir: without a DataDir a durable member, by Join or
// in a batch, is refused with ErrNotDurable and changes nothing (no member,
// no event, nothing counted), while in-process and session members, which
// promise nothing across a restart, still work.
func TestDurableNeedsDataDir(t *testing.T) {
	ctx := context.Background()
	r := openLimited(t, Limits{MaxMembers: 2}, nil)
	w, err := r.Watch(ctx, "chat", Group("room"))
	require.NoError(t, err)
	defer w.Close()

	_, err = r.Join(ctx, "chat", "room", "d", nil, Durable())
	require.ErrorIs(t, err, ErrNotDurable)
	require.Contains(t, err.Error(), "no data directory")
	_, ok := r.Lifetime("chat", "room", "d")
	require.False(t, ok, "a refused durable join adds nothing")
	require.Empty(t, membersOf(r, "room"))

	errs, err := r.Apply(ctx, "chat", []Op{
		{Group: "room", ID: "bd", Lifetime: Lifetime{Durable: true}},
		{Group: "room", ID: "p"},
	})
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], ErrNotDurable)
	require.NoError(t, errs[1])

	s, err := r.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "room", "s", nil, InSession(s.ID))
	require.NoError(t, err, "a session member needs no DataDir")
	// Two members held, the limit: the refused durable ones were not counted.
	require.Equal(t, "p@lim,s@lim", membersOf(r, "room"))
	for _, want := range []string{"p", "s"} {
		e := next(t, w)
		require.Equal(t, EventJoin, e.Type)
		require.Equal(t, want, e.Member.ID, "no event for a refused durable member")
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	a := openStored(t, "a", t.TempDir())
	b := openLocal(t, "b", 1, a.Addr())
	defer func() {
		require.NoError(t, b.Close(ctx))
		require.NoError(t, a.Close(ctx))
	}()

	_, err := a.CreateSession(ctx, time.Millisecond)
	require.ErrorIs(t, err, ErrInvalidTTL)
	_, err = a.Join(ctx, "chat", "room", "x", nil, InSession("nope"))
	require.ErrorIs(t, err, ErrNoSession)
	require.Equal(t, "", membersOf(a, "room"), "a failed join changes nothing")

	s, err := a.CreateSession(ctx, time.Second)
	require.NoError(t, err)
	w, err := a.Watch(ctx, "chat", Group("room"))
	require.NoError(t, err)
	defer w.Close()

	_, err = a.Join(ctx, "chat", "room", "s1", Meta{"k": "v"}, InSession(s.ID))
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "d1", nil, Durable())
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "p1", nil)
	require.NoError(t, err)
	life, ok := a.Lifetime("chat", "room", "s1")
	require.True(t, ok)
	require.Equal(t, Lifetime{Session: s.ID}, life)
	life, ok = a.Lifetime("chat", "room", "d1")
	require.True(t, ok)
	require.Equal(t, Lifetime{Durable: true}, life)
	life, ok = a.Lifetime("chat", "room", "p1")
	require.True(t, ok)
	require.Equal(t, Lifetime{}, life)
	_, ok = a.Lifetime("chat", "room", "zz")
	require.False(t, ok)
	eventually(t, "b sees all three", func() bool { return membersOf(b, "room") == "d1@a,p1@a,s1@a" })

	// Keep-alives keep the session past its TTL.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		s2, err := a.KeepAlive(ctx, s.ID)
		require.NoError(t, err)
		require.True(t, s2.Expires.After(time.Now().Add(500*time.Millisecond)))
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, "d1@a,p1@a,s1@a", membersOf(a, "room"))

	// Then it expires: its member leaves with reason session-expired here
	// and disappears on b.
	for _, want := range []string{"s1", "d1", "p1"} {
		e := next(t, w)
		require.Equal(t, EventJoin, e.Type)
		require.Equal(t, want, e.Member.ID)
	}
	e := next(t, w)
	require.Equal(t, EventLeave, e.Type)
	require.Equal(t, ReasonSessionExpired, e.Reason)
	require.Equal(t, "s1", e.Member.ID)
	eventually(t, "b drops the session member", func() bool { return membersOf(b, "room") == "d1@a,p1@a" })
	_, err = a.KeepAlive(ctx, s.ID)
	require.ErrorIs(t, err, ErrNoSession)
	_, err = a.Join(ctx, "chat", "room", "s2", nil, InSession(s.ID))
	require.ErrorIs(t, err, ErrNoSession)

	// An explicit close: reason left. Rejoining a session member as
	// durable takes it out of the session (same metadata: no event).
	s3, err := a.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "s3", nil, InSession(s3.ID))
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "s4", nil, InSession(s3.ID))
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "s4", nil, Durable())
	require.NoError(t, err)
	require.Len(t, a.Sessions(), 1)
	require.NoError(t, a.CloseSession(ctx, s3.ID))
	require.ErrorIs(t, a.CloseSession(ctx, s3.ID), ErrNoSession)
	require.Empty(t, a.Sessions())
	require.Equal(t, "d1@a,p1@a,s4@a", membersOf(a, "room"))
	seq := e.Seq
	for _, want := range []struct {
		typ EventType
		id  string
		why Reason
	}{{EventJoin, "s3", ReasonJoined}, {EventJoin, "s4", ReasonJoined}, {EventLeave, "s3", ReasonLeft}} {
		e := next(t, w)
		require.Equal(t, want.typ, e.Type, want.id)
		require.Equal(t, want.id, e.Member.ID)
		require.Equal(t, want.why, e.Reason)
		require.Greater(t, e.Seq, seq)
		seq = e.Seq
	}
}
