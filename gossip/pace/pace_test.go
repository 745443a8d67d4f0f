package pace

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestRoundProperties: under any facts, a round picks a peer in range,
// never sends while a transfer flows in, skips a busy scope at most
// MaxBusy rounds in a row, and sends a root only when it fits.
func TestRoundProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := New(Config{Interval: time.Second, RangeRootMin: rapid.IntRange(-1, 100).Draw(t, "rootmin")})
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		now := time.Unix(0, 0)
		busyRun := map[string]int{}
		for range rapid.IntRange(1, 100).Draw(t, "rounds") {
			scope := rapid.SampledFrom([]string{"s", "t"}).Draw(t, "scope")
			f := Facts{
				Transferring: rapid.Bool().Draw(t, "transferring"),
				Merging:      rapid.Bool().Draw(t, "merging"),
				Peers:        rapid.IntRange(0, 5).Draw(t, "peers"),
				CaughtUp:     rapid.Bool().Draw(t, "caughtUp"),
				Unsynced:     rapid.Bool().Draw(t, "unsynced"),
				Replicas:     rapid.IntRange(0, 200).Draw(t, "replicas"),
			}
			now = now.Add(time.Duration(rapid.IntRange(0, 2000).Draw(t, "ms")) * time.Millisecond)
			d := p.Round(now, scope, f, rng)
			if f.Transferring {
				require.Equal(t, Wait, d.Action)
				continue
			}
			if d.Action == Busy {
				busyRun[scope]++
				require.LessOrEqual(t, busyRun[scope], MaxBusy)
				continue
			}
			busyRun[scope] = 0
			switch d.Action {
			case Digest, Root:
				require.Positive(t, f.Peers)
				require.GreaterOrEqual(t, d.Peer, 0)
				require.Less(t, d.Peer, f.Peers)
				require.Equal(t, d.Action == Root, f.CaughtUp && !f.Unsynced && p.cfg.RangeRootMin >= 0 && f.Replicas >= p.cfg.RangeRootMin)
			case Alone:
				require.Zero(t, f.Peers)
			case Wait:
				require.False(t, f.CaughtUp, "a caught-up node waits only for a transfer")
			}
		}
	})
}

// TestTrackedBounded: greetings and gap digests for ever new peers and
// owners (made-up names) keep at most MaxTracked entries.
func TestTrackedBounded(t *testing.T) {
	p := New(Config{Interval: time.Second})
	now := time.Unix(0, 0)
	for i := range 3 * MaxTracked {
		require.True(t, p.MayGreet(now, "s", fmt.Sprint("peer", i)))
		require.True(t, p.MayAskOwner(now, "s", fmt.Sprint("owner", i)))
		require.LessOrEqual(t, len(p.greeted), MaxTracked)
		require.LessOrEqual(t, len(p.askedOwner), MaxTracked)
	}
}
