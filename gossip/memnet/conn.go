package memnet

import (
	"net"
	"sync/atomic"
)

// stream is one open dialled connection: the two ends of a net.Pipe.
// It stays in Network.streams until both ends are closed.
type stream struct {
	dialer, acceptor *Conn
	// reason is set once, under Network.mu, when the network itself closes
	// the stream (ErrLinkCut or ErrClosed); reads and writes that fail
	// afterwards report it instead of the pipe's generic error.
	reason atomic.Pointer[error]
}

// Conn is one end of a stream: a net.Pipe end whose LocalAddr and
// RemoteAddr are the transports' addresses, and whose reads and writes fail
// with ErrLinkCut or ErrClosed (wrapped in a *net.OpError) once the network
// has closed it because of a cut or a shutdown. A peer closing its end
// normally gives io.EOF on reads, as with TCP.
type Conn struct {
	net.Conn
	s             *stream
	owner         *Transport
	local, remote *Addr

	closed     bool        // guarded by Network.mu
	userClosed atomic.Bool // Close was called on this end
}

// LocalAddr returns this end's transport address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the other end's transport address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Read reads from the stream; see net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	return n, c.wrap("read", err)
}

// Write writes to the stream; see net.Conn. The bytes the other end
// accepted are counted in Stats.StreamBytesSent.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		nw := c.owner.net
		nw.mu.Lock()
		nw.stats.StreamBytesSent += uint64(n)
		nw.link(c.local.Name, c.remote.Name).StreamBytesSent += uint64(n)
		nw.mu.Unlock()
	}
	return n, c.wrap("write", err)
}

// Close closes this end; the other end's reads then return io.EOF.
func (c *Conn) Close() error {
	c.userClosed.Store(true)
	nw := c.owner.net
	nw.mu.Lock()
	defer nw.mu.Unlock()
	err := c.Conn.Close()
	c.closed = true
	if c.s.dialer.closed && c.s.acceptor.closed {
		delete(nw.streams, c.s)
	}
	return err
}

func (c *Conn) wrap(op string, err error) error {
	if err == nil || c.userClosed.Load() {
		return err
	}
	if r := c.s.reason.Load(); r != nil {
		return &net.OpError{Op: op, Net: "memnet", Source: c.local, Addr: c.remote, Err: *r}
	}
	return err
}

// breakLocked closes both ends of s on the network's behalf, recording why.
// Blocked reads and writes on either end return at once. n.mu must be held.
func (n *Network) breakLocked(s *stream, reason error) {
	s.reason.CompareAndSwap(nil, &reason)
	for _, c := range [...]*Conn{s.dialer, s.acceptor} {
		_ = c.Conn.Close()
		c.closed = true
	}
	delete(n.streams, s)
}
