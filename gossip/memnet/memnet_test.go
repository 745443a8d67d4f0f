package memnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests (the
// memberlist test also checks itself with goleak.VerifyNone), except a
// memberlist probe already in flight at Shutdown, which memberlist does not
// wait for and which ends on its own within a probe interval.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// pair returns a network with transports "a" and "b", shut down at the end.
func pair(t *testing.T, cfg Config) (*Network, *Transport, *Transport) {
	t.Helper()
	n := New(cfg)
	a, err := n.NewTransport("a")
	require.NoError(t, err)
	b, err := n.NewTransport("b")
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)
	return n, a, b
}

// drain returns every packet queued on ch right now.
func drain(ch <-chan *memberlist.Packet) []*memberlist.Packet {
	var out []*memberlist.Packet
	for {
		select {
		case p := <-ch:
			out = append(out, p)
		default:
			return out
		}
	}
}

func send(t *testing.T, from, to *Transport, payload string) {
	t.Helper()
	_, err := from.WriteTo([]byte(payload), to.Addr())
	require.NoError(t, err)
}

// Packets arrive, copied, with the sender's address; the advertise address
// is the transport's fake 127.0.0.1 address, unique per transport.
func TestPacketDelivery(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 1})
	require.NotEqual(t, a.Addr(), b.Addr())
	ip, port, err := a.FinalAdvertiseAddr("192.0.2.1", 1)
	require.NoError(t, err)
	require.Equal(t, a.Addr(), net.JoinHostPort(ip.String(), fmt.Sprint(port)))

	buf := []byte("hello")
	before := time.Now()
	sent, err := a.WriteToAddress(buf, memberlist.Address{Addr: b.Addr(), Name: "ignored"})
	require.NoError(t, err)
	require.False(t, sent.Before(before))
	copy(buf, "XXXXX") // the network must have copied it
	got := drain(b.PacketCh())
	require.Len(t, got, 1)
	require.Equal(t, "hello", string(got[0].Buf))
	require.Equal(t, a.Addr(), got[0].From.String())
	require.False(t, got[0].Timestamp.Before(sent))

	send(t, b, a, "back")
	require.Len(t, drain(a.PacketCh()), 1)

	s := n.Stats()
	require.Equal(t, uint64(2), s.PacketsSent)
	require.Equal(t, uint64(2), s.PacketsDelivered)
	require.Zero(t, s.PacketsDropped)
	require.Equal(t, uint64(1), n.LinkStats("a", "b").PacketsDelivered)
}

// Bytes are counted as sent: every packet handed to WriteTo (lost,
// duplicated or undeliverable alike, and only once), every byte a stream's
// end wrote, network-wide and per link in the writer's direction; a failed
// write counts nothing, and ResetStats zeroes the bytes with the rest.
func TestByteCounters(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 9, Duplicate: 1})
	send(t, a, b, "12345")
	send(t, b, a, "123")
	_, err := a.WriteTo([]byte("1234567"), "127.0.0.1:1") // unroutable
	require.NoError(t, err)
	n.SetLoss(1)
	send(t, a, b, "12") // lost
	require.Len(t, drain(b.PacketCh()), 2, "the duplicated packet")

	c, err := a.DialTimeout(b.Addr(), time.Second)
	require.NoError(t, err)
	s := <-b.StreamCh()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		buf := make([]byte, 16)
		k, _ := io.ReadFull(s, buf[:10])
		_, _ = s.Write(buf[:k/2]) // answers 5 bytes
	}()
	_, err = c.Write([]byte("0123456789"))
	require.NoError(t, err)
	got := make([]byte, 5)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, "01234", string(got))
	<-answered // its Write has returned, and counted
	require.NoError(t, s.Close())
	_, err = c.Write([]byte("never read")) // the other end is closed
	require.Error(t, err)

	st := n.Stats()
	require.Equal(t, uint64(5+3+7+2), st.PacketBytesSent)
	require.Equal(t, uint64(10+5), st.StreamBytesSent)
	ab, ba := n.LinkStats("a", "b"), n.LinkStats("b", "a")
	require.Equal(t, uint64(5+2), ab.PacketBytesSent)
	require.Equal(t, uint64(3), ba.PacketBytesSent)
	require.Equal(t, uint64(10), ab.StreamBytesSent)
	require.Equal(t, uint64(5), ba.StreamBytesSent)
	require.NoError(t, c.Close())

	n.ResetStats()
	st = n.Stats()
	require.Zero(t, st.PacketBytesSent)
	require.Zero(t, st.StreamBytesSent)
	require.Zero(t, n.LinkStats("a", "b").StreamBytesSent)
}

// Packets to an unknown or shut-down transport vanish without error; a
// shut-down transport cannot send.
func TestPacketsToNowhereVanish(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 1})
	_, err := a.WriteTo([]byte("x"), "127.0.0.1:1")
	require.NoError(t, err)
	require.NoError(t, b.Shutdown())
	send(t, a, b, "x")
	require.Empty(t, drain(b.PacketCh()))
	_, err = b.WriteTo([]byte("x"), a.Addr())
	require.ErrorIs(t, err, ErrClosed)
	s := n.Stats()
	require.Equal(t, uint64(2), s.PacketsUnroutable)
	require.Equal(t, uint64(2), s.PacketsDropped)
	require.Equal(t, uint64(2), s.PacketsSent)
}

func TestLossOneDropsEverything(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 2, Loss: 1})
	for i := 0; i < 500; i++ {
		send(t, a, b, "x")
	}
	require.Empty(t, drain(b.PacketCh()))
	s := n.Stats()
	require.Equal(t, uint64(500), s.PacketsLost)
	require.Equal(t, uint64(500), s.PacketsDropped)

	n.SetLoss(0)
	send(t, a, b, "x")
	require.Len(t, drain(b.PacketCh()), 1)
}

func TestDuplication(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 3, Duplicate: 1})
	for i := 0; i < 10; i++ {
		send(t, a, b, fmt.Sprint(i))
	}
	got := drain(b.PacketCh())
	require.Len(t, got, 20)
	for i := 0; i < 10; i++ { // synchronous delivery: copy right after original
		require.Equal(t, fmt.Sprint(i), string(got[2*i].Buf))
		require.Equal(t, fmt.Sprint(i), string(got[2*i+1].Buf))
	}
	got[0].Buf[0] = 'X' // copies do not share memory
	require.Equal(t, "0", string(got[1].Buf))
	require.Equal(t, uint64(10), n.Stats().PacketsDuplicated)

	// A probability in between duplicates some but not all.
	n.SetDuplicate(0.5)
	for i := 0; i < 200; i++ {
		send(t, a, b, "x")
	}
	k := len(drain(b.PacketCh()))
	require.Greater(t, k, 200)
	require.Less(t, k, 400)
}

// Cut is one-way: a->b vanishes while b->a still flows; Heal restores it.
func TestOneWayCut(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 4})
	n.Cut("a", "b")
	require.False(t, n.Linked("a", "b"))
	require.True(t, n.Linked("b", "a"))
	send(t, a, b, "lost")
	send(t, b, a, "back")
	require.Empty(t, drain(b.PacketCh()), "a -> b is cut")
	require.Len(t, drain(a.PacketCh()), 1, "b -> a still works")
	require.Equal(t, uint64(1), n.Stats().PacketsCut)
	require.Equal(t, uint64(1), n.LinkStats("a", "b").PacketsCut)
	require.Equal(t, []Link{{"a", "b"}}, n.Cuts())

	n.Heal("a", "b")
	send(t, a, b, "again")
	require.Len(t, drain(b.PacketCh()), 1)
	require.Empty(t, n.Cuts())
}

// A cut made while packets are in flight drops them when they land.
func TestCutDropsPacketsInFlight(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 5, MinDelay: 30 * time.Millisecond, MaxDelay: 40 * time.Millisecond})
	for i := 0; i < 10; i++ {
		send(t, a, b, "x")
	}
	n.Cut("a", "b")
	require.Eventually(t, func() bool { return n.Stats().PacketsInFlight == 0 }, 5*time.Second, 5*time.Millisecond)
	require.Empty(t, drain(b.PacketCh()))
	require.Equal(t, uint64(10), n.Stats().PacketsCut)
}

func TestPartitionIsolateBridgeRing(t *testing.T) {
	n := New(Config{Seed: 6})
	t.Cleanup(n.Shutdown)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		_, err := n.NewTransport(name)
		require.NoError(t, err)
	}
	linked := func(pairs ...string) {
		t.Helper()
		for i := 0; i < len(pairs); i += 2 {
			require.True(t, n.Linked(pairs[i], pairs[i+1]), "%s->%s", pairs[i], pairs[i+1])
		}
	}
	cut := func(pairs ...string) {
		t.Helper()
		for i := 0; i < len(pairs); i += 2 {
			require.False(t, n.Linked(pairs[i], pairs[i+1]), "%s->%s", pairs[i], pairs[i+1])
		}
	}

	n.Partition([]string{"a", "b"}, []string{"c", "d"})
	cut("a", "c", "c", "a", "b", "d", "d", "b", "a", "d", "d", "a")
	linked("a", "b", "b", "a", "c", "d", "e", "a", "a", "e", "c", "e")
	require.Len(t, n.Cuts(), 8)

	n.HealAll()
	n.Isolate("e")
	for _, o := range []string{"a", "b", "c", "d"} {
		cut("e", o, o, "e")
	}
	linked("a", "b", "c", "d")

	// Bridge: a-b-c where a and c only reach each other through b.
	n.HealAll()
	n.CutBoth("a", "c")
	cut("a", "c", "c", "a")
	linked("a", "b", "b", "c", "c", "b", "b", "a")

	// Ring a-b-c-d-e-a: cut every non-adjacent pair.
	n.HealAll()
	ring := []string{"a", "b", "c", "d", "e"}
	for i := range ring {
		for j := i + 2; j < len(ring); j++ {
			if i == 0 && j == len(ring)-1 {
				continue // a and e are adjacent
			}
			n.CutBoth(ring[i], ring[j])
		}
	}
	linked("a", "b", "b", "c", "c", "d", "d", "e", "e", "a")
	cut("a", "c", "a", "d", "b", "d", "b", "e", "c", "e")

	n.HealBoth("a", "c")
	linked("a", "c", "c", "a")
}

// Dials need both directions; they fail at once across a cut and to an
// address where no transport is; a healed link dials again; the stream's
// addresses are the transports' and data flows both ways.
func TestDialAcrossCutFails(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 7})

	_, err := a.DialTimeout("127.0.0.1:1", time.Second)
	require.ErrorIs(t, err, ErrNoRoute)

	n.Cut("b", "a") // one way only, but a stream needs both ways
	for _, d := range []struct{ from, to *Transport }{{a, b}, {b, a}} {
		start := time.Now()
		_, err := d.from.DialTimeout(d.to.Addr(), 5*time.Second)
		require.ErrorIs(t, err, ErrLinkCut)
		var ne net.Error
		require.True(t, errors.As(err, &ne), "a net.Error, as real dials return")
		require.Less(t, time.Since(start), time.Second, "refused at once, not after the timeout")
	}
	require.Equal(t, uint64(3), n.Stats().StreamsRefused)

	n.HealAll()
	c, err := a.DialAddressTimeout(memberlist.Address{Addr: b.Addr(), Name: "b"}, time.Second)
	require.NoError(t, err)
	s := <-b.StreamCh()
	require.Equal(t, a.Addr(), c.LocalAddr().String())
	require.Equal(t, b.Addr(), c.RemoteAddr().String())
	require.Equal(t, b.Addr(), s.LocalAddr().String())
	require.Equal(t, a.Addr(), s.RemoteAddr().String())

	go func() { _, _ = c.Write([]byte("ping")) }()
	buf := make([]byte, 4)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	go func() { _, _ = s.Write([]byte("pong")) }()
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "pong", string(buf))

	// Deadlines work (memberlist sets them on every stream).
	require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
	_, err = s.Read(buf)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "got %v", err)

	// A normal close reads as EOF on the other end.
	// (net.Pipe reports EOF before an expired deadline.)
	require.NoError(t, c.Close())
	_, err = s.Read(buf)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, s.Close())
	require.Equal(t, uint64(1), n.Stats().StreamsOpened)
}

// An open stream breaks, on both ends and for blocked calls too, when a
// link between its ends is cut in either direction.
func TestOpenStreamBreaksOnCut(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 8})
	c, err := a.DialTimeout(b.Addr(), time.Second)
	require.NoError(t, err)
	s := <-b.StreamCh()

	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1)) // blocks: nobody writes
		readErr <- err
	}()
	time.Sleep(10 * time.Millisecond)

	n.Cut("b", "a") // the direction opposite to the dial
	select {
	case err := <-readErr:
		require.ErrorIs(t, err, ErrLinkCut)
	case <-time.After(5 * time.Second):
		t.Fatal("blocked read not woken by the cut")
	}
	_, err = s.Write([]byte("x"))
	require.ErrorIs(t, err, ErrLinkCut)
	_, err = s.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrLinkCut)
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, ErrLinkCut)
	require.Equal(t, uint64(1), n.Stats().StreamsBroken)

	// Healing does not revive it; a new dial works.
	n.HealAll()
	_, err = c.Write([]byte("x"))
	require.Error(t, err)
	c2, err := a.DialTimeout(b.Addr(), time.Second)
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
}

// The same seed makes the same decisions for the same sends, whatever the
// settings are changed to in between (every packet consumes four draws);
// another seed makes different ones.
func TestSeedDeterminism(t *testing.T) {
	pattern := func(seed int64) string {
		n := New(Config{Seed: seed, Loss: 0.3, Duplicate: 0.3})
		defer n.Shutdown()
		a, err := n.NewTransport("a")
		require.NoError(t, err)
		b, err := n.NewTransport("b")
		require.NoError(t, err)
		var out bytes.Buffer
		for i := 0; i < 300; i++ {
			if i == 150 {
				n.SetLoss(0.6)
				n.SetDuplicate(0.1)
			}
			send(t, a, b, "x")
			fmt.Fprint(&out, len(drain(b.PacketCh())))
		}
		return out.String()
	}
	p := pattern(42)
	require.Contains(t, p, "0")
	require.Contains(t, p, "1")
	require.Contains(t, p, "2")
	require.Equal(t, p, pattern(42))
	require.NotEqual(t, p, pattern(43))

	// Delays are drawn from the same source: the same seed gives the same
	// delivery order when the delays are far apart compared with timer
	// jitter (here 0-2s in 100 steps of 20ms; only the order is compared).
	delays := func(seed int64) []time.Duration {
		n := New(Config{Seed: seed, MaxDelay: 2 * time.Second})
		n.mu.Lock()
		defer n.mu.Unlock()
		var out []time.Duration
		for i := 0; i < 20; i++ {
			n.rng.Float64() // loss
			n.rng.Float64() // duplicate
			out = append(out, n.drawDelay(), n.drawDelay())
		}
		return out
	}
	require.Equal(t, delays(9), delays(9))
	require.NotEqual(t, delays(9), delays(10))
}

// Random delays reorder packets; all of them still arrive.
func TestDelayReorders(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 10, MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond})
	for i := 0; i < 50; i++ {
		_, err := a.WriteTo([]byte{byte(i)}, b.Addr())
		require.NoError(t, err)
	}
	var got []byte
	timeout := time.After(5 * time.Second)
	for len(got) < 50 {
		select {
		case p := <-b.PacketCh():
			got = append(got, p.Buf[0])
		case <-timeout:
			t.Fatalf("only %d of 50 packets arrived", len(got))
		}
	}
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	require.NotZero(t, inversions, "50 packets with 1-20ms random delays arrived in order: %v", got)
	require.Zero(t, n.Stats().PacketsInFlight)
}

// Shutdown: idempotent, stops delay timers (counted as dropped), discards
// queued packets and streams, closes open streams with ErrClosed, never
// closes PacketCh/StreamCh (memberlist would read nil from them), refuses
// dials, and frees the name for a restarted node at a new address.
func TestShutdown(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 11})
	c, err := a.DialTimeout(b.Addr(), time.Second)
	require.NoError(t, err)
	s := <-b.StreamCh()
	queued, err := a.DialTimeout(b.Addr(), time.Second) // left in b's backlog
	require.NoError(t, err)
	send(t, a, b, "queued")
	n.SetDelay(time.Hour, time.Hour)
	send(t, a, b, "late")
	require.Equal(t, uint64(1), n.Stats().PacketsInFlight)

	require.NoError(t, b.Shutdown())
	require.NoError(t, b.Shutdown())
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed")
	}
	select {
	case p, ok := <-b.PacketCh():
		t.Fatalf("PacketCh delivered after shutdown: %v %v", p, ok)
	case cn, ok := <-b.StreamCh():
		t.Fatalf("StreamCh delivered after shutdown: %v %v", cn, ok)
	case <-time.After(20 * time.Millisecond):
	}
	st := n.Stats()
	require.Zero(t, st.PacketsInFlight)
	require.Equal(t, st.PacketsSent+st.PacketsDuplicated, st.PacketsDelivered+st.PacketsDropped)

	for _, cn := range []net.Conn{c, s, queued} {
		_, err := cn.Write([]byte("x"))
		require.ErrorIs(t, err, ErrClosed)
	}
	_, err = a.DialTimeout(b.Addr(), time.Second)
	require.ErrorIs(t, err, ErrNoRoute)
	_, err = b.DialTimeout(a.Addr(), time.Second)
	require.ErrorIs(t, err, ErrClosed)

	_, err = n.NewTransport("a")
	require.ErrorIs(t, err, ErrName, "a is still open")
	b2, err := n.NewTransport("b")
	require.NoError(t, err)
	require.NotEqual(t, b.Addr(), b2.Addr())
	require.Equal(t, b2.Addr(), n.Addr("b"))
	n.SetDelay(0, 0)
	send(t, a, b2, "new")
	require.Len(t, drain(b2.PacketCh()), 1)
}

// Invalid settings are bugs in the test: they panic.
func TestInvalidSettingsPanic(t *testing.T) {
	require.Panics(t, func() { New(Config{Loss: 1.5}) })
	require.Panics(t, func() { New(Config{MinDelay: 2, MaxDelay: 1}) })
	n := New(Config{})
	require.Panics(t, func() { n.SetDuplicate(-0.1) })
	require.Panics(t, func() { n.SetDelay(-1, 0) })
	_, err := n.NewTransport("")
	require.ErrorIs(t, err, ErrName)
}

// Traffic, dials, cuts, setting changes and shutdowns all at once: the race
// detector must stay quiet, nothing may deadlock, and the counters must add
// up once everything is shut down.
func TestConcurrentChaos(t *testing.T) {
	n := New(Config{Seed: 12, Loss: 0.1, Duplicate: 0.1, MaxDelay: 2 * time.Millisecond, PacketQueue: 16})
	names := []string{"a", "b", "c", "d"}
	ts := make([]*Transport, len(names))
	for i, name := range names {
		tr, err := n.NewTransport(name)
		require.NoError(t, err)
		ts[i] = tr
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tr := range ts {
		wg.Add(2)
		go func() { // receiver: reads packets, echoes on streams
			defer wg.Done()
			for {
				select {
				case <-tr.PacketCh():
				case c := <-tr.StreamCh():
					go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
				case <-tr.Done():
					return
				}
			}
		}()
		go func() { // sender
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				to := ts[(i+1+k%3)%len(ts)]
				_, _ = tr.WriteTo([]byte("p"), to.Addr())
				if k%10 == 0 {
					if c, err := tr.DialTimeout(to.Addr(), time.Second); err == nil {
						_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
						_, _ = c.Write([]byte("s"))
						_, _ = c.Read(make([]byte, 1))
						_ = c.Close()
					}
				}
			}
		}()
	}
	for k := 0; k < 200; k++ {
		switch k % 5 {
		case 0:
			n.Partition(names[:2], names[2:])
		case 1:
			n.HealAll()
		case 2:
			n.SetLoss(float64(k%3) / 4)
			n.SetDelay(0, time.Duration(k%4)*time.Millisecond)
		case 3:
			n.Isolate(names[k%4])
			_ = n.Stats()
		case 4:
			n.HealAll()
			n.SetDuplicate(float64(k%2) / 3)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	n.Shutdown()
	wg.Wait()
	s := n.Stats()
	t.Logf("%+v", s)
	require.NotZero(t, s.PacketsDelivered)
	require.NotZero(t, s.StreamsOpened)
	require.Zero(t, s.PacketsInFlight)
	require.Equal(t, s.PacketsSent+s.PacketsDuplicated, s.PacketsDelivered+s.PacketsDropped)
	require.Equal(t, s.PacketsDropped, s.PacketsCut+s.PacketsLost+s.PacketsUnroutable+s.PacketsOverflow)
}

// TestSever: a severed transport's sends and dials fail with ErrSevered
// and reach nothing; what others send to it still arrives.
func TestSever(t *testing.T) {
	n, a, b := pair(t, Config{Seed: 7})
	a.Sever()
	_, err := a.WriteTo([]byte("x"), b.Addr())
	require.ErrorIs(t, err, ErrSevered)
	_, err = a.DialTimeout(b.Addr(), time.Second)
	require.ErrorIs(t, err, ErrSevered)
	require.Zero(t, n.Stats().PacketsSent)
	send(t, b, a, "y")
	require.Eventually(t, func() bool { return len(drain(a.PacketCh())) == 1 }, 5*time.Second, 5*time.Millisecond)
}

// TestRestartAddress: a name registering again after its transport shut
// down gets a new address by default, and its old one with KeepAddrs (as
// a restarted process binds its port again), where packets sent to that
// address reach the new transport; other names keep theirs either way.
func TestRestartAddress(t *testing.T) {
	for _, keep := range []bool{false, true} {
		n := New(Config{KeepAddrs: keep})
		a, err := n.NewTransport("a")
		require.NoError(t, err)
		b, err := n.NewTransport("b")
		require.NoError(t, err)
		oldA, oldB := n.Addr("a"), n.Addr("b")
		require.NoError(t, a.Shutdown())
		_, err = n.NewTransport("a")
		require.NoError(t, err)
		if keep {
			require.Equal(t, oldA, n.Addr("a"), "KeepAddrs: the restarted name's address")
			_, err = b.WriteToAddress([]byte("hi"), memberlist.Address{Addr: oldA, Name: "a"})
			require.NoError(t, err)
			require.Equal(t, uint64(1), n.Stats().PacketsDelivered, "a packet to the old address reaches the new transport")
		} else {
			require.NotEqual(t, oldA, n.Addr("a"), "by default a new address")
		}
		require.Equal(t, oldB, n.Addr("b"))
		n.Shutdown()
	}
}
