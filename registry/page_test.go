package registry

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMembersPage: pages of a group are slices of the full listing, in its
// order, with the listing's size; over two nodes, LocalMembersPage pages
// this node's members only; bad pages and names are refused.
func TestMembersPage(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	defer a.Close(ctx)
	b := openLocal(t, "b", 1, a.Addr())
	defer b.Close(ctx)
	for i := range 25 {
		_, err := a.Join(ctx, "chat", "room", fmt.Sprintf("m%02d", i), Meta{"i": fmt.Sprint(i)})
		require.NoError(t, err)
	}
	for i := range 5 {
		_, err := b.Join(ctx, "chat", "room", fmt.Sprintf("x%d", i), nil)
		require.NoError(t, err)
	}
	eventually(t, "a sees b's members", func() bool { ms, _ := a.Members("chat", "room"); return len(ms) == 30 })
	all, err := a.Members("chat", "room")
	require.NoError(t, err)

	for _, p := range []struct{ offset, limit, want int }{{0, 10, 10}, {10, 10, 10}, {20, 10, 10}, {25, 100, 5}, {29, 1, 1}, {30, 10, 0}, {1000, 5, 0}} {
		page, total, err := a.MembersPage("chat", "room", p.offset, p.limit)
		require.NoError(t, err)
		require.Equal(t, 30, total)
		require.Len(t, page, p.want, "offset %d limit %d", p.offset, p.limit)
		if p.want > 0 {
			require.Equal(t, all[p.offset:p.offset+p.want], page)
		}
	}
	page, total, err := a.MembersPage("chat", "room", 3, 1)
	require.NoError(t, err)
	require.Equal(t, 30, total)
	require.Equal(t, Member{Group: "room", ID: "m03", Meta: Meta{"i": "3"}, Owner: "a", Incarnation: 1, Confirmed: true}, page[0], "a page carries meta and owner")

	local, total, err := b.LocalMembersPage("chat", "room", 2, 10)
	require.NoError(t, err)
	require.Equal(t, 5, total, "b owns 5")
	require.Equal(t, "x2@b,x3@b,x4@b", ids(local))

	page, total, err = a.MembersPage("chat", "empty", 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)
	require.Empty(t, page)

	for _, bad := range [][2]int{{-1, 10}, {0, 0}, {0, -5}} {
		_, _, err := a.MembersPage("chat", "room", bad[0], bad[1])
		require.ErrorIs(t, err, ErrInvalidPage, "offset %d limit %d", bad[0], bad[1])
	}
	_, _, err = a.MembersPage("nope", "room", 0, 10)
	require.ErrorIs(t, err, ErrUnknownScope)
	_, _, err = a.MembersPage("chat", "", 0, 10)
	require.ErrorIs(t, err, ErrInvalidName)
}

// TestGroupSizesAndDivergence: GroupSizes lists Groups with the size of
// each as Members reports it, and a node that has exchanged digests with
// its peer lists it as agreeing once it has everything.
func TestGroupSizesAndDivergence(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	defer a.Close(ctx)
	b := openLocal(t, "b", 1, a.Addr())
	defer b.Close(ctx)
	for g, n := range map[string]int{"alpha": 3, "beta": 1, "gamma": 7} {
		for i := range n {
			_, err := a.Join(ctx, "chat", g, fmt.Sprintf("m%d", i), nil)
			require.NoError(t, err)
		}
	}
	_, err := b.Join(ctx, "chat", "beta", "other", nil)
	require.NoError(t, err)
	eventually(t, "a sees b's member", func() bool { return membersOf(a, "beta") == "m0@a,other@b" })

	sizes, err := a.GroupSizes("chat")
	require.NoError(t, err)
	require.Equal(t, []GroupSize{{Name: "alpha", Members: 3}, {Name: "beta", Members: 2}, {Name: "gamma", Members: 7}}, sizes)
	gs, err := a.Groups("chat")
	require.NoError(t, err)
	for i, g := range gs {
		ms, err := a.Members("chat", g)
		require.NoError(t, err)
		require.Equal(t, GroupSize{Name: g, Members: len(ms)}, sizes[i])
	}
	sizes, err = a.GroupSizes("games")
	require.NoError(t, err)
	require.Empty(t, sizes)
	_, err = a.GroupSizes("nope")
	require.ErrorIs(t, err, ErrUnknownScope)

	// Both scopes were exchanged when the nodes met; anti-entropy rounds
	// (every 200 ms here) bring a's view of b level once b has a's joins.
	eventually(t, "a sees b agreeing in both scopes", func() bool {
		ds := a.Divergence()["b"]
		return len(ds) == 2 && ds[0].Scope == "chat" && ds[1].Scope == "games" &&
			ds[0].Behind == 0 && ds[0].Ahead == 0 && ds[1].Behind == 0 && ds[1].Ahead == 0
	})
	require.NotContains(t, a.Divergence(), "a", "no divergence from itself")
}
