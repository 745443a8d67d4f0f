package main

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

// faultNet is a shared "grudge" table for a set of cutTransports: while
// cut, traffic between addresses on different sides is dropped (packets) or
// refused (streams), like an iptables REJECT between two halves of a LAN.
type faultNet struct {
	mu   sync.RWMutex
	side map[string]int // "127.0.0.1:PORT" -> side
	cut  bool
}

func newFaultNet() *faultNet { return &faultNet{side: map[string]int{}} }

// assign puts addr on a side of the future partition.
func (f *faultNet) assign(addr string, side int) {
	f.mu.Lock()
	f.side[addr] = side
	f.mu.Unlock()
}

// partition starts dropping traffic between sides; heal stops it.
func (f *faultNet) partition() { f.mu.Lock(); f.cut = true; f.mu.Unlock() }
func (f *faultNet) heal()      { f.mu.Lock(); f.cut = false; f.mu.Unlock() }

// blocked reports whether traffic between a and b is currently dropped.
// Unknown addresses are never blocked.
func (f *faultNet) blocked(a, b string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.cut {
		return false
	}
	sa, okA := f.side[a]
	sb, okB := f.side[b]
	return okA && okB && sa != sb
}

// cutTransport wraps roster's real UDP/TCP transport and drops what the
// faultNet blocks:
//   - outgoing packets to a blocked peer are silently dropped (UDP);
//   - outgoing stream dials to a blocked peer fail at once (TCP RST);
//   - incoming packets from a blocked source are dropped. memberlist sends
//     UDP from its bound socket, so Packet.From is the peer's gossip address.
//
// Incoming streams are not filtered: TCP connections come from ephemeral
// ports, and since both directions dial through a cutTransport, refusing
// dials on the dialing side cuts every stream.
type cutTransport struct {
	*gossip.NetTransport
	net     *faultNet
	self    string
	packets chan *memberlist.Packet
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*cutTransport)(nil)

// newCutTransport binds a real transport on 127.0.0.1, a free port.
func newCutTransport(fn *faultNet, logOut io.Writer) (*cutTransport, error) {
	inner, err := gossip.NewNetTransport("127.0.0.1", 0, slog.New(slog.NewTextHandler(logOut, nil)))
	if err != nil {
		return nil, err
	}
	t := &cutTransport{
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
func (t *cutTransport) Addr() string { return t.self }

func (t *cutTransport) filter() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.stop:
			return
		case p := <-in:
			if p.From != nil && t.net.blocked(p.From.String(), t.self) {
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

func (t *cutTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.blocked(t.self, a.Addr) {
		return time.Now(), nil // lost on the wire
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, a.Addr) {
		return nil, fmt.Errorf("dial tcp %s: connection refused (partitioned)", a.Addr)
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// Shutdown closes the sockets and stops the packet filter.
func (t *cutTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	t.wg.Wait()
	return err
}
