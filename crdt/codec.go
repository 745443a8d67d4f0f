package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/roster-io/roster/internal/bounded"
	"github.com/vmihailenco/msgpack/v5"
)

// WireVersion is the version of the wire format written by this package.
// Every message starts with it; decoders reject versions they do not know.
const WireVersion = 1

// MaxMessageBytes bounds any message the decoders accept.
const MaxMessageBytes = 64 << 20

// Kind is the type of a wire message.
type Kind uint8

const (
	KindDelta       Kind = 1
	KindDigest      Kind = 2
	KindRangeRoot   Kind = 3
	KindRangeDigest Kind = 4
)

// Layout (msgpack, positional):
//
//	delta:  [version, 1, name, incarnation, ctx, floor, auth, adds, removes, keep, xfer, seq]
//	        ctx     = [lo, hi, lo, hi, ...]
//	        adds    = [[group, id, counter, meta, id, counter, meta, ...], ...]
//	                  one array per run of members of one group; meta is bin (nil when empty)
//	        removes = [[group, id, counter, id, counter, ...], ...]
//	        keep    = bin: uvarint first counter, then uvarint gaps (nil when empty)
//	digest: [version, 2, [name, incarnation, top, name, incarnation, top, ...]]
//	range root:   [version, 3, root, count]
//	range digest: [version, 4, count, [bucket 0, bucket 1, ..., bucket 255]]

// EncodeDelta returns the wire encoding of d.
func EncodeDelta(d *Delta) []byte {
	var buf bytes.Buffer
	buf.Grow(64 + 32*(len(d.Adds)+len(d.Removes)))
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(12)
	_ = enc.EncodeUint(WireVersion)
	_ = enc.EncodeUint(uint64(KindDelta))
	_ = enc.EncodeString(d.Replica.Name)
	_ = enc.EncodeUint(d.Replica.Incarnation)
	_ = enc.EncodeArrayLen(2 * len(d.Ctx))
	for _, r := range d.Ctx {
		_ = enc.EncodeUint(r.Lo)
		_ = enc.EncodeUint(r.Hi)
	}
	_ = enc.EncodeUint(d.Floor)
	_ = enc.EncodeBool(d.Auth)

	rs := getRuns()
	defer rs.release()
	rs.group(len(d.Adds), func(i int) string { return d.Adds[i].Group })
	_ = enc.EncodeArrayLen(rs.len())
	for r := range rs.len() {
		run := rs.run(r)
		_ = enc.EncodeArrayLen(1 + 3*len(run))
		_ = enc.EncodeString(d.Adds[run[0]].Group)
		for _, i := range run {
			a := &d.Adds[i]
			_ = enc.EncodeString(a.ID)
			_ = enc.EncodeUint(a.Counter)
			if a.Meta == "" {
				_ = enc.EncodeNil()
			} else {
				// Written as is: the encoder writes straight into buf.
				_ = enc.EncodeBytesLen(len(a.Meta))
				buf.WriteString(string(a.Meta))
			}
		}
	}
	rs.group(len(d.Removes), func(i int) string { return d.Removes[i].Group })
	_ = enc.EncodeArrayLen(rs.len())
	for r := range rs.len() {
		run := rs.run(r)
		_ = enc.EncodeArrayLen(1 + 2*len(run))
		_ = enc.EncodeString(d.Removes[run[0]].Group)
		for _, i := range run {
			_ = enc.EncodeString(d.Removes[i].ID)
			_ = enc.EncodeUint(d.Removes[i].Counter)
		}
	}
	if len(d.Keep) == 0 {
		_ = enc.EncodeNil()
	} else {
		kb := make([]byte, 0, 3*len(d.Keep))
		prev := uint64(0)
		for _, c := range d.Keep {
			kb = binary.AppendUvarint(kb, c-prev)
			prev = c
		}
		_ = enc.EncodeBytes(kb)
	}
	_ = enc.EncodeUint(d.Xfer)
	_ = enc.EncodeUint(uint64(d.Seq))
	return buf.Bytes()
}

// runs groups the indices 0..n-1 of a delta's adds or removes by group
// name: groups in order of first appearance, indices ascending within a
// group (an encoded delta lists each group's name once). It is pooled, as
// every encoded delta needs one: a map and a slice per group were most of
// what encoding a burst's batched delta allocated.
type runs struct {
	ids    map[string]int32
	runOf  []int32 // index -> run
	starts []int32 // run r is order[starts[r]:starts[r+1]]
	fill   []int32
	order  []int32
}

var runsPool = sync.Pool{New: func() any { return &runs{ids: map[string]int32{}} }}

func getRuns() *runs { return runsPool.Get().(*runs) }

// release pools rs, without the slices of a large delta: a transfer's
// chunk would otherwise keep a megabyte in the pool for small deltas.
func (rs *runs) release() {
	if cap(rs.order) > 1<<14 {
		rs.runOf, rs.order = nil, nil
	}
	if cap(rs.starts) > 1<<14 {
		rs.starts, rs.fill = nil, nil
		rs.ids = map[string]int32{}
	}
	runsPool.Put(rs)
}

func (rs *runs) group(n int, name func(int) string) {
	if len(rs.starts) > 1<<12 {
		rs.ids = map[string]int32{} // clearing costs the map's capacity: drop a big one
	} else {
		clear(rs.ids)
	}
	rs.runOf = slices.Grow(rs.runOf[:0], n)[:n]
	rs.starts = rs.starts[:0]
	prev := ""
	cur := int32(-1)
	for i := range n {
		g := name(i)
		if cur < 0 || g != prev {
			id, ok := rs.ids[g]
			if !ok {
				id = int32(len(rs.starts))
				rs.ids[g] = id
				rs.starts = append(rs.starts, 0)
			}
			cur, prev = id, g
		}
		rs.runOf[i] = cur
		rs.starts[cur]++
	}
	// Counts to start offsets (then one past the end).
	off := int32(0)
	for r, c := range rs.starts {
		rs.starts[r] = off
		off += c
	}
	rs.starts = append(rs.starts, off)
	rs.order = slices.Grow(rs.order[:0], n)[:n]
	rs.fill = append(rs.fill[:0], rs.starts[:len(rs.starts)-1]...)
	for i, r := range rs.runOf {
		rs.order[rs.fill[r]] = int32(i)
		rs.fill[r]++
	}
}

func (rs *runs) len() int {
	if len(rs.starts) == 0 {
		return 0
	}
	return len(rs.starts) - 1
}

func (rs *runs) run(r int) []int32 { return rs.order[rs.starts[r]:rs.starts[r+1]] }

// EncodeDigest returns the wire encoding of d.
func EncodeDigest(d Digest) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeUint(WireVersion)
	_ = enc.EncodeUint(uint64(KindDigest))
	_ = enc.EncodeArrayLen(3 * len(d.Entries))
	for _, e := range d.Entries {
		_ = enc.EncodeString(e.Name)
		_ = enc.EncodeUint(e.Incarnation)
		_ = enc.EncodeUint(e.Top)
	}
	return buf.Bytes()
}

// reader is the bounded msgpack reader (internal/bounded) with crdt's
// failures (ErrDecode) and header check.
type reader struct{ bounded.Reader }

func newReader(b []byte) *reader {
	r := new(reader)
	r.Reset(b, ErrDecode)
	return r
}

// bytesOrNil returns the next byte string, nil if empty, as a slice of
// the input (not a copy): callers convert or parse it at once.
func (r *reader) bytesOrNil(what string, limit int) []byte {
	v := r.Bytes(what)
	if r.OK() && len(v) > limit {
		r.Failf("%s: %d bytes, limit %d", what, len(v), limit)
		return nil
	}
	if len(v) == 0 {
		return nil
	}
	return v
}

func (r *reader) header(want Kind, fields int) {
	if n := r.ArrayLen("message", 1); r.OK() && n != fields {
		r.Failf("message has %d fields, want %d", n, fields)
	}
	v := r.Uint("version")
	if r.OK() && v != WireVersion {
		r.SetErr(fmt.Errorf("%w: version %d (this build reads %d)", ErrUnsupported, v, WireVersion))
	}
	if k := r.Uint("kind"); r.OK() && Kind(k) != want {
		r.Failf("kind %d, want %d", k, want)
	}
}

// MessageKind returns the kind of an encoded message without decoding it.
func MessageKind(b []byte) (Kind, error) {
	r := newReader(b)
	defer r.Release()
	if n := r.ArrayLen("message", 1); r.OK() && n < 2 {
		r.Failf("message has %d fields", n)
	}
	v := r.Uint("version")
	if r.OK() && v != WireVersion {
		return 0, fmt.Errorf("%w: version %d (this build reads %d)", ErrUnsupported, v, WireVersion)
	}
	k := Kind(r.Uint("kind"))
	if r.OK() && (k < KindDelta || k > KindRangeDigest) {
		r.Failf("unknown kind %d", k)
	}
	return k, r.Err()
}

// growAdds makes room for need more adds, and for as many as the rest of
// the message (left bytes) holds at the rate the adds so far took (used
// bytes), with an eighth more for slack. An add takes at least minAddBytes,
// so the estimate never exceeds what the message can hold.
func growAdds(adds []Add, need, used, left int) []Add {
	// With nothing read yet, a run's claimed length is no evidence: a
	// first run reserves at most firstAdds (append grows past it).
	more := min(need, firstAdds)
	if len(adds) > 0 && used > 0 {
		more = max(more, int(int64(left)*int64(len(adds))/int64(used)))
		more += more / 8
	}
	more = min(more, max(min(need, firstAdds), left/minAddBytes))
	return slices.Grow(adds, more)
}

// minAddBytes is the least an encoded add takes before it is validated:
// an empty id, a one-byte counter and no metadata.
const minAddBytes = 3

// firstAdds bounds what the first run of a delta reserves.
const firstAdds = 1024

// DecodeDelta decodes and validates a delta. Any malformed, truncated or
// oversized input returns an error wrapping ErrDecode, ErrUnsupported or
// ErrInvalidDelta; it never panics, and allocates in proportion to len(b)
// (an add takes at least minAddBytes encoded).
func DecodeDelta(b []byte) (*Delta, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(b), MaxMessageBytes)
	}
	r := newReader(b)
	defer r.Release()
	r.header(KindDelta, 12)
	d := &Delta{}
	d.Replica.Name = r.String("replica name")
	d.Replica.Incarnation = r.Uint("incarnation")
	n := r.ArrayLen("context", 1)
	if r.OK() && n%2 != 0 {
		r.Failf("context has odd length %d", n)
	}
	if n > 0 {
		d.Ctx = make([]Range, 0, n/2)
	}
	for i := 0; i < n/2 && r.OK(); i++ {
		d.Ctx = append(d.Ctx, Range{Lo: r.Uint("context lo"), Hi: r.Uint("context hi")})
	}
	d.Floor = r.Uint("floor")
	d.Auth = r.Bool("auth")
	// The adds' count is only known run by run: the slice is sized from
	// the bytes the adds read so far take per add, which predicts the
	// rest of a uniform message (a batch, a transfer's chunk) closely, so
	// it is allocated about once rather than grown through every doubling
	// (garbage twice its size) or built in a scratch slice and copied.
	adds, pooled := pooledAdds()
	runs := r.ArrayLen("adds", 2)
	addsAt := r.Left()
	for i := 0; i < runs && r.OK(); i++ {
		m := r.ArrayLen("add run", 1)
		if r.OK() && (m < 4 || (m-1)%3 != 0) {
			r.Failf("add run %d has length %d", i, m)
		}
		k := (m - 1) / 3
		if r.OK() && cap(adds)-len(adds) < k {
			adds = growAdds(adds, k, addsAt-r.Left(), r.Left())
		}
		g := r.String("add group")
		for j := 0; j < k && r.OK(); j++ {
			a := Add{Group: g, ID: r.String("add id"), Counter: r.Uint("add counter")}
			a.Meta = RawMeta(r.bytesOrNil("add meta", MaxMetaBytes))
			adds = append(adds, a)
		}
	}
	if len(adds) > 0 {
		if cap(adds) > 2*len(adds)+64 {
			// Overestimated, or a pooled slice much bigger than needed
			// (a batch's, for a packet's few adds): not kept, since the
			// delta may be (held back for a gap). Up to twice the adds
			// are: a released delta gives them back anyway, and copying
			// every batch that a slightly bigger one's slice took cost
			// more than the slack.
			exact := slices.Clone(adds)
			if pooled {
				putAdds(adds)
			}
			adds = exact
		}
		d.Adds = adds
	} else if pooled {
		putAdds(adds)
	}
	runs = r.ArrayLen("removes", 2)
	for i := 0; i < runs && r.OK(); i++ {
		m := r.ArrayLen("remove run", 1)
		if r.OK() && (m < 3 || (m-1)%2 != 0) {
			r.Failf("remove run %d has length %d", i, m)
		}
		g := r.String("remove group")
		for j := 0; j < (m-1)/2 && r.OK(); j++ {
			d.Removes = append(d.Removes, Remove{Group: g, ID: r.String("remove id"), Counter: r.Uint("remove counter")})
		}
	}
	if kb := r.bytesOrNil("keep", MaxMessageBytes); len(kb) > 0 {
		prev := uint64(0)
		for len(kb) > 0 && r.OK() {
			gap, k := binary.Uvarint(kb)
			if k <= 0 || (gap == 0 && len(d.Keep) > 0) || gap >= MaxCounter || prev+gap >= MaxCounter {
				r.Failf("keep list malformed at %d", len(d.Keep))
				break
			}
			prev += gap
			d.Keep = append(d.Keep, prev)
			kb = kb[k:]
		}
	}
	d.Xfer = r.Uint("xfer")
	if seq := r.Uint("seq"); seq > 1<<31 {
		r.Failf("seq %d out of range", seq)
	} else {
		d.Seq = uint32(seq)
	}
	if err := r.End(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// addsPool holds the adds slices of released deltas (Release) for
// DecodeDelta to decode into: a receiver under load decodes a batch of
// thousands of adds per message, and allocating each batch's slice anew
// was a quarter of all it allocated, most of its garbage.
var addsPool sync.Pool // of *[]Add, empty, cleared

// maxPooledAdds bounds the slices kept for reuse (3.5 MiB).
const maxPooledAdds = 1 << 16

func pooledAdds() ([]Add, bool) {
	if p, ok := addsPool.Get().(*[]Add); ok {
		return *p, true
	}
	return nil, false
}

// putAdds clears adds and pools it.
func putAdds(adds []Add) {
	if cap(adds) == 0 || cap(adds) > maxPooledAdds {
		return
	}
	clear(adds) // drop the strings: the pool must not keep them alive
	adds = adds[:0]
	addsPool.Put(&adds)
}

// Release hands the memory of d's adds back for a later DecodeDelta to
// decode into. Call it only on a delta DecodeDelta returned, once it has
// been merged or dropped and nothing refers to it or its Adds: neither may
// be used afterwards (the strings they held may: the state keeps those).
// A delta that is kept, such as one held back for a gap, is simply not
// released.
func (d *Delta) Release() {
	adds := d.Adds
	d.Adds = nil
	putAdds(adds)
}

// DecodeDigest decodes and validates a digest (names valid, sorted and
// unique; counters in bounds).
func DecodeDigest(b []byte) (Digest, error) {
	if len(b) > MaxMessageBytes {
		return Digest{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(b), MaxMessageBytes)
	}
	r := newReader(b)
	defer r.Release()
	r.header(KindDigest, 3)
	n := r.ArrayLen("entries", 1)
	if r.OK() && n%3 != 0 {
		r.Failf("entries length %d not a multiple of 3", n)
	}
	var d Digest
	if n > 0 {
		d.Entries = make([]DigestEntry, 0, n/3)
	}
	for i := 0; i < n/3 && r.OK(); i++ {
		e := DigestEntry{Name: r.String("name"), Incarnation: r.Uint("incarnation"), Top: r.Uint("top")}
		if !r.OK() {
			break
		}
		if err := validReplica(ReplicaID{e.Name, e.Incarnation}); err != nil {
			return Digest{}, fmt.Errorf("%w: entry %d: %w", ErrDecode, i, err)
		}
		if e.Top >= MaxCounter {
			r.Failf("entry %d top %d out of bounds", i, e.Top)
		}
		if i > 0 && e.Name <= d.Entries[i-1].Name {
			r.Failf("entries not sorted by name at %d", i)
		}
		d.Entries = append(d.Entries, e)
	}
	if err := r.End(); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// maxRangeCount bounds the replica count a range message may claim: far
// more replicas than a scope holds, and an int on every platform.
const maxRangeCount = 1<<31 - 1

// EncodeRangeRoot returns the wire encoding of a range digest's root and
// replica count (RangeDigest.Root, RangeDigest.Count): what a node sends
// every anti-entropy round, a few dozen bytes whatever the replicas.
func EncodeRangeRoot(root uint64, count int) []byte {
	var buf bytes.Buffer
	buf.Grow(24)
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(4)
	_ = enc.EncodeUint(WireVersion)
	_ = enc.EncodeUint(uint64(KindRangeRoot))
	_ = enc.EncodeUint(root)
	_ = enc.EncodeUint(uint64(count))
	return buf.Bytes()
}

// DecodeRangeRoot decodes a range root message. Malformed input returns
// an error wrapping ErrDecode or ErrUnsupported.
func DecodeRangeRoot(b []byte) (root uint64, count int, err error) {
	if len(b) > MaxMessageBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(b), MaxMessageBytes)
	}
	r := newReader(b)
	defer r.Release()
	r.header(KindRangeRoot, 4)
	root = r.Uint("root")
	count = r.rangeCount()
	if err := r.End(); err != nil {
		return 0, 0, err
	}
	return root, count, nil
}

// EncodeRangeDigest returns the wire encoding of d: its count and its
// RangeBuckets bucket sums, about 2.3 KB once most buckets are occupied.
func EncodeRangeDigest(d RangeDigest) []byte {
	var buf bytes.Buffer
	buf.Grow(16 + 9*RangeBuckets)
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(4)
	_ = enc.EncodeUint(WireVersion)
	_ = enc.EncodeUint(uint64(KindRangeDigest))
	_ = enc.EncodeUint(uint64(d.Count))
	_ = enc.EncodeArrayLen(RangeBuckets)
	for _, h := range d.Buckets {
		_ = enc.EncodeUint(h)
	}
	return buf.Bytes()
}

// DecodeRangeDigest decodes and validates a range digest: exactly
// RangeBuckets buckets, and no more occupied (non-zero) buckets than the
// count (an empty bucket sums to 0). Malformed input returns an error
// wrapping ErrDecode or ErrUnsupported; it allocates nothing for the
// buckets beyond the returned value.
func DecodeRangeDigest(b []byte) (RangeDigest, error) {
	if len(b) > MaxMessageBytes {
		return RangeDigest{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(b), MaxMessageBytes)
	}
	r := newReader(b)
	defer r.Release()
	r.header(KindRangeDigest, 4)
	var d RangeDigest
	d.Count = r.rangeCount()
	if n := r.ArrayLen("buckets", 1); r.OK() && n != RangeBuckets {
		r.Failf("%d buckets, want %d", n, RangeBuckets)
	}
	occupied := 0
	for i := 0; i < RangeBuckets && r.OK(); i++ {
		d.Buckets[i] = r.Uint("bucket")
		if d.Buckets[i] != 0 {
			occupied++
		}
	}
	if r.OK() && occupied > d.Count {
		r.Failf("%d occupied buckets for %d replicas", occupied, d.Count)
	}
	if err := r.End(); err != nil {
		return RangeDigest{}, err
	}
	return d, nil
}

// rangeCount reads a range message's replica count.
func (r *reader) rangeCount() int {
	n := r.Uint("count")
	if r.OK() && n > maxRangeCount {
		r.Failf("count %d out of range", n)
		return 0
	}
	return int(n)
}
