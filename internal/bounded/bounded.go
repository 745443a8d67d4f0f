// Package bounded reads msgpack values whose size a header claims only
// after checking the claim against the bytes actually left. It is the one
// positional msgpack reader of the decoders of crdt and gossip, which read
// untrusted network input: Reader, and the String and Bytes it is built
// on. It must not grow into a codec of its own: each message's layout
// stays with the package that owns it.
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

// Reader reads positional msgpack (arrays of plain values) from a byte
// slice, with bounds: every array length and string length is checked
// against the bytes left before anything is allocated for it, so a
// hostile header cannot make it allocate more than the message itself.
//
// The first failure sticks: every later read returns a zero value and
// leaves it in place, so a decoder reads a whole layout and checks Err
// (or End) once. Failures wrap the sentinel given to Reset.
type Reader struct {
	b        []byte
	r        bytes.Reader
	dec      *msgpack.Decoder
	err      error
	sentinel error
}

// Reset makes the reader read b, with a decoder from msgpack's pool (give
// it back with Release); its failures will wrap sentinel.
func (r *Reader) Reset(b []byte, sentinel error) {
	r.b, r.err, r.sentinel = b, nil, sentinel
	r.r.Reset(b)
	r.dec = msgpack.GetDecoder()
	r.dec.Reset(&r.r) // also clears options a previous user of the pool set
}

// Release returns the reader's decoder to msgpack's pool (which detaches
// it from the input); the reader must not be used until Reset again.
// Decoded strings are copies; byte slices (Bytes) alias the input. A
// decoder that failed is not pooled: whatever it was reading may have
// grown its buffers.
func (r *Reader) Release() {
	if r.err == nil && r.dec != nil {
		msgpack.PutDecoder(r.dec)
	}
	r.dec = nil
}

// OK reports whether nothing has failed yet.
func (r *Reader) OK() bool { return r.err == nil }

// Err returns the first failure, or nil.
func (r *Reader) Err() error { return r.err }

// SetErr records err as it is, unless a failure is already recorded (for
// errors a caller classifies with another sentinel).
func (r *Reader) SetErr(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Failf records a failure wrapping the sentinel, unless one is recorded.
func (r *Reader) Failf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", r.sentinel, fmt.Sprintf(format, args...))
	}
}

// Fail records err as the failure reading what.
func (r *Reader) Fail(what string, err error) { r.Failf("%s: %v", what, err) }

// Left returns how many bytes are still unread.
func (r *Reader) Left() int { return r.r.Len() }

// ArrayLen reads an array header. Each of its items takes at least
// minItemBytes: a length whose items could not fit in what is left, or a
// nil array, is a failure (0 is returned).
func (r *Reader) ArrayLen(what string, minItemBytes int) int {
	if r.err != nil {
		return 0
	}
	n, err := r.dec.DecodeArrayLen()
	switch {
	case err != nil:
		r.Fail(what, err)
		return 0
	case n < 0:
		r.Failf("%s: nil array", what)
		return 0
	case n*max(minItemBytes, 1) > r.r.Len():
		r.Failf("%s: length %d exceeds the %d bytes left", what, n, r.r.Len())
		return 0
	}
	return n
}

// Uint reads an unsigned integer.
func (r *Reader) Uint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.dec.DecodeUint64()
	if err != nil {
		r.Fail(what, err)
	}
	return v
}

// Bool reads a boolean.
func (r *Reader) Bool(what string) bool {
	if r.err != nil {
		return false
	}
	v, err := r.dec.DecodeBool()
	if err != nil {
		r.Fail(what, err)
	}
	return v
}

// String reads a string (nil reads as ""), checked as String is.
func (r *Reader) String(what string) string {
	if r.err != nil {
		return ""
	}
	v, err := String(r.dec, &r.r, r.b)
	if err != nil {
		r.Fail(what, err)
	}
	return v
}

// Bytes reads a byte string as a slice of the input, checked as Bytes is:
// nil for a msgpack nil, empty but not nil for an empty one.
func (r *Reader) Bytes(what string) []byte {
	if r.err != nil {
		return nil
	}
	v, err := Bytes(r.dec, &r.r, r.b)
	if err != nil {
		r.Fail(what, err)
		return nil
	}
	return v
}

// End fails if bytes are left after the message, and returns the first
// failure, or nil.
func (r *Reader) End() error {
	if r.err == nil && r.r.Len() != 0 {
		r.Failf("%d trailing bytes", r.r.Len())
	}
	return r.err
}
