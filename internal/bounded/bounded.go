// Package bounded reads msgpack values whose size a header claims only
// after checking the claim against the bytes actually left. It is shared by
// the decoders of crdt and gossip, which read untrusted network input; it
// holds no state and must not grow into a codec of its own.
package bounded

import (
	"bytes"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// String reads a msgpack string (or nil, read as "") from dec, which reads
// r, a reader over b. msgpack's own DecodeString allocates for the length
// the header claims, a megabyte at a time, and keeps what it grew in the
// decoder, so a few bytes claiming gigabytes would make it allocate (and,
// pooled, hold) that much; here a claim longer than what is left is an
// error before anything is allocated.
func String(dec *msgpack.Decoder, r *bytes.Reader, b []byte) (string, error) {
	v, err := Bytes(dec, r, b)
	return string(v), err
}

// Bytes is String for a byte string, returned as a slice of b, not a
// copy (what the caller keeps, it copies): nil for a msgpack nil, empty
// but not nil for an empty string.
func Bytes(dec *msgpack.Decoder, r *bytes.Reader, b []byte) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	switch {
	case err != nil:
		return nil, err
	case n < 0:
		return nil, nil
	case n > r.Len():
		return nil, fmt.Errorf("string of %d bytes with %d left", n, r.Len())
	}
	at := len(b) - r.Len()
	_, _ = r.Seek(int64(n), io.SeekCurrent)
	return b[at : at+n : at+n], nil
}
