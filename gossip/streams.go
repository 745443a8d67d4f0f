package gossip

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Incoming TCP streams are screened before memberlist sees them. memberlist
// reads a stream's header and allocates what it claims (up to 20 MiB for a
// user message or push/pull state) before it reads the data: 100 streams
// that claimed 20 MiB and then stalled held 2.1 GB of heap. NetTransport
// therefore reads each stream's framing itself, refuses a claim larger than
// maxStreamClaim, and hands memberlist a stream only once its claim fits in
// a budget shared by all streams in flight (maxClaimedBytes); the claim is
// returned when memberlist closes the stream. Screening a stream (reading
// its first bytes) must end within screenTimeout, and at most
// maxScreening streams are screened at once; more are closed at once.
const (
	// maxStreamClaim bounds what one stream may claim: roster's largest
	// stream message (a pack of deltas, 8 MiB) with room for a large
	// single delta, and memberlist's push/pull of a large cluster's nodes.
	maxStreamClaim = 16 << 20
	// maxClaimedBytes bounds the claims of all streams handed to
	// memberlist and not yet closed.
	maxClaimedBytes = 64 << 20
	maxScreening    = 128
	screenTimeout   = 5 * time.Second
	// claimWait is how long a screened stream waits for its claim to fit
	// before it is closed.
	claimWait = 5 * time.Second
)

// ErrStream is returned (logged) for an incoming stream that was refused.
var ErrStream = errors.New("gossip: stream refused")

// memberlist's stream message types (net.go) that the screen reads.
const (
	mlPushPullMsg = 6
	mlCompressMsg = 9
	mlEncryptMsg  = 10
)

// claims is the budget of bytes that streams in flight may claim.
type claims struct {
	mu    sync.Mutex
	cond  *sync.Cond
	used  int64
	limit int64
}

func newClaims(limit int64) *claims {
	c := &claims{limit: limit}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// take waits until n bytes fit in the budget, or until deadline; it
// reports whether it took them.
func (c *claims) take(n int64, deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.limit {
		return false
	}
	if c.used+n > c.limit {
		// Wake up at the deadline to give up (Cond has no timeout).
		t := time.AfterFunc(time.Until(deadline), func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
		defer t.Stop()
		for c.used+n > c.limit {
			if !time.Now().Before(deadline) {
				return false
			}
			c.cond.Wait()
		}
	}
	c.used += n
	return true
}

func (c *claims) give(n int64) {
	c.mu.Lock()
	c.used -= n
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Used returns the bytes claimed by streams in flight.
func (c *claims) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// screenedConn is a stream handed to memberlist: its reads return the bytes
// the screen consumed, then the rest of the stream; closing it returns its
// claim.
type screenedConn struct {
	net.Conn
	r     io.Reader
	once  sync.Once
	claim int64
	c     *claims
}

func (s *screenedConn) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *screenedConn) Close() error {
	s.once.Do(func() { s.c.give(s.claim) })
	return s.Conn.Close()
}

// screen reads the framing at the start of an incoming stream and returns
// the stream to hand to memberlist, with its claim taken from the budget,
// or an error (the caller closes conn).
func (t *NetTransport) screen(conn net.Conn) (net.Conn, error) {
	deadline := time.Now().Add(screenTimeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 512)
	var consumed bytes.Buffer
	claim, err := streamClaim(io.TeeReader(br, &consumed))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStream, err)
	}
	if claim > maxStreamClaim {
		return nil, fmt.Errorf("%w: it claims %d bytes, more than %d", ErrStream, claim, maxStreamClaim)
	}
	if !t.claims.take(claim, time.Now().Add(claimWait)) {
		return nil, fmt.Errorf("%w: %d bytes claimed by streams in flight; no room for %d more", ErrStream, t.claims.Used(), claim)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		t.claims.give(claim)
		return nil, err
	}
	return &screenedConn{Conn: conn, r: io.MultiReader(&consumed, br), claim: claim, c: t.claims}, nil
}

// streamClaim reads a memberlist stream's framing (label header, message
// type, and the header of the message types that announce a length) and
// returns how many bytes memberlist will allocate for it on the strength
// of that header alone. Message types that announce nothing claim 0.
func streamClaim(r io.Reader) (int64, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	if b[0] == mlHasLabelMsg {
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return 0, err
		}
		if _, err := io.CopyN(io.Discard, r, int64(n[0])); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
	}
	switch b[0] {
	case mlEncryptMsg:
		// memberlist reads the ciphertext as it arrives (no
		// allocation up front), but the claim still bounds it.
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(l[:])), nil
	case mlUserMsg:
		return headerClaim(r, "UserMsgLen")
	case mlPushPullMsg:
		return headerClaim(r, "UserStateLen")
	case mlCompressMsg:
		return compressClaim(r)
	default:
		return 0, nil
	}
}

// headerClaim reads a msgpack map header (memberlist's userMsgHeader or
// pushPullHeader: small integers and booleans by field name) and returns
// the value of field.
func headerClaim(r io.Reader, field string) (int64, error) {
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 8 {
		return 0, fmt.Errorf("a header of %d fields", n)
	}
	var claim int64
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return 0, err
		}
		if len(k) > 32 {
			return 0, fmt.Errorf("a header field name of %d bytes", len(k))
		}
		code, err := dec.PeekCode()
		if err != nil {
			return 0, err
		}
		if code == 0xc2 || code == 0xc3 { // false, true
			if _, err := dec.DecodeBool(); err != nil {
				return 0, err
			}
			continue
		}
		v, err := dec.DecodeInt64()
		if err != nil {
			return 0, fmt.Errorf("header field %q: %v", k, err)
		}
		if k == field {
			if v < 0 {
				return 0, fmt.Errorf("header field %q is negative", k)
			}
			claim = v
		}
	}
	return claim, nil
}

// compressClaim reads memberlist's compress struct ({Algo, Buf}) up to
// Buf's length, which is what memberlist allocates before reading it.
func compressClaim(r io.Reader) (int64, error) {
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 4 {
		return 0, fmt.Errorf("a compress header of %d fields", n)
	}
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return 0, err
		}
		if k == "Buf" {
			l, err := dec.DecodeBytesLen()
			if err != nil {
				return 0, err
			}
			return int64(max(l, 0)), nil
		}
		if _, err := dec.DecodeInt64(); err != nil {
			return 0, fmt.Errorf("compress field %q: %v", k, err)
		}
	}
	return 0, errors.New("a compressed stream without data")
}
