package gossip

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/pace"
	"github.com/stretchr/testify/require"
)

// TestAntiEntropyWaitsForQueuedMerges: while delta messages are queued for
// merging in a scope, its anti-entropy round is skipped (the digest would
// ask for what is already queued), at most pace.MaxBusy times in a row, and
// the node does not answer a digest with its own.
func TestAntiEntropyWaitsForQueuedMerges(t *testing.T) {
	nodes := startNodes(t, 2, func(cfg *Config) {
		cfg.AntiEntropyInterval = time.Hour // rounds run only when the test calls them
	})
	n := nodes[0]
	require.Eventually(t, func() bool { return len(n.scopePeers("default")) == 1 }, 10*time.Second, 10*time.Millisecond)
	n.caughtUp.Store("default", true)
	sc := n.scopes["default"]
	sent := func() int64 { return n.Stats().SyncsSent }
	// The digests the two nodes greet each other with (and a reply) are
	// sent when they see each other, which may be after the peer is
	// listed: wait until they are out and no more come.
	var last int64
	require.Eventually(t, func() bool {
		cur := sent()
		settled := cur > 0 && cur == last
		last = cur
		return settled
	}, 10*time.Second, 100*time.Millisecond, "the greeting digests")

	before := sent()
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "an idle scope runs its round")

	sc.merging.Add(1) // a delta message is being merged
	require.False(t, n.mayReply("default"))
	before = sent()
	for range pace.MaxBusy {
		n.antiEntropy()
	}
	require.Equal(t, before, sent(), "rounds run while merges are queued")
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "a busy scope must still run a round every %d ticks", pace.MaxBusy+1)
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "the busy count restarts after a forced round")

	sc.merging.Add(-1)
	require.True(t, n.mayReply("default"))
	n.antiEntropy()
	require.Equal(t, before+2, sent())
}

// TestMergeAllOneHold: the deltas of one message (a transfer's chunks)
// merge under one hold of the scope's lock, so a watch's resync cannot
// come between them (it resyncs once for a whole transfer, not once per
// chunk); their events reach the sink in several batches, at delta
// boundaries, for watches to drain meanwhile.
func TestMergeAllOneHold(t *testing.T) {
	chunks := decodedTransfer(t, 3000)
	probe := &holdProbe{}
	n := newProbedNode(t, probe)
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	n.mergeAll(probe.sc, chunks, nil)
	probe.check(t, 3000)
	require.Greater(t, probe.calls, 1, "events are handed over at delta boundaries")
}

// TestMergeAllWaits: with a wait, mergeAll merges each delta only once it
// is there: deltas after the decoders' first round that come late still
// merge, in order, under the same hold of the lock.
func TestMergeAllWaits(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	chunks := decodedTransfer(t, 3000)
	probe := &holdProbe{}
	n := newProbedNode(t, probe)
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	msg := make([]*crdt.Delta, len(chunks))
	n.mergeAll(probe.sc, msg, startParallel(len(chunks), func(i int) {
		if i >= 2 {
			time.Sleep(5 * time.Millisecond) // after the first round
		}
		msg[i] = chunks[i]
	}))
	probe.check(t, 3000)
	require.Zero(t, n.Stats().OutOfOrderChunks)
	n.scopes["default"].Locked(func(st *crdt.State) { require.Equal(t, 3000, st.Len()) })
}

// decodedTransfer returns the chunks of a transfer of n members over 10
// groups, more than three, as received: mergeAll takes decoded deltas.
func decodedTransfer(t *testing.T, n int) []*crdt.Delta {
	t.Helper()
	var chunks []*crdt.Delta
	for _, c := range filledSource(t, n, 10, "m").Snapshot(8 << 10) {
		d, err := crdt.DecodeDelta(crdt.EncodeDelta(c))
		require.NoError(t, err)
		chunks = append(chunks, d)
	}
	require.Greater(t, len(chunks), 3, "the transfer must be chunked for this test")
	return chunks
}

// holdProbe is a sink that checks that no other update of its scope runs
// between its calls: at its first call it starts one, which has to wait
// for the lock, and at every later call it checks that it has not run.
type holdProbe struct {
	sc          *Scope
	calls       int
	events      int
	done        chan struct{}
	interleaved bool
}

func (p *holdProbe) sink(_ string, evs []crdt.Event) {
	p.calls++
	p.events += len(evs)
	if p.done == nil {
		p.done = make(chan struct{})
		go func() {
			defer close(p.done)
			_ = p.sc.update(func(*crdt.State, crdt.Emit) error { return nil })
		}()
		time.Sleep(5 * time.Millisecond) // let it block on the lock
		return
	}
	select {
	case <-p.done:
		p.interleaved = true
	default:
	}
}

func (p *holdProbe) check(t *testing.T, events int) {
	t.Helper()
	require.NotNil(t, p.done, "the sink was never called")
	<-p.done
	require.Equal(t, events, p.events)
	require.False(t, p.interleaved, "another update ran between the message's deltas")
}

// newProbedNode starts node dst with probe as its sink, counting replica
// src as alive (so its members are shown, and evented).
func newProbedNode(t *testing.T, probe *holdProbe) *Node {
	t.Helper()
	cfg := DefaultLocalConfig("dst")
	cfg.Incarnation = 1
	n, err := New(cfg, func(scope string, evs []crdt.Event) { probe.sink(scope, evs) })
	require.NoError(t, err)
	probe.sc = n.scopes["default"]
	n.mu.Lock()
	n.peers.Report("src", 1, "src:0", peerInfo{meta: nodeMeta{inc: 1}, node: &memberlist.Node{Name: "src"}}, true, time.Now())
	n.mu.Unlock()
	return n
}

// TestSkipInFlightForgetsOldDigests: a replica whose top rose since the
// same peer's previous digest counts as still arriving only if that digest
// is recent. A peer choosing among many at random may last have written
// to us long ago; its stalled top must then be repaired at once, not
// taken for a stream in flight (a node of a 16-node cluster waited
// seconds for a lost delta that way).
func TestSkipInFlightForgetsOldDigests(t *testing.T) {
	owner, err := crdt.New(crdt.ReplicaID{Name: "w", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	for i := range 10 {
		d, err := owner.Join("g", fmt.Sprintf("m%d", i), nil, nil)
		require.NoError(t, err)
		_, err = st.Merge(d, nil)
		require.NoError(t, err)
	}
	sc := &Scope{name: "s", st: st}
	sc.notePrev() // our top for w is 10 as of the last round
	digest := func(top uint64) crdt.Digest {
		return crdt.Digest{Entries: []crdt.DigestEntry{{Name: "w", Incarnation: 1, Top: top}}}
	}
	now := time.Now()
	const window = time.Second
	topOf := func(d crdt.Digest) uint64 { return d.Entries[0].Top }

	// The peer's previous digest (top 5) is recent and its top rose to 8:
	// the rest is taken to be on its way.
	sc.skipInFlight("p", digest(5), nil, st, now, window)
	require.Equal(t, uint64(10), topOf(sc.skipInFlight("p", digest(8), nil, st, now.Add(100*time.Millisecond), window)))
	// The same rise seen against a digest older than the window: repaired.
	sc.skipInFlight("q", digest(5), nil, st, now, window)
	require.Equal(t, uint64(8), topOf(sc.skipInFlight("q", digest(8), nil, st, now.Add(5*time.Second), window)))
	// A top that did not move since a recent digest: repaired too.
	require.Equal(t, uint64(8), topOf(sc.skipInFlight("q", digest(8), nil, st, now.Add(5100*time.Millisecond), window)))
}

// TestRelayRefusedWithoutFanOut: a node whose own FanOut is 0 (relaying
// off) merges a relay message's deltas but passes nothing on: a relay
// request asks it to send packets on someone else's behalf, which a node
// that does not relay has no reason to do. Anti-entropy and piggy-backing
// are off, so the relay would be the only way to the named nodes.
func TestRelayRefusedWithoutFanOut(t *testing.T) {
	nodes := startNodes(t, 6, func(cfg *Config) {
		cfg.AntiEntropyInterval = time.Hour
		cfg.PiggybackQueue = 0
		if cfg.Name == "n0" {
			cfg.FanOut = 2
		}
	})
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.scopePeers("default")) != len(nodes)-1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // let the greetings of peers coming up go by
	before := nodes[0].Stats().PacketsSent
	require.NoError(t, nodes[0].Join("default", "room", "a", ""))
	// n0 deals n1..n5 into two groups, [n1 n3 n5] and [n2 n4], and sends
	// the first of each the delta with the rest of its group's names.
	require.Eventually(t, func() bool {
		return len(members(nodes[1], "default", "room")) == 1 && len(members(nodes[2], "default", "room")) == 1
	}, 5*time.Second, 5*time.Millisecond, "the relay's first hops never got the delta")
	require.Eventually(t, func() bool {
		return nodes[1].Stats().Forged+nodes[2].Stats().Forged == 2
	}, 5*time.Second, 5*time.Millisecond, "both first hops refuse to relay")
	for _, n := range nodes[3:] {
		require.Empty(t, members(n, "default", "room"), "%s got a copy through a node that does not relay", n.self.Name)
	}
	require.Equal(t, before+2, nodes[0].Stats().PacketsSent, "the writer sends FanOut copies")
}

// TestMergeDeltasParallelDecode: a message of several large deltas is
// decoded on all CPUs: with few deltas per CPU while the first ones merge,
// with many all before. Either way every delta still merges, in order (no
// chunk is stashed as out of order), under one hold of the lock, and one
// that fails to decode is counted and skipped. GOMAXPROCS is set to 2 so
// that the shapes take their paths on any machine.
func TestMergeDeltasParallelDecode(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	src := filledSource(t, 20000, 100, "member-")
	few := 32 << 10
	for len(src.Snapshot(few)) > 3 {
		few *= 2
	}
	for _, tc := range []struct {
		name       string
		chunkBytes int
		pipelined  bool
	}{{"few chunks", few, true}, {"many chunks", 32 << 10, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var payloads [][]byte
			size := 0
			for _, d := range src.Snapshot(tc.chunkBytes) {
				payloads = append(payloads, crdt.EncodeDelta(d))
				size += len(payloads[len(payloads)-1])
			}
			require.GreaterOrEqual(t, len(payloads), 2)
			require.GreaterOrEqual(t, size, parallelBytes, "the message must be decoded on all CPUs")
			// A malformed delta among them.
			payloads = slices.Insert(payloads, 1, []byte{0x93, 0x01, 0xff})
			require.Equal(t, tc.pipelined, len(payloads) <= 2*runtime.GOMAXPROCS(0), "%d payloads", len(payloads))

			probe := &holdProbe{}
			n := newProbedNode(t, probe)
			defer func() { require.NoError(t, n.Close(context.Background())) }()
			n.mergeDeltas("default", payloads, nil)
			probe.check(t, 20000)
			require.Equal(t, int64(1), n.Stats().DecodeErrors)
			require.Equal(t, int64(len(payloads)-1), n.Stats().DeltasReceived)
			require.Zero(t, n.Stats().OutOfOrderChunks)
			n.scopes["default"].Locked(func(st *crdt.State) { require.Equal(t, 20000, st.Len()) })
		})
	}
}

// TestStartParallel: startParallel returns before the items run; every item
// runs once; wait(i) returns only once fn(i) has, whatever order the
// items finish in; the goroutines end (goleak).
func TestStartParallel(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	wait := startParallel(3, func(int) { started.Add(1); <-release })
	close(release) // startParallel returned while every item was blocked
	for i := range 3 {
		wait(i)
	}
	require.Equal(t, int32(3), started.Load())

	for _, n := range []int{1, 2, 7, 40} {
		var ran [40]atomic.Int32
		wait := startParallel(n, func(i int) {
			if i%3 == 0 {
				time.Sleep(time.Millisecond) // finish out of order
			}
			ran[i].Add(1)
		})
		for i := n - 1; i >= 0; i-- { // waited for in any order
			wait(i)
			require.Equal(t, int32(1), ran[i].Load(), "item %d of %d", i, n)
		}
		for i := range n {
			wait(i) // again: returns at once
			require.Equal(t, int32(1), ran[i].Load(), "item %d of %d ran again", i, n)
		}
	}
}

// TestEncodeAll: chunks encoded concurrently come out as encoded one by
// one, in order.
func TestEncodeAll(t *testing.T) {
	src := filledSource(t, 2000, 7, "m")
	for _, ds := range [][]*crdt.Delta{src.Snapshot(1 << 10), src.Snapshot(0)[:1], nil} {
		enc := encodeAll(ds)
		require.Len(t, enc, len(ds))
		for i, d := range ds {
			require.Equal(t, crdt.EncodeDelta(d), enc[i], "chunk %d of %d", i, len(ds))
		}
	}
}

// filledSource returns a state of replica src (incarnation 1) holding n
// members, prefix0.., spread over groups groups g0...
func filledSource(t *testing.T, n, groups int, prefix string) *crdt.State {
	t.Helper()
	src, err := crdt.New(crdt.ReplicaID{Name: "src", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	for i := range n {
		_, err := src.Join(fmt.Sprintf("g%d", i%groups), fmt.Sprintf("%s%d", prefix, i), nil, nil)
		require.NoError(t, err)
	}
	return src
}

// TestGreetEveryPeerUp: a node greets every peer it sees come up, not only
// the first of an anti-entropy interval (after a partition heals, the
// other side's peers come up one by one and each needs its exchange at
// once), but the same peer at most once per interval.
func TestGreetEveryPeerUp(t *testing.T) {
	nodes := startNodes(t, 1, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	n := nodes[0]
	require.True(t, n.mayGreet("default", "a"))
	require.True(t, n.mayGreet("default", "b"), "a second peer up within the interval is greeted too")
	require.False(t, n.mayGreet("default", "a"), "a flapping peer is greeted once per interval")
	require.True(t, n.mayGreet("other", "a"))
}

// TestStreamingReplicas: a node names in its digest message the replicas
// whose top rose since its previous anti-entropy tick, and a peer answering
// leaves those out of the repair (they are still arriving); a replica whose
// top stopped, as behind a lost delta, is not named, so it is repaired.
func TestStreamingReplicas(t *testing.T) {
	owner, err := crdt.New(crdt.ReplicaID{Name: "w", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	other, err := crdt.New(crdt.ReplicaID{Name: "x", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	recv, err := crdt.New(crdt.ReplicaID{Name: "recv", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	join := func(src *crdt.State, n int) {
		for range n {
			d, err := src.Join("g", fmt.Sprintf("%s-%d", src.Local().Name, src.Len()), nil, nil)
			require.NoError(t, err)
			_, err = recv.Merge(d, nil)
			require.NoError(t, err)
		}
	}
	join(owner, 3)
	join(other, 3)
	sc := &Scope{name: "s", st: recv}
	sc.notePrev()  // the previous tick: w at 3, x at 3
	join(owner, 2) // w still arriving; x stopped
	sc.Read(func(st *crdt.State) {
		require.Equal(t, []string{"w"}, sc.streaming(st.Digest()))
	})

	// The peer answering (it holds w up to 10 and x up to 6) with no
	// previous digest of ours to go by.
	server, err := crdt.New(crdt.ReplicaID{Name: "srv", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	for _, src := range []*crdt.State{owner, other} {
		for range 5 {
			_, err := src.Join("g", fmt.Sprintf("%s-%d", src.Local().Name, src.Len()), nil, nil)
			require.NoError(t, err)
		}
		for _, d := range src.Snapshot(0) {
			_, err := server.Merge(d, nil)
			require.NoError(t, err)
		}
	}
	srv := &Scope{name: "s", st: server}
	var mine crdt.Digest
	sc.Read(func(st *crdt.State) { mine = st.Digest() })
	tops := func(d crdt.Digest) map[string]uint64 {
		m := map[string]uint64{}
		for _, e := range d.Entries {
			m[e.Name] = e.Top
		}
		return m
	}
	now := time.Now()
	adj := tops(srv.skipInFlight("recv", mine, []string{"w"}, server, now, time.Second))
	require.Equal(t, uint64(10), adj["w"], "w is streaming: nothing of it is repaired")
	require.Equal(t, uint64(3), adj["x"], "x stopped: repaired from 3")
	adj = tops(srv.skipInFlight("recv2", mine, nil, server, now, time.Second))
	require.Equal(t, uint64(5), adj["w"], "without the hint, w is repaired")
}

// TestRepairWaitIsOneRound: a digest answering ours that shows the peer
// ahead makes the scope wait for the peer's repair (no anti-entropy round
// of its own, no answers to digests) for one interval only. The peer may
// never send it (it leaves out what it counts in flight), and when the
// writes stop just then nothing ends the wait: with five intervals the
// partition suite saw a 5-node LAN cluster take 15.5 s to agree after a
// 3.5 s cut.
func TestRepairWaitIsOneRound(t *testing.T) {
	n := newProbedNode(t, &holdProbe{})
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	src, err := crdt.New(crdt.ReplicaID{Name: "src", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	src.JoinLocal("g", "m", "", nil)
	before := time.Now()
	n.handleMessage(encodeSync("default", "src", false, crdt.EncodeDigest(src.Digest()), nil), nil)
	after := time.Now()
	every := n.cfg.AntiEntropyInterval
	require.True(t, n.transferring("default", after), "a peer ahead: its repair is awaited")
	require.True(t, n.transferring("default", before.Add(every-time.Millisecond)))
	require.False(t, n.transferring("default", after.Add(every+time.Millisecond)), "waited past one anti-entropy interval")
}
