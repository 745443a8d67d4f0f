package gossip

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// TestStatsTrafficByKind: deltas, relays, digests and leave announcements
// are counted by kind where they are sent and where they are received;
// the totals by kind agree with the older per-path counters, and the
// transport counts memberlist's traffic besides.
func TestStatsTrafficByKind(t *testing.T) {
	// FanOut 2 with three peers: n0 sends its deltas down a relay tree
	// (one relay message naming the third peer, plain deltas to the other).
	nodes := startNodes(t, 4, func(c *Config) { c.FanOut = 2 })
	n0, n2, n3 := nodes[0], nodes[2], nodes[3]
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.ml.NumMembers() != 4 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, n0.Join("default", "room", id, ""))
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes[1:] {
			if len(members(n, "default", "room")) != 3 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond)

	s0 := n0.Stats()
	require.Positive(t, s0.Sent[KindRelay].Messages, "n0 sends down a relay tree")
	require.Positive(t, s0.Sent[KindDeltas].Messages, "and plain deltas to the peer alone in its group")
	require.GreaterOrEqual(t, s0.Sent[KindRelay].Bytes, s0.Sent[KindRelay].Messages*int64(perDeltaOverhead))
	var relaysIn, forwarded int64
	for _, n := range nodes[1:] {
		relaysIn += n.Stats().Received[KindRelay].Messages
		forwarded += n.Stats().Sent[KindDeltas].Messages
	}
	require.Positive(t, relaysIn, "a peer received the relay message")
	require.Positive(t, forwarded, "the relaying peer passed the deltas on")

	// Anti-entropy: rounds tick, digests go out and come in as sync.
	require.Eventually(t, func() bool {
		s0, s2 := n0.Stats(), n2.Stats()
		return s0.AntiEntropyRounds >= 2 && s0.Sent[KindSync].Messages > 0 && s2.Received[KindSync].Messages > 0
	}, 5*time.Second, 20*time.Millisecond)

	// The kinds sent through memberlist add up to the per-path counters
	// (read until no send lands between the loads).
	for i, n := range nodes {
		require.Eventually(t, func() bool {
			s := n.Stats()
			var msgs, bytes int64
			for _, k := range []MessageKind{KindDeltas, KindRelay, KindSync} {
				msgs += s.Sent[k].Messages
				bytes += s.Sent[k].Bytes
			}
			return msgs == s.PacketsSent+s.ReliableSent && bytes == s.BytesSent
		}, 5*time.Second, time.Millisecond, "n%d", i)
	}

	// The transport sees every packet and stream, memberlist's own too.
	tr := n0.Stats().Transport
	require.Greater(t, tr.PacketsSent, s0.PacketsSent, "probes and membership gossip besides roster's packets")
	require.Positive(t, tr.PacketsReceived)
	require.GreaterOrEqual(t, tr.PacketBytesSent, tr.PacketsSent)
	require.GreaterOrEqual(t, tr.PacketBytesReceived, tr.PacketsReceived)
	require.Positive(t, tr.StreamsOpened+tr.StreamsAccepted, "joining runs a push/pull stream")

	// A graceful close announces the leave to every alive peer.
	before := n0.Stats().Received[KindLeaving].Messages
	require.NoError(t, n3.Close(context.Background()))
	require.Equal(t, int64(3), n3.Stats().Sent[KindLeaving].Messages, "one to each alive peer")
	require.Eventually(t, func() bool { return n0.Stats().Received[KindLeaving].Messages == before+1 }, 5*time.Second, 5*time.Millisecond)
}

// TestStatsHeld: a delta that comes after a gap in its owner's counters is
// held (Scope.Held, Stats.HeldBack) until the gap fills.
func TestStatsHeld(t *testing.T) {
	cfg := DefaultLocalConfig("dst")
	cfg.Incarnation = 1
	cfg.HoldBack = time.Minute // only the missing delta releases it
	n, err := New(cfg, (&eventLog{}).sink)
	require.NoError(t, err)
	defer n.Crash()
	n.mu.Lock()
	n.peers.Report("src", 1, "src:0", peerInfo{meta: nodeMeta{inc: 1}, node: &memberlist.Node{Name: "src"}}, true, time.Now())
	n.mu.Unlock()

	src, err := crdt.New(crdt.ReplicaID{Name: "src", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	first, err := src.Join("g", "a", nil, nil)
	require.NoError(t, err)
	second, err := src.Join("g", "b", nil, nil)
	require.NoError(t, err)
	msg := func(d *crdt.Delta) []byte { return encodeDeltas("default", nil, [][]byte{crdt.EncodeDelta(d)}) }

	sc, _ := n.Scope("default")
	m2 := msg(second)
	n.handleMessage(m2, nil)
	held, size := sc.Held()
	require.Equal(t, 1, held)
	require.Positive(t, size)
	s := n.Stats()
	require.Equal(t, int64(1), s.HeldBack)
	require.Equal(t, Traffic{Messages: 1, Bytes: int64(len(m2))}, s.Received[KindDeltas])
	require.Empty(t, members(n, "default", "g"), "held, not shown")

	n.handleMessage(msg(first), nil)
	held, size = sc.Held()
	require.Zero(t, held)
	require.Zero(t, size)
	require.Len(t, members(n, "default", "g"), 2)
	require.Equal(t, int64(2), n.Stats().Received[KindDeltas].Messages)
}

// TestPeerLogs: peers joining, failing and leaving are logged at info
// level, once each, with the peer's name.
func TestPeerLogs(t *testing.T) {
	var buf syncbuf.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nodes := startNodes(t, 3, func(c *Config) {
		if c.Name == "n0" {
			c.Logger = lg
		}
	})
	require.Eventually(t, func() bool { return nodes[0].ml.NumMembers() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, nodes[1].Close(context.Background()))
	nodes[2].Crash()
	lines := func(msg, peer string) int {
		n := 0
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "level=INFO") && strings.Contains(l, "msg=\""+msg+"\"") && strings.Contains(l, "peer="+peer+" ") {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return lines("peer left", "n1") == 1 && lines("peer failed", "n2") == 1 }, 10*time.Second, 10*time.Millisecond, "%s", &buf)
	require.Equal(t, 1, lines("peer joined", "n1"), "%s", &buf)
	require.Equal(t, 1, lines("peer joined", "n2"), "%s", &buf)
	require.Zero(t, lines("peer failed", "n1"), "a graceful leave is not a failure")
	require.Contains(t, buf.String(), "component=gossip node=n0")
}
