package memnet

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// fastConfig is memberlist's local preset with timings short enough for a
// test: a node is suspected within a probe or two and declared dead within
// about a second.
func fastConfig(name string, tr *Transport) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.Transport = tr
	c.LogOutput = io.Discard
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
	c.SuspicionMult = 2
	c.TCPTimeout = 200 * time.Millisecond
	return c
}

// allSee reports whether every memberlist in set counts want live members.
func allSee(want int, set ...*memberlist.Memberlist) func() bool {
	return func() bool {
		for _, m := range set {
			if m.NumMembers() != want {
				return false
			}
		}
		return true
	}
}

// TestMemberlistCluster runs five real memberlist nodes over a network with
// mild loss, delay (so reordering) and duplication: they all join; an
// isolated node is declared dead by the others (and sees itself alone);
// after HealAll a Join from the isolated node brings everyone back to five;
// everything shuts down without leaking a goroutine.
func TestMemberlistCluster(t *testing.T) {
	defer goleak.VerifyNone(t)

	const size = 5
	n := New(Config{Seed: 2024, Loss: 0.02, Duplicate: 0.02, MaxDelay: 2 * time.Millisecond})
	t.Logf("memnet seed %d", n.Seed())
	defer n.Shutdown()

	ms := make([]*memberlist.Memberlist, 0, size)
	defer func() {
		for _, m := range ms {
			require.NoError(t, m.Shutdown())
		}
	}()
	for i := 0; i < size; i++ {
		name := fmt.Sprintf("n%d", i)
		tr, err := n.NewTransport(name)
		require.NoError(t, err)
		m, err := memberlist.Create(fastConfig(name, tr))
		require.NoError(t, err)
		ms = append(ms, m)
		require.Equal(t, tr.Addr(), m.LocalNode().Address())
		if i > 0 {
			_, err := m.Join([]string{n.Addr("n0")})
			require.NoError(t, err)
		}
	}
	require.Eventually(t, allSee(size, ms...), 10*time.Second, 10*time.Millisecond)

	isolated, rest := ms[size-1], ms[:size-1]
	n.Isolate(isolated.LocalNode().Name)
	require.Eventually(t, allSee(size-1, rest...), 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, allSee(1, isolated), 10*time.Second, 10*time.Millisecond)
	for _, m := range rest {
		for _, node := range m.Members() {
			require.NotEqual(t, isolated.LocalNode().Name, node.Name, "dead nodes are not listed as members")
		}
	}
	s := n.Stats()
	require.NotZero(t, s.PacketsCut)
	require.NotZero(t, s.StreamsRefused, "probes fall back to streams, which are refused across the cut")

	n.HealAll()
	_, err := isolated.Join([]string{n.Addr("n0")})
	require.NoError(t, err)
	require.Eventually(t, allSee(size, ms...), 10*time.Second, 10*time.Millisecond)

	s = n.Stats()
	t.Logf("%+v", s)
	require.NotZero(t, s.PacketsLost)
	require.NotZero(t, s.PacketsDuplicated)
	require.NotZero(t, s.StreamsOpened)
}

// TestMemberlistPartitionHeals splits a four-node cluster two against two;
// each side declares the other dead; after HealAll a Join across the former
// partition merges it again.
func TestMemberlistPartitionHeals(t *testing.T) {
	defer goleak.VerifyNone(t)

	n := New(Config{Seed: 77})
	defer n.Shutdown()
	names := []string{"a", "b", "c", "d"}
	ms := make([]*memberlist.Memberlist, 0, len(names))
	defer func() {
		for _, m := range ms {
			require.NoError(t, m.Shutdown())
		}
	}()
	for i, name := range names {
		tr, err := n.NewTransport(name)
		require.NoError(t, err)
		m, err := memberlist.Create(fastConfig(name, tr))
		require.NoError(t, err)
		ms = append(ms, m)
		if i > 0 {
			_, err := m.Join([]string{n.Addr("a")})
			require.NoError(t, err)
		}
	}
	require.Eventually(t, allSee(4, ms...), 10*time.Second, 10*time.Millisecond)

	n.Partition(names[:2], names[2:])
	require.Eventually(t, allSee(2, ms...), 10*time.Second, 10*time.Millisecond)

	n.HealAll()
	_, err := ms[2].Join([]string{n.Addr("a")})
	require.NoError(t, err)
	require.Eventually(t, allSee(4, ms...), 10*time.Second, 10*time.Millisecond)
}
