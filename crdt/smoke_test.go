package crdt

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmokeJoinLeaveReplicate(t *testing.T) {
	a := mustNew(t, "a", 1, DefaultOptions())
	b := mustNew(t, "b", 1, DefaultOptions())
	ma, mb := model{}, model{}
	d1, err := a.Join("room", "u1", Meta{"addr": "x"}, ma.emit(t))
	require.NoError(t, err)
	d2, err := a.Join("room", "u2", nil, ma.emit(t))
	require.NoError(t, err)
	d3, err := a.Join("room", "u1", Meta{"addr": "y"}, ma.emit(t))
	require.NoError(t, err)
	d4, err := a.Leave("room", "u2", ma.emit(t))
	require.NoError(t, err)
	_, err = a.Leave("room", "nope", ma.emit(t))
	require.True(t, errors.Is(err, ErrNotMember))

	// Deliver out of order, with a duplicate, through the codec.
	for _, d := range []*Delta{d4, d3, d1, d2, d3} {
		_, err := b.Merge(roundTrip(t, d), mb.emit(t))
		require.NoError(t, err)
	}
	require.Equal(t, a.Describe(false), b.Describe(false))
	require.True(t, equalModels(visible(b), mb))
	require.Len(t, b.Members("room"), 1)
	require.Equal(t, Meta{"addr": "y"}, b.Members("room")[0].Meta.MustDecode())
	require.Equal(t, []string{"room"}, b.Groups())
}

// TestLocalMeta: the local member's metadata, not a remote one's, and
// none once it left.
func TestLocalMeta(t *testing.T) {
	a := mustNew(t, "a", 1, DefaultOptions())
	b := mustNew(t, "b", 1, DefaultOptions())
	d, err := b.Join("g", "x", Meta{"k": "remote"}, nil)
	require.NoError(t, err)
	_, err = a.Merge(d, nil)
	require.NoError(t, err)
	_, ok := a.LocalMeta("g", "x")
	require.False(t, ok, "a remote member is not local")
	raw, err := EncodeMeta(Meta{"k": "v"})
	require.NoError(t, err)
	a.JoinLocal("g", "x", raw, nil)
	got, ok := a.LocalMeta("g", "x")
	require.True(t, ok)
	require.Equal(t, raw, got)
	_, err = a.Leave("g", "x", nil)
	require.NoError(t, err)
	_, ok = a.LocalMeta("g", "x")
	require.False(t, ok)
	_, ok = a.LocalMeta("nope", "x")
	require.False(t, ok)
}
