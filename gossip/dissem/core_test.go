package dissem

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig("n1").Validate())
	require.NoError(t, Config{Self: "n1"}.Validate(), "zero fields take the defaults")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no self", func(c *Config) { c.Self = "" }, "Self is empty"},
		{"long self", func(c *Config) { c.Self = strings.Repeat("x", 256) }, "Self is 256 bytes"},
		{"strategy", func(c *Config) { c.Strategy = 9 }, "unknown Strategy 9"},
		{"directmax", func(c *Config) { c.DirectMax = -1 }, "DirectMax -1 is negative"},
		{"fanout", func(c *Config) { c.FanOut = 65 }, "FanOut 65 is outside 0..64"},
		{"eager", func(c *Config) { c.Eager = -2 }, "Eager -2 is outside"},
		{"lazy", func(c *Config) { c.Lazy = 100 }, "Lazy 100 is outside"},
		{"announce", func(c *Config) { c.AnnounceEvery = time.Microsecond }, "AnnounceEvery 1µs is below 1ms"},
		{"graft", func(c *Config) { c.GraftTimeout = -time.Second }, "GraftTimeout -1s is below"},
		{"retain", func(c *Config) { c.Retain = 5 * time.Millisecond }, "Retain 5ms is shorter than GraftTimeout 10ms"},
		{"pruneafter", func(c *Config) { c.PruneAfter = 17 }, "PruneAfter 17 is outside 0..16"},
		{"ringlinks", func(c *Config) { c.RingLinks = 3 }, "RingLinks 3 is outside 0..2"},
		{"maxretained", func(c *Config) { c.MaxRetained = -1 }, "MaxRetained -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("n1")
			tc.edit(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, "dissem: invalid config: "+tc.want)
			_, err = New(c, newSetView(nil), rand.New(rand.NewPCG(1, 1)))
			require.ErrorIs(t, err, ErrInvalidConfig, "New validates")
		})
	}
}

func TestNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	_, err := New(Config{Self: "n1"}, nil, rng)
	require.True(t, errors.Is(err, ErrNilView), "got %v", err)
	_, err = New(Config{Self: "n1"}, newSetView(nil), nil)
	require.ErrorIs(t, err, ErrNilRand)
	c, err := New(Config{Self: "n1", Eager: 3}, newSetView(nil), rng)
	require.NoError(t, err)
	got := c.Config()
	want := DefaultConfig("n1")
	want.Eager = 3
	require.Equal(t, want, got, "zero fields take the defaults, set ones stay")
	_, ok := c.NextDeadline()
	require.False(t, ok, "a new core has no timer")
}

func TestSize(t *testing.T) {
	id := MsgID{"n1", 7} // 1+2 + 8 = 11 bytes
	for _, tc := range []struct {
		name string
		m    Message
		want int
	}{
		// header 8, from "n1" 3, to "n22" 4
		{"ihave", Message{Kind: KindIHave, From: "n1", To: "n22", IDs: []MsgID{id, id}}, 8 + 3 + 4 + 2*11},
		{"prune empty", Message{Kind: KindPrune, From: "n1", To: "n22"}, 8 + 3 + 4},
		{"gossip", Message{Kind: KindGossip, From: "n1", To: "n22", ID: id, Payload: make([]byte, 100)}, 8 + 3 + 4 + 11 + 4 + 100},
		{"tree", Message{Kind: KindGossip, From: "n1", To: "n22", ID: id, RelayTo: []string{"a", "bcd"}}, 8 + 3 + 4 + 11 + 4 + 2 + 4},
	} {
		require.Equal(t, tc.want, tc.m.Size(), tc.name)
	}
}

// TestIHaveBatches: what a new ring link is offered goes out in IHAVEs of
// at most MaxIDs ids, asking for acknowledgement.
func TestIHaveBatches(t *testing.T) {
	view := newSetView([]string{"n3"})
	c, err := New(Config{Self: "n1", Strategy: Plumtree}, view, rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, err)
	now := testEpoch
	for i := range 1300 {
		c.Broadcast(now, MsgID{"n1", uint64(i)}, []byte("x"))
	}
	out, del := c.Ready()
	require.Len(t, del, 1300)
	require.Len(t, out, 1300, "one push per change to the only peer")
	require.Equal(t, "n3", c.ring)
	view.add("n2") // closer after n1 than n3: the new ring link
	c.PeerUp("n2")
	require.Equal(t, "n2", c.ring)
	at, ok := c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, now.Add(DefaultAnnounceEvery), at)
	c.Tick(at)
	out, _ = c.Ready()
	var sizes []int
	for _, m := range out {
		require.Equal(t, KindIHave, m.Kind)
		require.Equal(t, "n2", m.To)
		require.True(t, m.WantAck)
		sizes = append(sizes, len(m.IDs))
	}
	require.Equal(t, []int{512, 512, 276}, sizes)
}

// TestRetentionBounds: MaxRetained drops the oldest first; Retain expires
// the rest, after which an old id is new again.
func TestRetentionBounds(t *testing.T) {
	c, err := New(Config{Self: "n1", Strategy: Direct, MaxRetained: 3}, newSetView([]string{"n2"}), rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, err)
	now := testEpoch
	for i := range 5 {
		c.Step(now, Message{Kind: KindGossip, From: "n2", To: "n1", ID: MsgID{"n2", uint64(i)}, Strategy: Direct})
	}
	require.Equal(t, 3, c.Retained())
	require.EqualValues(t, 2, c.Stats().Evicted)
	c.Step(now, Message{Kind: KindGossip, From: "n2", ID: MsgID{"n2", 4}, Strategy: Direct})
	require.EqualValues(t, 1, c.Stats().Duplicates, "a retained id is a duplicate")
	at, ok := c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, now.Add(DefaultRetain+DefaultRetain/8), at)
	c.Tick(at)
	require.Equal(t, 0, c.Retained())
	require.EqualValues(t, 3, c.Stats().Expired)
	_, ok = c.NextDeadline()
	require.False(t, ok)
}

// TestPendingBound: announcements of ids never sent keep at most
// MaxRetained pending grafts, each with at most MaxAnnouncers announcers.
func TestPendingBound(t *testing.T) {
	var peers []string
	for i := range 20 {
		peers = append(peers, string(rune('a'+i)))
	}
	c, err := New(Config{Self: "z", Strategy: Plumtree, MaxRetained: 100}, newSetView(peers), rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, err)
	now := testEpoch
	for round := range 10 {
		for _, p := range peers {
			ids := make([]MsgID, MaxIDs)
			for i := range ids {
				ids[i] = MsgID{"x", uint64(round*MaxIDs + i%50)}
			}
			c.Step(now, Message{Kind: KindIHave, From: p, IDs: ids})
		}
	}
	require.Equal(t, 100, c.grafts.len())
	for _, p := range c.grafts.byID {
		require.LessOrEqual(t, len(p.announcers), MaxAnnouncers)
	}
	require.LessOrEqual(t, len(c.grafts.timer), 2*100+64+1)
	require.Positive(t, c.Stats().PendingDropped)
}

// plainView hides a View's Next, so the core scans it.
type plainView struct{ View }

// TestSortedViewRing: the ring link a SortedView gives is the one the scan
// finds: the next name after self, wrapping around.
func TestSortedViewRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 200 {
		n := 1 + rng.IntN(30)
		all := make([]string, n)
		idx := map[string]int{}
		for i := range all {
			all[i] = string(rune('a' + i))
			idx[all[i]] = i
		}
		self := rng.IntN(n)
		sorted := &sharedView{all, idx, self}
		a, err := New(Config{Self: all[self], Strategy: Plumtree}, sorted, rand.New(rand.NewPCG(1, 1)))
		require.NoError(t, err)
		b, err := New(Config{Self: all[self], Strategy: Plumtree}, plainView{sorted}, rand.New(rand.NewPCG(1, 1)))
		require.NoError(t, err)
		want := ""
		if n > 1 {
			want = all[(self+1)%n]
		}
		require.Equal(t, want, a.scanRing(), "SortedView, self %s of %d", all[self], n)
		require.Equal(t, want, b.scanRing(), "scan, self %s of %d", all[self], n)
	}
}

// TestRingFollowsPeerUps: after any sequence of peers coming up and going
// down, the ring links PeerUp keeps by its constant-time test (no scan of
// the View) are the ones a scan finds, whenever they are not marked for
// the next flush's scan.
func TestRingFollowsPeerUps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 300 {
		n := 2 + rng.IntN(20)
		all := make([]string, n)
		for i := range all {
			all[i] = fmt.Sprintf("n%02d", i)
		}
		self := all[rng.IntN(n)]
		view := newSetView(nil)
		for _, name := range all {
			if name != self && rng.IntN(2) == 0 {
				view.add(name)
			}
		}
		c, err := New(Config{Self: self, Strategy: Plumtree}, view, rand.New(rand.NewPCG(uint64(round), 1)))
		require.NoError(t, err)
		now := time.Unix(0, 0)
		c.Broadcast(now, MsgID{Origin: self, Seq: 1}, []byte("x"))
		for step := range 40 {
			name := all[rng.IntN(n)]
			if name == self {
				continue
			}
			if view.Has(name) {
				view.remove(name)
				c.PeerDown(name)
			} else {
				view.add(name)
				c.PeerUp(name)
			}
			if c.ringStale {
				now = now.Add(time.Second)
				c.Tick(now)
				c.Ready()
			}
			require.False(t, c.ringStale, "round %d step %d", round, step)
			require.Equal(t, c.scanRing(), c.ring, "round %d step %d: ring of %s in %v", round, step, self, view.names)
			require.Equal(t, c.scanRing2(), c.ring2, "round %d step %d: second ring link of %s in %v", round, step, self, view.names)
		}
	}
}
