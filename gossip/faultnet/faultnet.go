// Package faultnet is a partitionable gossip transport for benchmarks on
// one machine (cmd/roster-bench): a Net is a shared "grudge" table, and
// each Transport wraps roster's real UDP/TCP transport (gossip's
// NetTransport) and drops what its Net blocks. It lives under gossip so
// that only the gossip packages implement memberlist's interfaces.
package faultnet

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/gossip"
)

// Net is a shared "grudge" table for a set of Transports: while cut,
// traffic between addresses on different sides is dropped (packets) or
// refused (streams), like an iptables REJECT between two halves of a LAN.
// It is safe for concurrent use.
type Net struct {
	mu   sync.RWMutex
	side map[string]int // "127.0.0.1:PORT" -> side
	cut  bool
}

// New returns a Net with no sides assigned and no cut.
func New() *Net { return &Net{side: map[string]int{}} }

// Assign puts addr on a side of the future partition.
func (f *Net) Assign(addr string, side int) {
	f.mu.Lock()
	f.side[addr] = side
	f.mu.Unlock()
}

// Partition starts dropping traffic between sides.
func (f *Net) Partition() { f.mu.Lock(); f.cut = true; f.mu.Unlock() }

// Heal stops dropping traffic.
func (f *Net) Heal() { f.mu.Lock(); f.cut = false; f.mu.Unlock() }

// Blocked reports whether traffic between a and b is currently dropped.
// Unknown addresses are never blocked.
func (f *Net) Blocked(a, b string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.cut {
		return false
	}
	sa, okA := f.side[a]
	sb, okB := f.side[b]
	return okA && okB && sa != sb
}

// Transport wraps roster's real UDP/TCP transport and drops what its Net
// blocks:
//   - outgoing packets to a blocked peer are silently dropped (UDP);
//   - outgoing stream dials to a blocked peer fail at once (TCP RST);
//   - incoming packets from a blocked source are dropped. memberlist sends
//     UDP from its bound socket, so Packet.From is the peer's gossip address.
//
// Incoming streams are not filtered: TCP connections come from ephemeral
// ports, and since both directions dial through a cutTransport, refusing
// dials on the dialing side cuts every stream.
type Transport struct {
	*gossip.NetTransport
	net     *Net
	self    string
	packets chan *memberlist.Packet
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// NewTransport binds a real transport on 127.0.0.1, a free port, whose
// traffic fn filters; its own records go to logOut as text.
func NewTransport(fn *Net, logOut io.Writer) (*Transport, error) {
	inner, err := gossip.NewNetTransport("127.0.0.1", 0, slog.New(slog.NewTextHandler(logOut, nil)))
	if err != nil {
		return nil, err
	}
	t := &Transport{
		NetTransport: inner,
		net:          fn,
		self:         net.JoinHostPort("127.0.0.1", fmt.Sprint(inner.Port())),
		packets:      make(chan *memberlist.Packet),
		stop:         make(chan struct{}),
	}
	t.wg.Add(1)
	go t.filter()
	return t, nil
}

// Addr is the transport's gossip address (what memberlist advertises).
func (t *Transport) Addr() string { return t.self }

func (t *Transport) filter() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.stop:
			return
		case p := <-in:
			if p.From != nil && t.net.Blocked(p.From.String(), t.self) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		}
	}
}

// PacketCh delivers the packets the Net lets through.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// WriteTo sends a packet, or drops it while addr is cut off.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress is WriteTo for a memberlist address.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.Blocked(t.self, a.Addr) {
		return time.Now(), nil // lost on the wire
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// DialTimeout dials a stream, refused at once while addr is cut off.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout is DialTimeout for a memberlist address.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.net.Blocked(t.self, a.Addr) {
		return nil, fmt.Errorf("dial tcp %s: connection refused (partitioned)", a.Addr)
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// Shutdown closes the sockets and stops the packet filter.
func (t *Transport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	t.wg.Wait()
	return err
}
