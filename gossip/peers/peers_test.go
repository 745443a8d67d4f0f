package peers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestTableInvariants: under any sequence of reports, leave
// announcements, sightings as owner and expiries, a node's incarnation
// never moves back, the rejoin loop never calls a node that is alive or
// left, a node is forgotten at most once per time down, and Version
// counts the reports that were news or not.
func TestTableInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tab := New[int]("self")
		names := []string{"a", "b", "c", "self"}
		now := time.Unix(0, 0)
		maxInc := map[string]uint64{}
		forgotten := map[string]int{}
		reports := uint64(0)
		for i := range rapid.IntRange(1, 60).Draw(t, "steps") {
			name := rapid.SampledFrom(names).Draw(t, "name")
			inc := rapid.Uint64Range(1, 4).Draw(t, "inc")
			now = now.Add(time.Duration(rapid.IntRange(0, 15).Draw(t, "s")) * time.Second)
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				alive := rapid.Bool().Draw(t, "alive")
				e, news := tab.Report(name, inc, name+":1", i, alive, now)
				if name != "self" {
					reports++
				}
				if news {
					require.GreaterOrEqual(t, e.Inc, maxInc[name])
					require.Equal(t, alive, e.Alive)
					if alive {
						forgotten[name] = 0
					}
				}
			case 1:
				tab.Leaving(name, inc, now)
			case 2:
				tab.Owner(name, inc, now)
			case 3:
				for _, r := range tab.Expire(now, 20*time.Second) {
					forgotten[r.Name]++
					require.Equal(t, 1, forgotten[r.Name], "%s forgotten twice while down", r.Name)
				}
			}
			tab.Each(func(p *Peer[int]) {
				require.NotEqual(t, "self", p.Name)
				require.GreaterOrEqual(t, p.Inc, maxInc[p.Name], "%s's incarnation moved back", p.Name)
				maxInc[p.Name] = p.Inc
				if p.State == Alive {
					require.True(t, p.DownSince.IsZero())
					require.False(t, p.Forgotten)
				}
			})
			missing := tab.Missing(nil)
			tab.Each(func(p *Peer[int]) {
				if p.State == Alive || p.State == Left || !p.Reported() {
					require.NotContains(t, missing, p.Addr)
				} else {
					require.Contains(t, missing, p.Addr)
				}
			})
			require.True(t, slices.IsSorted(missing))
			require.Equal(t, reports, tab.Version())
		}
	})
}

// TestMissingSeeds: a seed is called until an alive peer answers to it,
// by address or by name.
func TestMissingSeeds(t *testing.T) {
	tab := New[struct{}]("self")
	seeds := []string{"h1:1", "n2", "h3:1"}
	require.Equal(t, []string{"h1:1", "h3:1", "n2"}, tab.Missing(seeds))
	tab.Report("n1", 1, "h1:1", struct{}{}, true, time.Unix(0, 0))
	tab.Report("n2", 1, "h2:1", struct{}{}, true, time.Unix(0, 0))
	require.Equal(t, []string{"h3:1"}, tab.Missing(seeds))
	tab.Report("n2", 1, "h2:1", struct{}{}, false, time.Unix(1, 0))
	require.Equal(t, []string{"h2:1", "h3:1", "n2"}, tab.Missing(seeds))
	for i := range 3 {
		tab.Owner(fmt.Sprint("ghost", i), 1, time.Unix(2, 0))
	}
	require.Equal(t, []string{"h2:1", "h3:1", "n2"}, tab.Missing(seeds), "owners never reported have no address to call")
}

// TestRejoinBackoff: failures double the wait up to Max, jittered within
// half to one and a half times it; a success or an empty check resets it.
func TestRejoinBackoff(t *testing.T) {
	rng := rapidRand()
	now := time.Unix(0, 0)
	r := NewRejoin(time.Second, 8*time.Second, now)
	require.Equal(t, now.Add(time.Second), r.Due())
	require.True(t, r.Check(now, 1, rng))
	require.True(t, r.Due().IsZero(), "nothing due while an attempt runs")
	require.False(t, r.Check(now, 1, rng), "one attempt at a time")
	want := time.Second
	for range 6 {
		r.Done(now, false, rng)
		want = min(2*want, 8*time.Second)
		wait := r.Due().Sub(now)
		require.GreaterOrEqual(t, wait, want/2)
		require.Less(t, wait, want/2+want)
		require.True(t, r.Check(now, 1, rng))
	}
	r.Done(now, true, rng)
	require.Less(t, r.Due().Sub(now), 1500*time.Millisecond)
}

func rapidRand() *rand.Rand { return rand.New(rand.NewPCG(9, 9)) }
