package dissem

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// graftDue returns when a core seeded with seed first grafts an id it was
// told of by one IHAVE at t0.
func graftDue(t *testing.T, cfg Config, seed uint64, t0 time.Time) time.Time {
	t.Helper()
	var names []string
	for i := 1; i <= 10; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	c, err := New(cfg, newSetView(names), rand.New(rand.NewPCG(seed, 1)))
	require.NoError(t, err)
	c.Step(t0, Message{Kind: KindIHave, From: "n2", To: "n1", IDs: []MsgID{{Origin: "n9", Seq: 1}}})
	due, ok := c.NextDeadline()
	require.True(t, ok, "a pending graft sets a deadline")
	c.Tick(due)
	out, _ := c.Ready()
	require.Len(t, out, 1)
	require.Equal(t, KindGraft, out[0].Kind, "the deadline is the graft's")
	return due
}

// TestGraftSpread: nodes told of a missing id at the same moment graft it
// at different moments, between GraftTimeout and twice that after the
// IHAVE (so one graft's payload can reach the others first); with
// NoGraftSpread exactly GraftTimeout after.
func TestGraftSpread(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	cfg := Config{Self: "n1", Strategy: Plumtree}
	seen := map[time.Duration]bool{}
	for seed := range uint64(20) {
		d := graftDue(t, cfg, seed, t0).Sub(t0)
		require.GreaterOrEqual(t, d, DefaultGraftTimeout)
		require.LessOrEqual(t, d, 2*DefaultGraftTimeout)
		seen[d] = true
	}
	require.Greater(t, len(seen), 10, "20 seeds give (nearly) 20 different moments")

	cfg.NoGraftSpread = true
	for seed := range uint64(5) {
		require.Equal(t, DefaultGraftTimeout, graftDue(t, cfg, seed, t0).Sub(t0))
	}
}

// TestPresets: DefaultConfig is the LAN preset, WANConfig the WAN one;
// both are valid and differ only in their timings.
func TestPresets(t *testing.T) {
	lan, wan := DefaultConfig("n1"), WANConfig("n1")
	require.NoError(t, lan.Validate())
	require.NoError(t, wan.Validate())
	require.Equal(t, 10*time.Millisecond, lan.GraftTimeout)
	require.Equal(t, 5*time.Millisecond, lan.AnnounceEvery)
	require.Equal(t, WANGraftTimeout, wan.GraftTimeout)
	require.Equal(t, WANAnnounceEvery, wan.AnnounceEvery)
	wan.GraftTimeout, wan.AnnounceEvery = lan.GraftTimeout, lan.AnnounceEvery
	require.Equal(t, lan, wan)
}

// wantAcked broadcasts one id at c and returns the peers that were asked
// to acknowledge it (by its push or by the IHAVE of the next flush).
func wantAcked(t *testing.T, c *Core, now time.Time, seq uint64) []string {
	t.Helper()
	c.Broadcast(now, MsgID{Origin: "n1", Seq: seq}, []byte("x"))
	out, _ := c.Ready()
	due, ok := c.NextDeadline()
	require.True(t, ok)
	c.Tick(due)
	more, _ := c.Ready()
	var asked []string
	for _, m := range append(out, more...) {
		if m.WantAck && !slices.Contains(asked, m.To) {
			asked = append(asked, m.To)
		}
	}
	slices.Sort(asked)
	return asked
}

// TestSecondRingLink: with RingLinks 2 a node's offers to the next two
// names after it are acknowledged (so a node whose ring predecessor
// crashed undetected is still re-told what it missed by the one before);
// when the first goes down, the next two take its place.
func TestSecondRingLink(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	names := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	for _, tc := range []struct {
		links      int
		want, down []string
	}{
		{1, []string{"n2"}, []string{"n3"}},
		{2, []string{"n2", "n3"}, []string{"n3", "n4"}},
	} {
		view := newSetView(names)
		c, err := New(Config{Self: "n1", Strategy: Plumtree, Eager: 1, Lazy: 1, RingLinks: tc.links},
			view, rand.New(rand.NewPCG(1, 1)))
		require.NoError(t, err)
		require.Equal(t, tc.want, wantAcked(t, c, t0, 1), "RingLinks %d", tc.links)
		view.remove("n2")
		c.PeerDown("n2")
		require.Equal(t, tc.down, wantAcked(t, c, t0.Add(time.Second), 2), "RingLinks %d after n2 is down", tc.links)
	}
}
