package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// TestNetTransport: packets arrive whole, each in its own buffer of its
// own size (the read buffer is reused, so aliasing it would corrupt every
// packet memberlist still holds); streams connect; shutdown is idempotent
// and stops its goroutines (goleak in TestMain).
func TestNetTransport(t *testing.T) {
	a, err := NewNetTransport("127.0.0.1", 0, nil)
	require.NoError(t, err)
	defer a.Shutdown()
	b, err := NewNetTransport("127.0.0.1", 0, nil)
	require.NoError(t, err)
	defer b.Shutdown()
	bAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port()))

	first := bytes.Repeat([]byte{'x'}, 1000)
	second := bytes.Repeat([]byte{'y'}, 3000)
	_, err = a.WriteTo(first, bAddr)
	require.NoError(t, err)
	p1 := recvPacket(t, b)
	_, err = a.WriteTo(second, bAddr)
	require.NoError(t, err)
	p2 := recvPacket(t, b)
	require.Equal(t, first, p1.Buf, "the first packet changed when the second was read")
	require.Equal(t, second, p2.Buf)
	require.Equal(t, len(p1.Buf), cap(p1.Buf), "packet buffer larger than the packet")
	require.Equal(t, a.Port(), p1.From.(*net.UDPAddr).Port)

	conn, err := a.DialTimeout(bAddr, time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("stream"))
	require.NoError(t, err)
	select {
	case in := <-b.StreamCh():
		got := make([]byte, 6)
		_, err := io.ReadFull(in, got)
		require.NoError(t, err)
		require.Equal(t, "stream", string(got))
		require.NoError(t, in.Close())
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted")
	}

	ip, port, err := b.FinalAdvertiseAddr("", 0)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", ip.String())
	require.Equal(t, b.Port(), port)
	ip, port, err = b.FinalAdvertiseAddr("10.1.2.3", 7000)
	require.NoError(t, err)
	require.Equal(t, "10.1.2.3", ip.String())
	require.Equal(t, 7000, port)
	_, port, err = b.FinalAdvertiseAddr("", 7946)
	require.NoError(t, err)
	require.Equal(t, b.Port(), port, "without an address the bound port is advertised")
	_, _, err = b.FinalAdvertiseAddr("not-an-ip", 0)
	require.ErrorIs(t, err, ErrConfig)

	require.NoError(t, b.Shutdown())
	require.NoError(t, b.Shutdown(), "a second shutdown")
}

func TestNetTransportBadBind(t *testing.T) {
	_, err := NewNetTransport("localhost", 0, nil)
	require.ErrorIs(t, err, ErrConfig)
	a, err := NewNetTransport("127.0.0.1", 0, nil)
	require.NoError(t, err)
	defer a.Shutdown()
	_, err = NewNetTransport("127.0.0.1", a.Port(), nil)
	require.ErrorContains(t, err, "listen on")
}

func recvPacket(t *testing.T, tr *NetTransport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet received")
		return nil
	}
}

// TestUserPayload: plain and checksummed user messages are recognised,
// with the node's label or without one when it has none; anything else, a
// bad checksum or another label included, is left to memberlist.
func TestUserPayload(t *testing.T) {
	withCRC := func(b []byte) []byte {
		h := make([]byte, 5, 5+len(b))
		h[0] = mlHasCrcMsg
		binary.BigEndian.PutUint32(h[1:], crc32.ChecksumIEEE(b))
		return append(h, b...)
	}
	labelled := func(label string, b []byte) []byte {
		return append(append([]byte{mlHasLabelMsg, byte(len(label))}, label...), b...)
	}
	user := append([]byte{mlUserMsg}, "hello"...)
	for _, tc := range []struct {
		name  string
		label string
		pkt   []byte
		want  string
		ok    bool
	}{
		{"labelled, checksummed user message", "blue", labelled("blue", withCRC(user)), "hello", true},
		{"labelled user message", "blue", labelled("blue", user), "hello", true},
		{"another label", "blue", labelled("green", user), "", false},
		{"a longer label", "blue", labelled("blue2", user), "", false},
		{"no label on a labelled node", "blue", user, "", false},
		{"a label on an unlabelled node", "", labelled("blue", user), "", false},
		{"truncated label", "blue", []byte{mlHasLabelMsg, 9, 'b'}, "", false},
		{"plain user message", "", user, "hello", true},
		{"checksummed user message", "", withCRC(user), "hello", true},
		{"empty user message", "", []byte{mlUserMsg}, "", true},
		{"bad checksum", "", func() []byte { b := withCRC(user); b[len(b)-1]++; return b }(), "", false},
		{"ping", "", []byte{0, 1, 2}, "", false},
		{"checksummed ping", "", withCRC([]byte{0, 1, 2}), "", false},
		{"compressed", "", []byte{9, 1, 2}, "", false},
		{"truncated checksum header", "", []byte{mlHasCrcMsg, 1, 2}, "", false},
		{"empty", "", nil, "", false},
	} {
		got, ok := userPayload(tc.pkt, tc.label)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.want, string(got), tc.name)
	}
}

// TestDeliverMemberlistFraming: a user message sent by memberlist itself
// (SendBestEffort, which adds a checksum for peers speaking protocol 5)
// reaches Deliver's function whole; a compressed one (memberlist
// compresses when that makes it smaller) is left to memberlist, which
// hands it to its delegate; and memberlist's own traffic still reaches
// memberlist (the two nodes see each other).
func TestDeliverMemberlistFraming(t *testing.T) {
	for _, label := range []string{"", "blue"} {
		t.Run("label="+label, func(t *testing.T) { testDeliverFraming(t, label) })
	}
}

func testDeliverFraming(t *testing.T, label string) {
	got := make(chan string, 4)
	viaMemberlist := make(chan string, 4)
	start := func(name string, deliver bool) *memberlist.Memberlist {
		tr, err := NewNetTransport("127.0.0.1", 0, nil)
		require.NoError(t, err)
		c := memberlist.DefaultLocalConfig()
		c.Label = label
		if deliver {
			tr.Deliver(label, func(p []byte, _ net.Addr) { got <- string(p) })
			c.Delegate = msgDelegate(viaMemberlist)
		}
		c.Name, c.Transport, c.LogOutput = name, tr, io.Discard
		c.BindAddr, c.BindPort, c.AdvertisePort = "127.0.0.1", tr.Port(), tr.Port()
		ml, err := memberlist.Create(c)
		require.NoError(t, err)
		return ml
	}
	a, b := start("a", false), start("b", true)
	defer func() { require.NoError(t, a.Shutdown()); require.NoError(t, b.Shutdown()) }()
	_, err := a.Join([]string{b.LocalNode().Address()})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.NumMembers() == 2 && b.NumMembers() == 2 }, 5*time.Second, 10*time.Millisecond)
	var bn *memberlist.Node
	for _, m := range a.Members() {
		if m.Name == "b" {
			bn = m
		}
	}
	require.NotNil(t, bn)
	require.GreaterOrEqual(t, int(bn.PMax), 5, "b should speak the protocol with checksums")
	require.NoError(t, a.SendBestEffort(bn, []byte("roster payload")))
	select {
	case p := <-got:
		require.Equal(t, "roster payload", p)
	case <-time.After(5 * time.Second):
		t.Fatal("the user message did not reach Deliver")
	}

	long := strings.Repeat("compressible ", 100)
	require.NoError(t, a.SendBestEffort(bn, []byte(long)))
	select {
	case p := <-viaMemberlist:
		require.Equal(t, long, p)
	case p := <-got:
		t.Fatalf("a compressed packet reached Deliver: %.40q", p)
	case <-time.After(5 * time.Second):
		t.Fatal("the compressed user message was lost")
	}
}

// msgDelegate is a memberlist delegate that passes user messages on.
type msgDelegate chan string

func (d msgDelegate) NotifyMsg(b []byte)                  { d <- string(b) }
func (d msgDelegate) NodeMeta(int) []byte                 { return nil }
func (d msgDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d msgDelegate) LocalState(bool) []byte              { return nil }
func (d msgDelegate) MergeRemoteState(buf []byte, _ bool) {}

// TestInboxDrops: with the inbox loop stuck behind a merge (the scope's
// lock is held), packets fill the inbox and the rest are dropped and
// counted, never blocking the caller (the socket's read loop); once the
// lock is free every queued packet is handled.
func TestInboxDrops(t *testing.T) {
	cfg := DefaultLocalConfig("dst")
	cfg.Incarnation = 1
	n, err := New(cfg, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	require.NotNil(t, n.inbox, "a node on NetTransport without encryption has an inbox")

	src := filledSource(t, 3, 1, "m")
	pkt := encodeDeltas("default", nil, [][]byte{crdt.EncodeDelta(src.Snapshot(0)[0])})
	release, locked := make(chan struct{}), make(chan struct{})
	go n.scopes["default"].Locked(func(*crdt.State) { close(locked); <-release })
	<-locked
	const sent = inboxDepth + 10
	for range sent {
		n.deliver(pkt, nil)
	}
	dropped := n.Stats().PacketsDropped
	require.True(t, dropped == 9 || dropped == 10, "%d dropped: the inbox holds %d, and the loop holds at most one", dropped, inboxDepth)
	close(release)
	require.Eventually(t, func() bool { return n.Stats().DeltasReceived+n.Stats().PacketsDropped == sent }, 10*time.Second, time.Millisecond)
}

// TestClusterIsolation: a node of another cluster that reaches this one's
// address (as a node retrying a dead peer's reused port does) is ignored
// both ways, while a node of the same cluster joins; roster's packets
// still take the direct path with a label.
func TestClusterIsolation(t *testing.T) {
	start := func(name, cluster string, seeds ...string) *Node {
		cfg := DefaultLocalConfig(name)
		cfg.Incarnation = 1
		cfg.Cluster = cluster
		cfg.Seeds = seeds
		n, err := New(cfg, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, n.Close(context.Background())) })
		return n
	}
	a := start("a", "blue")
	require.NotNil(t, a.inbox, "a labelled node without encryption still takes roster's packets directly")
	b := start("b", "green", a.Addr())
	c := start("c", "blue", a.Addr())
	names := func(n *Node) string {
		var out []string
		for _, p := range n.Nodes() {
			if p.State == PeerAlive {
				out = append(out, p.Name)
			}
		}
		return strings.Join(out, ",")
	}
	require.Eventually(t, func() bool { return names(a) == "a,c" && names(c) == "a,c" }, 10*time.Second, 10*time.Millisecond, "a: %s, c: %s", names(a), names(c))
	require.NoError(t, c.Join("default", "room", "m", ""))
	require.Eventually(t, func() bool {
		n := 0
		sc, _ := a.Scope("default")
		sc.Read(func(st *crdt.State) { n = st.VisibleLen() })
		return n == 1
	}, 10*time.Second, 10*time.Millisecond, "c's join did not reach a")
	time.Sleep(500 * time.Millisecond) // b's rejoin loop keeps trying a meanwhile
	require.Equal(t, "a,c", names(a), "a let in a node of another cluster")
	require.Equal(t, "b", names(b), "b joined another cluster")
}
