package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/registry/regtype"
	"github.com/stretchr/testify/require"
)

// TestOwnTypes: the registry's own cluster view, figures and key errors
// carry what the gossip layer reports: a node lists itself alive with its
// incarnation, the counters move with the traffic, each gossip keyring
// error matches the registry's sentinel (and still gossip's), and an HTTP
// address is checked as the gossip layer checks it.
func TestOwnTypes(t *testing.T) {
	a := openLocal(t, "a", 1)
	defer func() { require.NoError(t, a.Close(context.Background())) }()
	b := openLocal(t, "b", 1, a.Addr())
	defer func() { require.NoError(t, b.Close(context.Background())) }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.WaitReady(ctx))

	ns := a.Nodes()
	require.Len(t, ns, 2)
	require.Equal(t, NodeInfo{Name: "a", Incarnation: 1, Addr: a.Addr(), State: PeerAlive, Scopes: []string{"chat", "games"}, Self: true}, ns[0])
	require.Equal(t, PeerAlive, ns[1].State)

	_, err := a.Join(ctx, "chat", "g", "m", nil)
	require.NoError(t, err)
	eventually(t, "b has a's member", func() bool { return membersOf(b, "g") == "m@a" })
	st := a.Stats()
	require.Positive(t, st.DeltasSent)
	require.Positive(t, st.Sent[KindDeltas].Messages+st.Sent[KindRelay].Messages)
	require.Positive(t, st.Transport.PacketsSent, "the node's own transport counts")
	require.Equal(t, "sync", KindSync.String())

	_, err = a.GossipKeys()
	require.ErrorIs(t, err, ErrNoKeyring, "LocalConfig has no keyring")
	require.ErrorIs(t, err, gossip.ErrNoKeyring)
	for _, c := range []struct{ from, to error }{
		{gossip.ErrInvalidKey, ErrInvalidKey}, {gossip.ErrUnknownKey, ErrUnknownKey}, {gossip.ErrPrimaryKey, ErrPrimaryKey},
	} {
		require.ErrorIs(t, keyErr(c.from), c.to)
	}
	other := errors.New("other")
	require.Equal(t, other, keyErr(other), "other errors pass unchanged")
	require.NoError(t, keyErr(nil))

	require.NoError(t, ValidHTTPAddr("http://10.0.0.5:8080"))
	err = ValidHTTPAddr("http://10.0.0.5:8080/path")
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "no user, path")
}

// TestReexports: this package's names for regtype's values are those
// values, so that a caller holding either name (package server holds
// regtype's) matches what the registry returns: every sentinel error is
// regtype's own, and every message kind is named as the gossip layer
// names it (regtype keeps its own table of names).
func TestReexports(t *testing.T) {
	for _, c := range []struct{ ours, theirs error }{
		{ErrClosed, regtype.ErrClosed}, {ErrInvalidName, regtype.ErrInvalidName},
		{ErrInvalidMeta, regtype.ErrInvalidMeta}, {ErrUnknownScope, regtype.ErrUnknownScope},
		{ErrNotMember, regtype.ErrNotMember}, {ErrNotOwner, regtype.ErrNotOwner},
		{ErrNoSession, regtype.ErrNoSession}, {ErrInvalidTTL, regtype.ErrInvalidTTL},
		{ErrInvalidPage, regtype.ErrInvalidPage}, {ErrStorage, regtype.ErrStorage},
		{ErrWatchClosed, regtype.ErrWatchClosed}, {ErrNotDurable, regtype.ErrNotDurable},
		{ErrRestartRequired, regtype.ErrRestartRequired}, {ErrLimit, regtype.ErrLimit},
		{ErrTooManySessions, regtype.ErrTooManySessions}, {ErrTooManyMembers, regtype.ErrTooManyMembers},
		{ErrTooManyGroups, regtype.ErrTooManyGroups}, {ErrTooManyWatchers, regtype.ErrTooManyWatchers},
		{ErrNoKeyring, regtype.ErrNoKeyring}, {ErrInvalidKey, regtype.ErrInvalidKey},
		{ErrUnknownKey, regtype.ErrUnknownKey}, {ErrPrimaryKey, regtype.ErrPrimaryKey},
	} {
		require.True(t, c.ours == c.theirs, "%v is not regtype's", c.ours)
	}
	for k := range NumMessageKinds {
		require.Equal(t, gossip.MessageKind(k).String(), k.String())
	}

	// What a method returns matches regtype's sentinel.
	r := openLocal(t, "a", 1)
	_, err := r.GetSession("nope")
	require.ErrorIs(t, err, regtype.ErrNoSession)
	require.NoError(t, r.Close(context.Background()))
	_, err = r.Join(context.Background(), "chat", "g", "m", nil)
	require.ErrorIs(t, err, regtype.ErrClosed)
}
