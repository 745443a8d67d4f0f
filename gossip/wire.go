package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/dissem"
	"github.com/roster-io/roster/internal/bounded"
	"github.com/vmihailenco/msgpack/v5"
)

// Wire formats (msgpack, positional, version 1 first):
//
//	node meta:   [1, incarnation, [scope, ...]] or [1, incarnation, [scope, ...], httpAddr]
//	deltas:      [1, 1, scope, [delta, ...]]              each delta a crdt encoding
//	sync:        [1, 2, scope, from, wantReply, digest]   digest a crdt encoding
//	local state: [1, 3, from, [scope, digest, scope, digest, ...]]
//	leaving:     [1, 4, from, incarnation]                sent by a node closing gracefully
//	relay:       [1, 5, scope, [name, ...], [delta, ...]] deltas to pass on to the named nodes (Config.FanOut)
//	plumtree:    [1, 6, scope, from, kind, flags, round, origin, seq, payload, [id, ...]] (plumtree.go)
const wireVersion = 1

const (
	msgDeltas = 1
	msgSync   = 2
	// 3 was a push/pull digest message before roster stopped sending state
	// in push/pull; it is not reused.
	msgLeaving = 4
	msgRelay   = 5
	msgPlum    = 6 // plumtree.go
)

// maxRelayNames bounds the nodes a relay message hands on.
const maxRelayNames = 1 << 16

// maxMessageBytes bounds any message this package decodes.
const maxMessageBytes = 64 << 20

// encodeNodeMeta encodes a node's metadata: its incarnation, scopes and,
// when it has one, its HTTP address (Config.HTTPAddr). A node without
// one sends the three fields older nodes expect.
func encodeNodeMeta(inc uint64, scopes []string, httpAddr string, limit int) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	fields := 3
	if httpAddr != "" {
		fields = 4
	}
	_ = enc.EncodeArrayLen(fields)
	_ = enc.EncodeUint(wireVersion)
	_ = enc.EncodeUint(inc)
	_ = enc.EncodeArrayLen(len(scopes))
	for _, s := range scopes {
		_ = enc.EncodeString(s)
	}
	if httpAddr != "" {
		_ = enc.EncodeString(httpAddr)
	}
	if buf.Len() > limit {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d: serve fewer or shorter scopes, or a shorter HTTP address", buf.Len(), limit)
	}
	return buf.Bytes(), nil
}

type nodeMeta struct {
	inc      uint64
	scopes   []string
	httpAddr string // "" when the node advertises none
}

func (m nodeMeta) serves(scope string) bool {
	for _, s := range m.scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// reader is the bounded msgpack reader (internal/bounded) with gossip's
// failures (ErrMessage); its strings are names, checked as such.
type reader struct{ bounded.Reader }

func newReader(b []byte) *reader {
	r := new(reader)
	r.Reset(b, ErrMessage)
	return r
}

// str reads a string that must be a valid name (crdt.ValidName).
func (r *reader) str(what string) string {
	v := r.String(what)
	if r.OK() {
		if err := crdt.ValidName(v); err != nil {
			r.Fail(what, err)
		}
	}
	return v
}

// bytes returns the next byte string as a slice of the input, not a copy:
// a message's payloads are decoded while the message is handled, and
// whatever keeps one longer copies it. A nil is a failure.
func (r *reader) bytes(what string) []byte {
	v := r.Bytes(what)
	if r.OK() && v == nil {
		r.Fail(what, errors.New("nil where bytes belong"))
	}
	return v
}

func decodeNodeMeta(b []byte) (nodeMeta, error) {
	r := newReader(b)
	defer r.Release()
	fields := r.ArrayLen("meta", 1)
	if r.OK() && fields != 3 && fields != 4 {
		r.Fail("meta", fmt.Errorf("%d fields", fields))
	}
	if v := r.Uint("version"); r.OK() && v != wireVersion {
		r.Fail("meta", fmt.Errorf("version %d", v))
	}
	m := nodeMeta{inc: r.Uint("incarnation")}
	n := r.ArrayLen("scopes", 1)
	for i := 0; i < n && r.OK(); i++ {
		m.scopes = append(m.scopes, r.str("scope"))
	}
	if fields == 4 && r.OK() {
		v := r.String("HTTP address")
		if r.OK() {
			if err := ValidHTTPAddr(v); err != nil {
				r.Fail("HTTP address", err)
			}
		}
		m.httpAddr = v
	}
	if r.OK() && (m.inc == 0 || m.inc >= crdt.MaxCounter) {
		r.Fail("meta", fmt.Errorf("incarnation %d", m.inc))
	}
	if err := r.End(); err != nil {
		return nodeMeta{}, err
	}
	return m, nil
}

// MaxHTTPAddrBytes bounds Config.HTTPAddr: it shares memberlist's 512
// bytes of node metadata with the scopes.
const MaxHTTPAddrBytes = 256

// ValidHTTPAddr checks an HTTP address as Config.HTTPAddr takes it and
// node metadata carries it: the base URL of a node's HTTP API,
// "http://host:port" or "https://host:port" (an IPv6 host in brackets),
// printable ASCII, at most MaxHTTPAddrBytes, with no user, path, query or
// fragment. Whatever passes can be dialled as is and shown to clients.
func ValidHTTPAddr(s string) error {
	if len(s) > MaxHTTPAddrBytes {
		return fmt.Errorf("HTTP address of %d bytes: at most %d", len(s), MaxHTTPAddrBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("HTTP address %q: byte %d is not printable ASCII", s, i)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("HTTP address %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("HTTP address %q: want http://host:port or https://host:port", s)
	case u.Opaque != "" || u.User != nil || u.Path != "" || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("HTTP address %q: only scheme://host:port, no user, path, query or fragment", s)
	case u.Hostname() == "":
		return fmt.Errorf("HTTP address %q: no host", s)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("HTTP address %q: want a port in [1, 65535]", s)
	}
	if strings.HasPrefix(u.Host, "[") && net.ParseIP(u.Hostname()) == nil {
		return fmt.Errorf("HTTP address %q: bracketed host is not an IPv6 address", s)
	}
	return nil
}

// message is a decoded user message.
type message struct {
	kind      int
	scope     string
	from      string
	wantReply bool
	inc       uint64         // msgLeaving
	relayTo   []string       // msgRelay: the nodes this one passes the deltas on to
	payloads  [][]byte       // deltas (msgDeltas) or one digest (msgSync); they alias the message
	streaming []string       // msgSync: replicas still arriving at the sender
	buckets   []int          // msgSync: the range-digest buckets a narrowed digest covers
	plum      dissem.Message // msgPlum
}

// encodeDeltas wraps encoded deltas in a message: a plain one, or with
// relayTo a relay message whose receiver passes the deltas on to those
// nodes (see Node.disseminate).
func encodeDeltas(scope string, relayTo []string, deltas [][]byte) []byte {
	var buf bytes.Buffer
	size := deltasOverhead(scope, relayTo)
	for _, d := range deltas {
		size += len(d) + perDeltaOverhead
	}
	buf.Grow(size) // a transfer's megabyte is not grown by doubling
	enc := msgpack.NewEncoder(&buf)
	fields, kind := 4, uint64(msgDeltas)
	if len(relayTo) > 0 {
		fields, kind = 5, msgRelay
	}
	_ = enc.EncodeArrayLen(fields)
	_ = enc.EncodeUint(wireVersion)
	_ = enc.EncodeUint(kind)
	_ = enc.EncodeString(scope)
	if len(relayTo) > 0 {
		_ = enc.EncodeArrayLen(len(relayTo))
		for _, name := range relayTo {
			_ = enc.EncodeString(name)
		}
	}
	_ = enc.EncodeArrayLen(len(deltas))
	for _, d := range deltas {
		_ = enc.EncodeBytes(d)
	}
	return buf.Bytes()
}

// deltasOverhead bounds the envelope bytes encodeDeltas adds besides the
// deltas themselves (per delta: a bin header of at most 5 bytes).
func deltasOverhead(scope string, relayTo []string) int {
	n := 16 + len(scope)
	for _, name := range relayTo {
		n += len(name) + 5
	}
	return n + 5
}

const perDeltaOverhead = 5

// encodeSync encodes a digest message. streaming names the replicas whose
// top rose here in the last anti-entropy interval: their deltas are still
// arriving, so the receiver leaves them out of its repair. (The field is
// optional on the wire: a message without it decodes with none.)
func encodeSync(scope, from string, wantReply bool, digest []byte, streaming []string) []byte {
	return encodeSyncIn(scope, from, wantReply, digest, streaming, nil)
}

// encodeSyncIn is encodeSync for a digest restricted to the range-digest
// buckets named (crdt.State.DigestIn): the eighth field lists them, in
// ascending order. Without buckets it is the seven-field message.
func encodeSyncIn(scope, from string, wantReply bool, digest []byte, streaming []string, buckets []int) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	fields := 7
	if len(buckets) > 0 {
		fields = 8
	}
	_ = enc.EncodeArrayLen(fields)
	_ = enc.EncodeUint(wireVersion)
	_ = enc.EncodeUint(msgSync)
	_ = enc.EncodeString(scope)
	_ = enc.EncodeString(from)
	_ = enc.EncodeBool(wantReply)
	_ = enc.EncodeBytes(digest)
	_ = enc.EncodeArrayLen(len(streaming))
	for _, name := range streaming {
		_ = enc.EncodeString(name)
	}
	if len(buckets) > 0 {
		_ = enc.EncodeArrayLen(len(buckets))
		for _, b := range buckets {
			_ = enc.EncodeUint(uint64(b))
		}
	}
	return buf.Bytes()
}

// buckets reads a narrowed digest's bucket list: 1 to crdt.RangeBuckets
// bucket numbers, each below crdt.RangeBuckets, strictly ascending.
func (r *reader) buckets() []int {
	k := r.ArrayLen("buckets", 1)
	if r.OK() && (k < 1 || k > crdt.RangeBuckets) {
		r.Fail("message", fmt.Errorf("%d buckets, want 1 to %d", k, crdt.RangeBuckets))
	}
	var out []int
	for i := 0; i < k && r.OK(); i++ {
		b := r.Uint("bucket")
		switch {
		case !r.OK():
		case b >= crdt.RangeBuckets:
			r.Fail("message", fmt.Errorf("bucket %d, want below %d", b, crdt.RangeBuckets))
		case len(out) > 0 && int(b) <= out[len(out)-1]:
			r.Fail("message", fmt.Errorf("bucket %d after %d: not ascending", b, out[len(out)-1]))
		default:
			out = append(out, int(b))
		}
	}
	return out
}

func encodeLeaving(from string, inc uint64) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(4)
	_ = enc.EncodeUint(wireVersion)
	_ = enc.EncodeUint(msgLeaving)
	_ = enc.EncodeString(from)
	_ = enc.EncodeUint(inc)
	return buf.Bytes()
}

// names reads a list of at least least and at most maxRelayNames valid node
// or replica names (what says which list, for errors).
func (r *reader) names(what string, least int) []string {
	k := r.ArrayLen(what+" names", 1)
	if r.OK() && (k < least || k > maxRelayNames) {
		r.Fail("message", fmt.Errorf("%d %s names, want %d to %d", k, what, least, maxRelayNames))
	}
	var out []string
	for i := 0; i < k && r.OK(); i++ {
		out = append(out, r.str(what+" name")) // str checks crdt.ValidName
	}
	return out
}

// decodeMessage decodes any user message. It never panics; malformed input
// returns an error wrapping ErrMessage. The payloads alias b.
func decodeMessage(b []byte) (message, error) {
	if len(b) > maxMessageBytes {
		return message{}, fmt.Errorf("%w: %d bytes", ErrMessage, len(b))
	}
	r := newReader(b)
	defer r.Release()
	fields := r.ArrayLen("message", 1)
	if v := r.Uint("version"); r.OK() && v != wireVersion {
		r.Fail("message", fmt.Errorf("unsupported version %d", v))
	}
	m := message{kind: int(r.Uint("kind"))}
	want := 0
	switch m.kind {
	case msgDeltas, msgLeaving:
		want = 4
	case msgRelay:
		want = 5
	case msgPlum:
		want = 11
	case msgSync:
		want = 7
		if fields == 6 || fields == 8 {
			want = fields // without the streaming list; with buckets
		}
	}
	if r.OK() && (want == 0 || fields != want) {
		r.Fail("message", fmt.Errorf("kind %d with %d fields", m.kind, fields))
	}
	switch m.kind {
	case msgDeltas, msgRelay:
		m.scope = r.str("scope")
		if m.kind == msgRelay {
			m.relayTo = r.names("relay", 1)
		}
		n := r.ArrayLen("deltas", 1)
		for i := 0; i < n && r.OK(); i++ {
			m.payloads = append(m.payloads, r.bytes("delta"))
		}
	case msgSync:
		m.scope = r.str("scope")
		m.from = r.str("from")
		m.wantReply = r.Bool("wantReply")
		m.payloads = [][]byte{r.bytes("digest")}
		if fields >= 7 {
			m.streaming = r.names("streaming", 0)
		}
		if fields == 8 {
			m.buckets = r.buckets()
		}
	case msgLeaving:
		m.from = r.str("from")
		m.inc = r.Uint("incarnation")
	case msgPlum:
		r.plum(&m)
	}
	return m, r.End()
}
