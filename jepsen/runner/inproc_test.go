package runner

import (
	"context"
	"testing"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/workload"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// runInProc runs workload wl on an in-process cluster of n nodes with the
// named faults for d, and returns the history.
func runInProc(t *testing.T, n int, wl string, faults []string, d time.Duration, seed int64) []history.Op {
	t.Helper()
	ctx := context.Background()
	c, err := NewInProc(ctx, n, "jepsen", t.TempDir(), seed, nil, nil)
	require.NoError(t, err)
	defer c.Close()
	w, err := workload.New(wl, workload.DefaultOptions())
	require.NoError(t, err)
	fs, err := c.Faults(faults...)
	require.NoError(t, err)
	ops, err := Run(ctx, c, Config{Workload: w, Scope: "jepsen", Time: d, Rate: 200, Faults: fs,
		FaultEvery: time.Second, FaultMin: 300 * time.Millisecond, FaultMax: 1500 * time.Millisecond,
		Settle: 20 * time.Second, OpTimeout: 500 * time.Millisecond, Seed: seed})
	require.NoError(t, err)
	require.NoError(t, history.Validate(ops))
	return ops
}

// TestInProcJoinSetConverges: join-set on three nodes under partitions
// and kills: the history is well formed, it holds faults and final
// reads, the final reads of every node agree, and every acknowledged
// join is in them (no fault of this run wipes data).
func TestInProcJoinSetConverges(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ops := runInProc(t, 3, "join-set", []string{"partition", "kill"}, 4*time.Second, 1)
	acked := map[string]bool{}
	final := map[string]map[string]bool{} // node -> members, last round
	lastRound := map[string]int64{}
	faults := 0
	for _, op := range ops {
		switch {
		case op.F == history.FJoin && op.Type == history.OK:
			acked[op.Value.Group+"/"+op.Value.ID+"@"+op.Node] = true
		case op.F == history.FNemesis:
			faults++
		case op.F == history.FFinalRead && op.Type == history.OK:
			if final[op.Node] == nil {
				final[op.Node] = map[string]bool{}
			}
			for _, m := range op.Value.Members {
				final[op.Node][m.Group+"/"+m.ID+"@"+m.Owner] = true
			}
			lastRound[op.Node] = op.Index
		}
	}
	require.NotEmpty(t, acked)
	require.Positive(t, faults)
	require.Len(t, final, 3, "every node took final reads")
	for node, set := range final {
		for k := range acked {
			require.True(t, set[k], "%s lacks acknowledged %s", node, k)
		}
	}
}
