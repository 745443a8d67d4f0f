package gossip

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
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
