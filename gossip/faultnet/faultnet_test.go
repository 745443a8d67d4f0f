package faultnet

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNet: the table blocks both directions between sides and nothing
// within a side or to an unknown address, only while cut.
func TestNet(t *testing.T) {
	f := New()
	f.Assign("a", 0)
	f.Assign("b", 0)
	f.Assign("c", 1)
	require.False(t, f.Blocked("a", "c"), "blocked before the cut")
	f.Partition()
	require.True(t, f.Blocked("a", "c"))
	require.True(t, f.Blocked("c", "b"))
	require.False(t, f.Blocked("a", "b"), "same side")
	require.False(t, f.Blocked("a", "unknown"))
	f.Heal()
	require.False(t, f.Blocked("a", "c"), "blocked after heal")
}

// TestTransport: across a cut, a stream dial is refused at once and a
// packet is lost; after the heal both get through.
func TestTransport(t *testing.T) {
	f := New()
	a, err := NewTransport(f, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, a.Shutdown()) }()
	b, err := NewTransport(f, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Shutdown()) }()
	f.Assign(a.Addr(), 0)
	f.Assign(b.Addr(), 1)

	f.Partition()
	_, err = a.DialTimeout(b.Addr(), time.Second)
	require.ErrorContains(t, err, "partitioned")
	_, err = a.WriteTo([]byte("lost"), b.Addr())
	require.NoError(t, err, "a dropped packet is not an error")
	select {
	case p := <-b.PacketCh():
		t.Fatalf("a packet crossed the cut: %q", p.Buf)
	case <-time.After(100 * time.Millisecond):
	}

	f.Heal()
	conn, err := a.DialTimeout(b.Addr(), time.Second)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	_, err = a.WriteTo([]byte("hello"), b.Addr())
	require.NoError(t, err)
	select {
	case p := <-b.PacketCh():
		require.Equal(t, "hello", string(p.Buf))
	case <-time.After(5 * time.Second):
		t.Fatal("no packet after the heal")
	}
}
