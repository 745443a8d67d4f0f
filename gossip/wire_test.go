package gossip

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/dissem"
	"github.com/roster-io/roster/gossip/memnet"
	"github.com/stretchr/testify/require"
)

// seedMessages returns one valid message of every kind.
func seedMessages(t testing.TB) [][]byte {
	st, err := crdt.New(crdt.ReplicaID{Name: "a", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	d, err := st.Join("room", "alice", crdt.Meta{"k": "v"}, nil)
	require.NoError(t, err)
	dig := crdt.EncodeDigest(st.Digest())
	return [][]byte{
		encodeDeltas("chat", nil, [][]byte{crdt.EncodeDelta(d)}),
		encodeDeltas("chat", []string{"b", "c"}, [][]byte{crdt.EncodeDelta(d)}),
		encodeSync("chat", "a", true, dig, []string{"w"}),
		encodeSyncIn("chat", "a", false, crdt.EncodeDigest(st.DigestIn([]int{3, 200})), nil, []int{3, 200}),
		encodeSync("chat", "a", true, crdt.EncodeRangeDigest(st.RangeDigest()), nil),
		encodeLeaving("a", 1),
		encodePlum("chat", "a", dissem.Message{Kind: dissem.KindGossip, ID: dissem.MsgID{Origin: "a", Seq: 7}, Round: 2,
			Payload: encodeDeltas("chat", nil, [][]byte{crdt.EncodeDelta(d)}), WantAck: true}),
		encodePlum("chat", "a", dissem.Message{Kind: dissem.KindIHave, IDs: []dissem.MsgID{{Origin: "a", Seq: 7}, {Origin: "b", Seq: 1}}}),
		encodePlum("chat", "a", dissem.Message{Kind: dissem.KindPrune}),
	}
}

// FuzzDecodeMessage: no input panics the message decoder or the decoders
// of what it carries; what decodes re-decodes identically.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range seedMessages(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMessage)
			return
		}
		for _, p := range m.payloads {
			_, _ = crdt.DecodeDelta(p)
			_, _ = crdt.DecodeDigest(p)
			_, _ = crdt.DecodeRangeDigest(p)
			_, _, _ = crdt.DecodeRangeRoot(p)
		}
		for i, b := range m.buckets {
			require.True(t, b >= 0 && b < crdt.RangeBuckets && (i == 0 || b > m.buckets[i-1]), "buckets %v", m.buckets)
		}
	})
}

// TestHostileMessages feeds a live node thousands of corrupted messages
// (bit flips, truncations, splices of valid ones): it must neither panic
// nor change its state, and must count them as decode errors.
func TestHostileMessages(t *testing.T) {
	net := memnet.New(memnet.Config{Seed: 9})
	defer net.Shutdown()
	tr, err := net.NewTransport("victim")
	require.NoError(t, err)
	cfg := DefaultLocalConfig("victim")
	cfg.Incarnation = 1
	cfg.Transport = tr
	cfg.Scopes = []string{"chat"}
	n, err := New(cfg, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	require.NoError(t, n.Join("chat", "room", "mine", ""))
	sc, _ := n.Scope("chat")
	before := ""
	sc.Read(func(st *crdt.State) { before = st.Describe(false) })

	seeds := seedMessages(t)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		switch rng.IntN(3) {
		case 0: // flip bytes
			for k := 0; k < 1+rng.IntN(4); k++ {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		case 1: // truncate
			b = b[:rng.IntN(len(b))]
		default: // splice two messages
			o := seeds[rng.IntN(len(seeds))]
			b = append(b[:rng.IntN(len(b))], o[rng.IntN(len(o)):]...)
		}
		n.handleMessage(b, nil)
	}
	after := ""
	sc.Read(func(st *crdt.State) { after = st.Describe(false) })
	// Corrupted deltas of replica "a" may still be valid deltas of some
	// replica; what must hold is that the local slice is untouched and
	// nothing crashed.
	require.Contains(t, after, "victim#1")
	require.Contains(t, before, "victim#1")
	var mine []string
	sc.Read(func(st *crdt.State) {
		for _, m := range st.LocalMembers("room") {
			mine = append(mine, m.ID)
		}
	})
	require.Equal(t, []string{"mine"}, mine)
	st := n.Stats()
	require.Greater(t, st.DecodeErrors, int64(1000), "garbage is counted")
}

// TestSyncStreamingField: a digest message carries the sender's streaming
// replicas; one without the field (6 fields, as before it existed) decodes
// with none; an invalid name in it is rejected.
func TestSyncStreamingField(t *testing.T) {
	m, err := decodeMessage(encodeSync("chat", "a", true, []byte{1}, []string{"w", "x"}))
	require.NoError(t, err)
	require.Equal(t, []string{"w", "x"}, m.streaming)
	require.Equal(t, [][]byte{{1}}, m.payloads)

	old := encodeSync("chat", "a", false, []byte{1}, nil)
	old[0] = 0x96          // a 6-element array header
	old = old[:len(old)-1] // without the (empty) streaming list
	m, err = decodeMessage(old)
	require.NoError(t, err)
	require.Nil(t, m.streaming)
	require.False(t, m.wantReply)

	_, err = decodeMessage(encodeSync("chat", "a", true, []byte{1}, []string{""}))
	require.ErrorIs(t, err, ErrMessage)
}

// TestSyncBucketsField: a narrowed digest names its buckets in an eighth
// field; a list that is empty, too long, out of range, unsorted or
// repeated is rejected.
func TestSyncBucketsField(t *testing.T) {
	m, err := decodeMessage(encodeSyncIn("chat", "a", true, []byte{1}, []string{"w"}, []int{0, 7, 255}))
	require.NoError(t, err)
	require.Equal(t, []int{0, 7, 255}, m.buckets)
	require.Equal(t, []string{"w"}, m.streaming)

	m, err = decodeMessage(encodeSyncIn("chat", "a", true, []byte{1}, nil, nil))
	require.NoError(t, err)
	require.Nil(t, m.buckets, "no buckets: the seven-field message")

	many := make([]int, crdt.RangeBuckets+1)
	for i := range many {
		many[i] = i
	}
	for name, bs := range map[string][]int{
		"out of range": {256},
		"unsorted":     {9, 3},
		"repeated":     {4, 4},
		"negative":     {-1},
		"too many":     many,
	} {
		_, err := decodeMessage(encodeSyncIn("chat", "a", true, []byte{1}, nil, bs))
		require.ErrorIs(t, err, ErrMessage, name)
	}
	empty := encodeSyncIn("chat", "a", true, []byte{1}, nil, []int{1})
	empty[len(empty)-2] = 0x90 // an empty list in place of [1]
	_, err = decodeMessage(empty[:len(empty)-1])
	require.ErrorIs(t, err, ErrMessage, "empty bucket list")
}

// TestDecodeMessageHostileLengths: a packet whose string header claims far
// more bytes than it holds is rejected before anything is allocated for it
// (msgpack's DecodeString allocated a megabyte per try and kept what it
// grew in the pooled decoder: 40 packets of 8 bytes left 420 MiB live).
func TestDecodeMessageHostileLengths(t *testing.T) {
	pkt := []byte{0x94, wireVersion, msgDeltas, 0xdb, 0x20, 0, 0, 0} // scope: str32 of 512 MiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 40 {
		_, err := decodeMessage(pkt)
		require.ErrorIs(t, err, ErrMessage)
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "40 decodes allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
}

// TestPayloadsAliasMessage: a message's payloads are decoded as slices of
// it (no copy per message), and what is relayed, kept past the message's
// handling, is copied: changing the message afterwards leaves the copies
// as they were, and a payload that failed to decode is not relayed.
func TestPayloadsAliasMessage(t *testing.T) {
	p1, p2 := []byte("first delta"), []byte("second")
	msg := encodeDeltas("chat", []string{"x"}, [][]byte{p1, p2})
	m, err := decodeMessage(msg)
	require.NoError(t, err)
	require.Equal(t, [][]byte{p1, p2}, m.payloads)
	for i := range msg {
		msg[i] = 0xee
	}
	require.Equal(t, bytes.Repeat([]byte{0xee}, len(p1)), m.payloads[0], "payloads alias the message")

	m, err = decodeMessage(encodeDeltas("chat", []string{"x"}, [][]byte{p1, p2}))
	require.NoError(t, err)
	kept := relayCopies(m.payloads, []*crdt.Delta{{}, nil})
	for _, p := range m.payloads {
		clear(p)
	}
	require.Equal(t, [][]byte{p1}, kept, "the relay keeps copies of the decoded payloads only")
	require.Equal(t, len(p2), cap(m.payloads[1]), "a payload's capacity ends with it")
}
