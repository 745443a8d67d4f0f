package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// NetTransport is memberlist's transport over real sockets (UDP for
// packets, a TCP connection per stream), as memberlist.NetTransport, with
// one difference that matters at roster's packet rates: a packet is read
// into one reused 64 KiB buffer and copied out at its own size, where
// memberlist's transport allocates a fresh 64 KiB buffer for every packet
// received. At a few thousand packets a second (every join is a packet to
// every peer, plus memberlist's own gossip) that was hundreds of MB/s of
// garbage, a GC cycle every few milliseconds, and the p99 of replication
// latency. New uses it unless Config.Transport is set.
type NetTransport struct {
	log      *slog.Logger
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	closed   atomic.Bool
	wg       sync.WaitGroup
	// direct, when set, takes the payload of every packet that carries a
	// plain memberlist user message (see userPayload) on the read loop
	// instead of queueing the packet for memberlist.
	direct atomic.Pointer[delivery]
	// claims is the budget of bytes incoming streams may claim, and
	// screening counts the streams being screened (see screen).
	claims    *claims
	screening atomic.Int32
	inScreen  sync.Map // *net.TCPConn -> struct{}: closed by Shutdown
	// Refused counts incoming streams closed unscreened (too many being
	// screened, a claim too large or not fitting the budget, framing
	// that did not arrive in time).
	refused atomic.Int64
	// Counters of Stats.
	packetsOut, bytesOut, packetsIn, bytesIn atomic.Int64
	streamsOut, streamsIn                    atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*NetTransport)(nil)

const (
	udpReadBuffer = 65536           // the largest UDP datagram
	udpSockBuffer = 2 * 1024 * 1024 // asked of the kernel, halved until granted
)

// NewNetTransport listens on addr:port over TCP and UDP (port 0 picks a
// free port, the same for both). log may be nil.
func NewNetTransport(addr string, port int, log *slog.Logger) (*NetTransport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("%w: bind address %q is not an IP address", ErrConfig, addr)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on TCP %s: %w", net.JoinHostPort(addr, strconv.Itoa(port)), err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("gossip: listen on UDP %s: %w", net.JoinHostPort(addr, strconv.Itoa(port)), err)
	}
	for size := udpSockBuffer; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &NetTransport{
		log: log, tcp: tcp, udp: udp,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
		claims:   newClaims(maxClaimedBytes),
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop()
	return t, nil
}

// Port is the port the transport listens on (TCP and UDP).
func (t *NetTransport) Port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr returns the address other nodes reach this one at, as
// memberlist's transport does: ip and port if ip is given (port 0: the
// bound port); else the bound address, or the host's private IP when bound
// to all interfaces, with the bound port.
func (t *NetTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	var adv net.IP
	switch {
	case ip != "":
		if adv = net.ParseIP(ip); adv == nil {
			return nil, 0, fmt.Errorf("%w: advertise address %q is not an IP address", ErrConfig, ip)
		}
	case t.tcp.Addr().(*net.TCPAddr).IP.IsUnspecified():
		private, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("gossip: find a private IP to advertise: %w", err)
		}
		if private == "" {
			return nil, 0, fmt.Errorf("%w: bound to all interfaces and no private IP found; set the advertise address", ErrConfig)
		}
		if adv = net.ParseIP(private); adv == nil {
			return nil, 0, fmt.Errorf("gossip: private IP %q unparsable", private)
		}
	default:
		adv = t.tcp.Addr().(*net.TCPAddr).IP
	}
	if v4 := adv.To4(); v4 != nil {
		adv = v4
	}
	if ip == "" || port == 0 {
		// As memberlist's transport: without an explicit address the
		// bound port is advertised, whatever memberlist's config says.
		port = t.Port()
	}
	return adv, port, nil
}

// WriteTo sends a packet to addr (host:port).
func (t *NetTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet to a.Addr.
func (t *NetTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	if err == nil {
		t.packetsOut.Add(1)
		t.bytesOut.Add(int64(len(b)))
	}
	return time.Now(), err
}

// PacketCh delivers received packets.
func (t *NetTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream to addr.
func (t *NetTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr.
func (t *NetTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", a.Addr)
	if err == nil {
		t.streamsOut.Add(1)
	}
	return c, err
}

// StreamCh delivers accepted streams.
func (t *NetTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes the listeners and waits for the read and accept loops.
func (t *NetTransport) Shutdown() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.done)
	err := errors.Join(t.tcp.Close(), t.udp.Close())
	t.inScreen.Range(func(k, _ any) bool {
		_ = k.(*net.TCPConn).Close() // ends a screen waiting for framing
		return true
	})
	t.wg.Wait()
	return err
}

func (t *NetTransport) acceptLoop() {
	defer t.wg.Done()
	const minDelay, maxDelay = 5 * time.Millisecond, time.Second
	delay := time.Duration(0)
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed.Load() {
				return
			}
			// Out of file descriptors and the like: back off, as
			// memberlist's transport does, instead of spinning.
			delay = min(max(2*delay, minDelay), maxDelay)
			t.log.Error("gossip: accepting a TCP stream", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-t.done:
				return
			}
		}
		delay = 0
		if t.screening.Add(1) > maxScreening {
			t.screening.Add(-1)
			t.refused.Add(1)
			_ = conn.Close()
			continue
		}
		t.wg.Add(1)
		go t.handOver(conn)
	}
}

// handOver screens an incoming stream and hands it to memberlist.
func (t *NetTransport) handOver(conn *net.TCPConn) {
	defer t.wg.Done()
	t.inScreen.Store(conn, struct{}{})
	if t.closed.Load() {
		_ = conn.Close() // Shutdown may have missed it
	}
	sc, err := t.screen(conn)
	t.inScreen.Delete(conn)
	t.screening.Add(-1)
	if err != nil {
		t.refused.Add(1)
		t.log.Debug("gossip: incoming stream refused", "from", conn.RemoteAddr(), "err", err)
		_ = conn.Close()
		return
	}
	select {
	case t.streamCh <- sc:
		t.streamsIn.Add(1)
	case <-t.done:
		_ = sc.Close()
	}
}

// Refused returns how many incoming streams were closed unscreened.
func (t *NetTransport) Refused() int64 { return t.refused.Load() }

// Stats returns the transport's counters.
func (t *NetTransport) Stats() TransportStats {
	return TransportStats{
		PacketsSent: t.packetsOut.Load(), PacketBytesSent: t.bytesOut.Load(),
		PacketsReceived: t.packetsIn.Load(), PacketBytesReceived: t.bytesIn.Load(),
		StreamsOpened: t.streamsOut.Load(), StreamsAccepted: t.streamsIn.Load(),
		StreamsRefused: t.refused.Load(),
	}
}

func (t *NetTransport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, udpReadBuffer)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.log.Error("gossip: reading a UDP packet", "err", err)
			continue
		}
		t.packetsIn.Add(1)
		t.bytesIn.Add(int64(n))
		if n < 1 {
			continue // memberlist needs at least the message type
		}
		pkt := make([]byte, n)
		copy(pkt, buf[:n])
		if d := t.direct.Load(); d != nil {
			if payload, ok := userPayload(pkt, d.label); ok {
				d.fn(payload, from)
				continue
			}
		}
		p := &memberlist.Packet{Buf: pkt, From: from, Timestamp: ts}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// Deliver hands the payload of every received packet that carries a plain
// memberlist user message, labelled with label (memberlist's Label; ""
// for none), to fn, called on the transport's read loop, instead of
// passing the packet through memberlist. memberlist hands user messages
// from its packet loop to a queue that a third goroutine drains (and drops
// them when HandoffQueueDepth are waiting); the node queues roster's
// packets, one per replicated operation, for a goroutine of its own
// instead: one hop less. Only for a memberlist without encryption: its
// packets are not plain, and are left to memberlist. fn must not block: it
// delays every packet behind it, memberlist's probes included.
func (t *NetTransport) Deliver(label string, fn func(payload []byte, from net.Addr)) {
	t.direct.Store(&delivery{label: label, fn: fn})
}

type delivery struct {
	label string
	fn    func([]byte, net.Addr)
}

// memberlist's packet framing (its net.go and label.go, protocol versions
// 2 to 5): a label header when a label is set (hasLabelMsg, the label's
// length in a byte, the label), then a message type byte, optionally
// preceded by a CRC header (hasCrcMsg, then the big-endian CRC-32 (IEEE)
// of the rest). TestDeliverMemberlistFraming checks these against
// memberlist itself.
const (
	mlUserMsg     = 8   // userMsg
	mlHasCrcMsg   = 12  // hasCrcMsg
	mlHasLabelMsg = 244 // hasLabelMsg
)

// userPayload returns the user message a packet carries, if it is one
// labelled label (none when label is "") with a valid checksum or none.
// Anything else (memberlist's own messages, compressed or compound
// packets, another label, a bad checksum) is memberlist's to handle, or
// to log and drop.
func userPayload(b []byte, label string) ([]byte, bool) {
	if len(b) >= 2 && b[0] == mlHasLabelMsg {
		n := int(b[1])
		if label == "" || len(b) < 2+n || string(b[2:2+n]) != label {
			return nil, false
		}
		b = b[2+n:]
	} else if label != "" {
		return nil, false
	}
	if len(b) >= 5 && b[0] == mlHasCrcMsg {
		if crc32.ChecksumIEEE(b[5:]) != binary.BigEndian.Uint32(b[1:5]) {
			return nil, false
		}
		b = b[5:]
	}
	if len(b) >= 1 && b[0] == mlUserMsg {
		return b[1:], true
	}
	return nil, false
}
