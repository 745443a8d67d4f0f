package memnet

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Addr is the net.Addr of a transport: Packet.From of the packets it sends,
// and LocalAddr/RemoteAddr of its streams. String returns "127.0.0.1:PORT",
// the form memberlist compares with node addresses.
type Addr struct {
	// Name is the transport's name (memberlist node name).
	Name string
	// HostPort is "127.0.0.1:PORT", unique within the Network.
	HostPort string
}

// Network returns "memnet".
func (a *Addr) Network() string { return "memnet" }

// String returns HostPort.
func (a *Addr) String() string { return a.HostPort }

// Transport is one node's end of a Network; it implements
// memberlist.NodeAwareTransport. Set it as memberlist.Config.Transport.
// Create it with Network.NewTransport.
type Transport struct {
	net      *Network
	name     string
	addr     *Addr
	ip       net.IP
	port     int
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}

	// wg counts delivery timers that may still run their callback.
	wg sync.WaitGroup

	// severed makes sends and dials fail at once, without taking the
	// network's lock (Sever).
	severed atomic.Bool

	// Guarded by net.mu.
	closed   bool
	inflight map[*flight]struct{} // delayed packets addressed to this transport
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// flight is one delayed packet copy on its way to a transport.
type flight struct {
	from  string // sender's name, for the link counters
	timer *time.Timer
}

// Sever makes every later send and dial of this transport fail at once
// (ErrSevered) without reaching the network or taking its lock: a bench
// closing a thousand nodes, each telling every peer it leaves, would
// otherwise queue on the network's one lock for minutes. What is already
// on its way, and what others send to it, is unaffected.
func (t *Transport) Sever() { t.severed.Store(true) }

// Name returns the transport's name.
func (t *Transport) Name() string { return t.name }

// Addr returns the transport's address, "127.0.0.1:PORT": what other nodes
// Join and what memberlist advertises.
func (t *Transport) Addr() string { return t.addr.HostPort }

// Done is closed when the transport has been shut down.
func (t *Transport) Done() <-chan struct{} { return t.done }

// FinalAdvertiseAddr returns the transport's own IP (127.0.0.1) and port,
// ignoring the configured values: the network routes by these addresses
// only, so advertising anything else would make the node unreachable.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return append(net.IP(nil), t.ip...), t.port, nil
}

// WriteTo sends b to the transport at addr ("127.0.0.1:PORT"); see
// WriteToAddress.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a copy of b to the transport at a.Addr, best effort,
// like a UDP datagram: it returns the send time and no error even if the
// packet is then dropped because there is no open transport at that
// address, the link is cut, or the loss fault drops it. Routing is by
// address only; a.Name is ignored. It fails with ErrClosed only if this
// transport has been shut down. It never blocks.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.severed.Load() {
		return time.Time{}, &net.OpError{Op: "write", Net: "memnet", Source: t.addr, Addr: &Addr{HostPort: a.Addr}, Err: ErrSevered}
	}
	n := t.net
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if t.closed {
		return time.Time{}, &net.OpError{Op: "write", Net: "memnet", Source: t.addr, Addr: &Addr{HostPort: a.Addr}, Err: ErrClosed}
	}
	n.stats.PacketsSent++
	n.stats.PacketBytesSent += uint64(len(b))
	dest, ok := n.byAddr[a.Addr]
	if !ok {
		n.stats.drop(&n.stats.PacketsUnroutable)
		return now, nil
	}
	ls := n.link(t.name, dest.name)
	ls.PacketsSent++
	ls.PacketBytesSent += uint64(len(b))
	if n.isCut(t.name, dest.name) {
		n.stats.drop(&n.stats.PacketsCut)
		ls.drop(&ls.PacketsCut)
		return now, nil
	}

	// The fault stage: always exactly four draws (see Config.Seed).
	lossDraw := n.rng.Float64()
	dupDraw := n.rng.Float64()
	d1 := n.drawDelay()
	d2 := n.drawDelay()

	if lossDraw < n.loss {
		n.stats.drop(&n.stats.PacketsLost)
		ls.drop(&ls.PacketsLost)
		return now, nil
	}
	n.sendLocked(t, dest, b, d1)
	if dupDraw < n.dup {
		n.stats.PacketsDuplicated++
		ls.PacketsDuplicated++
		n.sendLocked(t, dest, b, d2)
	}
	return now, nil
}

// sendLocked delivers a copy of b from src to dest now or after d.
// n.mu must be held.
func (n *Network) sendLocked(src, dest *Transport, b []byte, d time.Duration) {
	buf := append([]byte(nil), b...)
	if d <= 0 {
		n.landLocked(src.name, src.addr, dest, buf)
		return
	}
	from, fromAddr := src.name, src.addr
	f := &flight{from: from}
	dest.inflight[f] = struct{}{}
	dest.wg.Add(1)
	f.timer = time.AfterFunc(d, func() {
		defer dest.wg.Done()
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := dest.inflight[f]; !ok {
			return // dest shut down and already counted it as dropped
		}
		delete(dest.inflight, f)
		n.landLocked(from, fromAddr, dest, buf)
	})
}

// landLocked puts a packet on dest's PacketCh if dest is open, the link is
// not cut (a cut made while the packet was in flight drops it) and the
// queue has room. n.mu must be held.
func (n *Network) landLocked(from string, fromAddr *Addr, dest *Transport, buf []byte) {
	ls := n.link(from, dest.name)
	switch {
	case dest.closed:
		n.stats.drop(&n.stats.PacketsUnroutable)
		ls.drop(&ls.PacketsUnroutable)
		return
	case n.isCut(from, dest.name):
		n.stats.drop(&n.stats.PacketsCut)
		ls.drop(&ls.PacketsCut)
		return
	}
	select {
	case dest.packetCh <- &memberlist.Packet{Buf: buf, From: fromAddr, Timestamp: time.Now()}:
		n.stats.PacketsDelivered++
		ls.PacketsDelivered++
	default:
		n.stats.drop(&n.stats.PacketsOverflow)
		ls.drop(&ls.PacketsOverflow)
	}
}

// PacketCh returns the channel of packets sent to this transport. It is
// never closed, not even by Shutdown (memberlist reads it without checking
// for a closed channel, and keeps reading it until after Shutdown
// returns); after Shutdown nothing more is delivered on it.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of streams dialled to this transport.
// Like PacketCh it is never closed, and nothing is delivered on it after
// Shutdown.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout dials the transport at addr; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to the transport at a.Addr (a.Name is
// ignored). It never waits, so timeout is ignored: the dial either succeeds
// at once, the accepting end being queued on the destination's StreamCh
// (its accept backlog), or fails at once with a *net.OpError wrapping
// ErrNoRoute (no open transport there), ErrLinkCut (either direction
// between the two is cut) or ErrBacklog. Failing at once rather than after
// the timeout is what a refused TCP connection does, and keeps cut-link
// tests fast; memberlist treats both the same way.
//
// The stream is a net.Pipe pair: synchronous, unbuffered, with working
// deadlines, LocalAddr and RemoteAddr being the two transports' addresses.
// It is reliable and undelayed, and stays open until either end closes it,
// either transport shuts down, or a link between the two is cut.
func (t *Transport) DialAddressTimeout(a memberlist.Address, _ time.Duration) (net.Conn, error) {
	if t.severed.Load() {
		return nil, &net.OpError{Op: "dial", Net: "memnet", Source: t.addr, Addr: &Addr{HostPort: a.Addr}, Err: ErrSevered}
	}
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "memnet", Source: t.addr, Addr: &Addr{HostPort: a.Addr}, Err: err}
	}
	if t.closed {
		return nil, opErr(ErrClosed)
	}
	dest, ok := n.byAddr[a.Addr]
	if !ok {
		n.stats.StreamsRefused++
		return nil, opErr(ErrNoRoute)
	}
	ls := n.link(t.name, dest.name)
	if n.isCut(t.name, dest.name) || n.isCut(dest.name, t.name) {
		n.stats.StreamsRefused++
		ls.StreamsRefused++
		return nil, opErr(ErrLinkCut)
	}
	p1, p2 := net.Pipe()
	s := &stream{}
	s.dialer = &Conn{Conn: p1, s: s, owner: t, local: t.addr, remote: dest.addr}
	s.acceptor = &Conn{Conn: p2, s: s, owner: dest, local: dest.addr, remote: t.addr}
	select {
	case dest.streamCh <- s.acceptor:
	default:
		_ = p1.Close()
		_ = p2.Close()
		n.stats.StreamsRefused++
		ls.StreamsRefused++
		return nil, opErr(ErrBacklog)
	}
	n.streams[s] = struct{}{}
	n.stats.StreamsOpened++
	ls.StreamsOpened++
	return s.dialer, nil
}

// Shutdown shuts the transport down, as memberlist does when it shuts
// down: the transport leaves the network (its address then routes nowhere
// and its name may be reused by a new transport), delayed packets on their
// way to it are stopped and counted as dropped, packets and streams still
// queued on its PacketCh and StreamCh are discarded (the streams closed),
// every stream either end of which belongs to it is closed (reads and
// writes then fail with ErrClosed), and Done is closed. PacketCh and
// StreamCh are not closed; nothing more is delivered on them. Its own
// WriteTo and Dial calls fail with ErrClosed from then on.
//
// When Shutdown returns, no timer callback of this transport is running.
// It is idempotent and always returns nil.
func (t *Transport) Shutdown() error {
	n := t.net
	n.mu.Lock()
	if t.closed {
		n.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closed = true
	close(t.done)
	delete(n.byAddr, t.addr.HostPort)
	delete(n.byName, t.name)
	for f := range t.inflight {
		if f.timer.Stop() {
			t.wg.Done() // its callback will never run
		}
		delete(t.inflight, f)
		n.stats.drop(&n.stats.PacketsUnroutable)
		ls := n.link(f.from, t.name)
		ls.drop(&ls.PacketsUnroutable)
	}
	for s := range n.streams {
		if s.dialer.owner == t || s.acceptor.owner == t {
			n.breakLocked(s, ErrClosed)
		}
	}
	// Discard what memberlist has not read yet. Nothing can be added
	// after this: every delivery checks t.closed under n.mu.
	for drained := false; !drained; {
		select {
		case <-t.packetCh:
		case <-t.streamCh: // its stream was closed by breakLocked above
		default:
			drained = true
		}
	}
	n.mu.Unlock()
	// A timer whose Stop came too late is blocked on n.mu or returning; it
	// sees its flight gone and does nothing.
	t.wg.Wait()
	return nil
}
