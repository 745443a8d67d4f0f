package crdt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMergeRunRefindsEmptiedGroup: within one run of adds to a group, an
// add known to be dead removes the group's last member (which drops the
// group from the index); a later add of the same run must land in the
// indexed group, not in the dropped one.
func TestMergeRunRefindsEmptiedGroup(t *testing.T) {
	owner := ReplicaID{Name: "a", Incarnation: 1}
	r := mustNew(t, "r", 1, DefaultOptions())
	_, err := r.Merge(&Delta{Replica: owner, Ctx: []Range{{1, 1}}, Adds: []Add{{Group: "g", ID: "x", Counter: 1}}}, nil)
	require.NoError(t, err)
	// r learnt that counter 2 is dead (an update of x it never saw alive).
	r.slices["a"].ctx.add(2, 2)
	_, err = r.Merge(&Delta{Replica: owner, Ctx: []Range{{2, 3}}, Adds: []Add{
		{Group: "g", ID: "x", Counter: 2}, // known dead: removes x@1, the group's last member
		{Group: "g", ID: "z", Counter: 3}, // new
	}}, nil)
	require.NoError(t, err)
	ms := r.Members("g")
	require.Len(t, ms, 1)
	require.Equal(t, "z", ms[0].ID)
	require.Equal(t, []string{"g"}, r.Groups())
}
