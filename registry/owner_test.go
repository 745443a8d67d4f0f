package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSessionOwnerAndOwners: a session id names the node that made it, so
// any node can tell where the session lives; Owners names the node(s)
// holding a member, a node that is down included.
func TestSessionOwnerAndOwners(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	b := openLocal(t, "b", 1, a.Addr())
	closed := false
	defer func() {
		require.NoError(t, a.Close(ctx))
		if !closed {
			require.NoError(t, b.Close(ctx))
		}
	}()
	eventually(t, "both alive on both", func() bool { return len(aliveNames(a)) == 2 && len(aliveNames(b)) == 2 })

	s, err := a.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	require.Len(t, s.ID, sessionIDLen)
	require.True(t, strings.HasPrefix(s.ID, sessionTag("a")), "id %s starts with a's tag", s.ID)
	s2, err := a.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	require.NotEqual(t, s.ID[sessionTagLen:], s2.ID[sessionTagLen:], "the rest is random")
	require.Equal(t, s.ID[:sessionTagLen], s2.ID[:sessionTagLen], "the tag is the node's")

	for _, r := range []*Registry{a, b} {
		owner, ok := r.SessionOwner(s.ID)
		require.True(t, ok, "seen from %s", r.Name())
		require.Equal(t, "a", owner.Name)
		require.Equal(t, r == a, owner.Self)
	}
	_, err = b.KeepAlive(ctx, s.ID)
	require.ErrorIs(t, err, ErrNoSession, "b does not hold a's session: it can only say where it is")
	for _, id := range []string{
		"0123456789abcdef0123456789abcdef",             // an id from before the tag
		sessionTag("nobody") + strings.Repeat("0", 32), // a node nobody knows
		strings.ToUpper(s.ID),                          // not lower-case hex
		s.ID[:sessionIDLen-1] + "g",                    // not hex
		s.ID + "0",                                     // too long
	} {
		_, ok := b.SessionOwner(id)
		require.False(t, ok, "%q names no node", id)
	}

	_, err = a.Join(ctx, "chat", "room", "x", nil)
	require.NoError(t, err)
	_, err = b.Join(ctx, "chat", "room", "x", nil)
	require.NoError(t, err)
	_, err = a.Join(ctx, "chat", "room", "only-a", nil)
	require.NoError(t, err)
	eventually(t, "replicated", func() bool { return membersOf(b, "room") == "only-a@a,x@a,x@b" })
	owners, err := b.Owners("chat", "room", "x")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, owners)
	owners, err = b.Owners("chat", "room", "only-a")
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, owners)
	owners, err = b.Owners("chat", "room", "nobody")
	require.NoError(t, err)
	require.Empty(t, owners)
	_, err = b.Owners("nope", "room", "x")
	require.ErrorIs(t, err, ErrUnknownScope)
	_, err = b.Owners("chat", "room", "")
	require.ErrorIs(t, err, ErrInvalidName)

	// An owner that is down is still named, though its member is hidden.
	require.NoError(t, b.Close(ctx))
	closed = true
	eventually(t, "b down on a", func() bool { return membersOf(a, "room") == "only-a@a,x@a" })
	owners, err = a.Owners("chat", "room", "x")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, owners)
}
