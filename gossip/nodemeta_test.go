package gossip

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// rawMeta encodes node metadata field by field, as a hostile or older
// node could, bypassing encodeNodeMeta's checks.
func rawMeta(t testing.TB, fields ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	require.NoError(t, enc.EncodeArrayLen(len(fields)))
	for _, f := range fields {
		require.NoError(t, enc.Encode(f))
	}
	return buf.Bytes()
}

func TestNodeMetaHTTPAddr(t *testing.T) {
	with, err := encodeNodeMeta(7, []string{"chat", "default"}, "http://10.0.0.5:8080", memberlist.MetaMaxSize)
	require.NoError(t, err)
	m, err := decodeNodeMeta(with)
	require.NoError(t, err)
	require.Equal(t, nodeMeta{inc: 7, scopes: []string{"chat", "default"}, httpAddr: "http://10.0.0.5:8080"}, m)

	// Without an address, the three fields nodes before it sent and
	// expect, byte for byte.
	without, err := encodeNodeMeta(7, []string{"chat", "default"}, "", memberlist.MetaMaxSize)
	require.NoError(t, err)
	require.Equal(t, rawMeta(t, wireVersion, 7, []string{"chat", "default"}), without)
	m, err = decodeNodeMeta(without)
	require.NoError(t, err)
	require.Equal(t, nodeMeta{inc: 7, scopes: []string{"chat", "default"}}, m)

	// The address shares memberlist's 512 bytes with the scopes.
	scopes := []string{strings.Repeat("s", 200), strings.Repeat("t", 200)}
	_, err = encodeNodeMeta(7, scopes, "", memberlist.MetaMaxSize)
	require.NoError(t, err)
	_, err = encodeNodeMeta(7, scopes, "http://"+strings.Repeat("h", 120)+":8080", memberlist.MetaMaxSize)
	require.ErrorContains(t, err, "shorter HTTP address")
}

// TestNodeMetaHostile: metadata a hostile or broken node could send is
// refused as a whole (the node is ignored, as for any unreadable
// metadata), never half-read.
func TestNodeMetaHostile(t *testing.T) {
	long := "http://" + strings.Repeat("a", MaxHTTPAddrBytes) + ":80"
	for name, b := range map[string][]byte{
		"5 fields":                    rawMeta(t, wireVersion, 7, []string{"default"}, "http://h:1", "extra"),
		"2 fields":                    rawMeta(t, wireVersion, 7),
		"address not a string":        rawMeta(t, wireVersion, 7, []string{"default"}, 8080),
		"address nil":                 rawMeta(t, wireVersion, 7, []string{"default"}, nil),
		"address empty":               rawMeta(t, wireVersion, 7, []string{"default"}, ""),
		"address too long":            rawMeta(t, wireVersion, 7, []string{"default"}, long),
		"address with a path":         rawMeta(t, wireVersion, 7, []string{"default"}, "http://h:1/admin"),
		"address of another scheme":   rawMeta(t, wireVersion, 7, []string{"default"}, "file:///etc/passwd"),
		"address with a user":         rawMeta(t, wireVersion, 7, []string{"default"}, "http://u:p@h:1"),
		"address with a newline":      rawMeta(t, wireVersion, 7, []string{"default"}, "http://h:1\nX-Evil: 1"),
		"address not UTF-8":           rawMeta(t, wireVersion, 7, []string{"default"}, "http://\xff:1"),
		"address length past the end": claimsTooMuch(t),
	} {
		_, err := decodeNodeMeta(b)
		require.ErrorIs(t, err, ErrMessage, name)
	}
}

// claimsTooMuch is metadata of four fields whose fourth, a str32, claims
// 4 GiB with nothing after it.
func claimsTooMuch(t *testing.T) []byte {
	b := rawMeta(t, wireVersion, 7, []string{"default"})
	require.Equal(t, byte(0x93), b[0])
	b[0] = 0x94
	return append(b, 0xdb, 0xff, 0xff, 0xff, 0xff)
}

func TestValidHTTPAddr(t *testing.T) {
	for _, ok := range []string{
		"http://10.0.0.5:8080", "https://roster-0.roster-gossip.default.svc:8443", "http://[::1]:8080", "http://localhost:1",
	} {
		require.NoError(t, ValidHTTPAddr(ok), ok)
	}
	for _, bad := range []string{
		"", "10.0.0.5:8080", "http://10.0.0.5", "http://10.0.0.5:0", "http://10.0.0.5:65536", "http://h:port",
		"http://h:1/", "http://h:1?x=1", "http://h:1#f", "http://h:1?", "ftp://h:1", "http://:80", "http://[zz]:80",
		"http://h :1", "http://h:1\x00", "http://u@h:1", "http:h:1",
		"http://" + strings.Repeat("a", MaxHTTPAddrBytes) + ":1",
	} {
		require.Error(t, ValidHTTPAddr(bad), "%q", bad)
	}
}

func TestConfigHTTPAddr(t *testing.T) {
	cfg := DefaultLocalConfig("n")
	cfg.Incarnation = 1
	cfg.HTTPAddr = "127.0.0.1:8080"
	require.ErrorIs(t, cfg.validate(), ErrConfig)
	require.ErrorContains(t, cfg.validate(), "HTTPAddr")
	cfg.HTTPAddr = "http://127.0.0.1:8080"
	require.NoError(t, cfg.validate())
	cfg.Scopes = []string{strings.Repeat("s", 250), strings.Repeat("t", 250)}
	require.ErrorIs(t, cfg.validate(), ErrConfig, "scopes and address past 512 bytes")
}

// FuzzDecodeNodeMeta: no metadata panics the decoder; what decodes
// holds a valid address (or none) and encodes back to the same meaning.
func FuzzDecodeNodeMeta(f *testing.F) {
	for _, addr := range []string{"", "http://10.0.0.5:8080", "https://[::1]:443"} {
		b, err := encodeNodeMeta(3, []string{"default", "chat"}, addr, memberlist.MetaMaxSize)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeNodeMeta(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMessage)
			return
		}
		if m.httpAddr != "" {
			require.NoError(t, ValidHTTPAddr(m.httpAddr))
		}
		again, err := encodeNodeMeta(m.inc, m.scopes, m.httpAddr, 1<<20)
		require.NoError(t, err)
		m2, err := decodeNodeMeta(again)
		require.NoError(t, err)
		require.Equal(t, m, m2)
	})
}

// TestNodesShowHTTPAddr: each node's address reaches the others through
// memberlist and Nodes lists it; a peer whose metadata carries a hostile
// address is ignored and the node keeps working.
func TestNodesShowHTTPAddr(t *testing.T) {
	nodes := startNodes(t, 2, func(c *Config) { c.HTTPAddr = "http://127.0.0.1:1" + c.Name[1:] + "080" })
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			ns := n.Nodes()
			if len(ns) != 2 || ns[0].State != PeerAlive || ns[1].State != PeerAlive {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	for _, n := range nodes {
		got := map[string]string{}
		for _, info := range n.Nodes() {
			got[info.Name] = info.HTTPAddr
		}
		require.Equal(t, map[string]string{"n0": "http://127.0.0.1:10080", "n1": "http://127.0.0.1:11080"}, got)
	}

	hostile := rawMeta(t, wireVersion, 9, []string{"default"}, "http://evil:1/steal?token=")
	nodes[0].queuePeerEvent(&memberlist.Node{Name: "evil", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: hostile}, true)
	for _, info := range nodes[0].Nodes() {
		require.NotEqual(t, "evil", info.Name, "a node with a hostile address is not listed")
	}
	require.NoError(t, nodes[0].Join("default", "room", "a", ""))
	require.Eventually(t, func() bool { return len(members(nodes[1], "default", "room")) == 1 }, 5*time.Second, 5*time.Millisecond,
		"the node still replicates")
}
