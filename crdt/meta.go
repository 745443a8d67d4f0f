package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/roster-io/roster/internal/bounded"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is a member's metadata: a small string map (e.g. an address).
type Meta map[string]string

// RawMeta is the canonical encoding of a Meta (msgpack map, keys sorted).
// The empty string is the empty Meta. Two equal Metas have equal RawMeta, so
// the state stores and compares metadata without decoding it.
type RawMeta string

// EncodeMeta validates m and returns its canonical encoding.
func EncodeMeta(m Meta) (RawMeta, error) {
	if len(m) == 0 {
		return "", nil
	}
	if len(m) > MaxMetaPairs {
		return "", fmt.Errorf("%w: %d pairs, limit %d", ErrInvalidMeta, len(m), MaxMetaPairs)
	}
	var stack [8]string
	keys := stack[:0]
	for k, v := range m {
		if err := ValidName(k); err != nil {
			return "", fmt.Errorf("%w: key %q: %w", ErrInvalidMeta, k, err)
		}
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("%w: value of %q is not valid UTF-8", ErrInvalidMeta, k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	buf := metaBufs.Get().(*bytes.Buffer)
	defer metaBufs.Put(buf)
	buf.Reset()
	enc.Reset(buf)
	_ = enc.EncodeMapLen(len(keys))
	for _, k := range keys {
		_ = enc.EncodeString(k)
		_ = enc.EncodeString(m[k])
	}
	if buf.Len() > MaxMetaBytes {
		return "", fmt.Errorf("%w: %d bytes encoded, limit %d", ErrInvalidMeta, buf.Len(), MaxMetaBytes)
	}
	return RawMeta(buf.String()), nil
}

var metaBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Decode returns the Meta that r encodes. It fails only on a RawMeta that did
// not come from EncodeMeta or a validated message.
func (r RawMeta) Decode() (Meta, error) {
	if r == "" {
		return nil, nil
	}
	return decodeMeta([]byte(r))
}

// MustDecode is Decode for RawMeta already validated (everything the State
// holds): it returns nil on the impossible error.
func (r RawMeta) MustDecode() Meta {
	m, err := r.Decode()
	if err != nil {
		return nil
	}
	return m
}

// decodeMeta parses and validates canonical metadata: a map of at most
// MaxMetaPairs string pairs, keys valid names in strictly ascending order,
// values valid UTF-8, nothing trailing.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidMeta, len(b), MaxMetaBytes)
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	if err != nil || n <= 0 || n > MaxMetaPairs {
		return nil, fmt.Errorf("%w: bad map header (len %d): %v", ErrInvalidMeta, n, err)
	}
	m := make(Meta, n)
	prev := ""
	for i := 0; i < n; i++ {
		k, err := bounded.String(dec, r, b)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrInvalidMeta, i, err)
		}
		v, err := bounded.String(dec, r, b)
		if err != nil {
			return nil, fmt.Errorf("%w: value %d: %v", ErrInvalidMeta, i, err)
		}
		if ValidName(k) != nil || !utf8.ValidString(v) || (i > 0 && k <= prev) {
			return nil, fmt.Errorf("%w: pair %d not canonical", ErrInvalidMeta, i)
		}
		prev = k
		m[k] = v
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidMeta, r.Len())
	}
	// Only the canonical encoding is accepted, so equal metadata always has
	// equal bytes (msgpack allows several widths for one value).
	if canon, err := EncodeMeta(m); err != nil || string(canon) != string(b) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrInvalidMeta)
	}
	return m, nil
}
