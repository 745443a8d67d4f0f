package bounded

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// TestString: strings of every header width (and nil) read back whole and
// leave the reader just past them; a claim longer than what is left is an
// error that allocates nothing for it.
func TestString(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	want := []string{"", "a", strings.Repeat("b", 31), strings.Repeat("c", 200), strings.Repeat("d", 70_000)}
	for _, s := range want {
		require.NoError(t, enc.EncodeString(s))
	}
	require.NoError(t, enc.EncodeNil())
	require.NoError(t, enc.EncodeUint(7))
	b := buf.Bytes()
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	for _, s := range want {
		got, err := String(dec, r, b)
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	got, err := String(dec, r, b)
	require.NoError(t, err)
	require.Empty(t, got, "nil reads as the empty string")
	n, err := dec.DecodeUint64()
	require.NoError(t, err)
	require.EqualValues(t, 7, n, "the reader is not just past the strings")

	huge := []byte{0xdb, 0x40, 0, 0, 0, 'x'} // str32 claiming 1 GiB, 1 byte left
	r = bytes.NewReader(huge)
	dec = msgpack.NewDecoder(r)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(huge)
		dec.Reset(r)
		_, err = String(dec, r, huge)
	})
	require.ErrorContains(t, err, "1073741824 bytes with 1 left")
	require.Less(t, allocs, 8.0, "a rejected claim allocated")

	one := []byte{0x01}
	r = bytes.NewReader(one)
	_, err = String(msgpack.NewDecoder(r), r, one)
	require.Error(t, err, "an integer is not a string")
}

// TestBytes: byte strings come back as slices of the input (not copies),
// an empty one empty but not nil, a nil one nil; a claim longer than what
// is left is an error.
func TestBytes(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	require.NoError(t, enc.EncodeBytes([]byte("abc")))
	require.NoError(t, enc.EncodeBytes([]byte{}))
	require.NoError(t, enc.EncodeNil())
	b := buf.Bytes()
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	got, err := Bytes(dec, r, b)
	require.NoError(t, err)
	require.Equal(t, []byte("abc"), got)
	require.Equal(t, len(got), cap(got), "the slice ends with the string")
	b[2] = 'X' // the first byte after the bin8 header
	require.Equal(t, []byte("Xbc"), got, "not a copy of the input")
	got, err = Bytes(dec, r, b)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got)
	got, err = Bytes(dec, r, b)
	require.NoError(t, err)
	require.Nil(t, got)

	huge := []byte{0xc6, 0x40, 0, 0, 0, 'x'} // bin32 claiming 1 GiB, 1 byte left
	r = bytes.NewReader(huge)
	_, err = Bytes(msgpack.NewDecoder(r), r, huge)
	require.Error(t, err)
}

var errTest = errors.New("test: malformed")

// TestReader: a layout reads back in order and End accepts it; every
// failure wraps the sentinel, sticks (later reads return zero values and
// keep the first failure), and a length whose items cannot fit in the
// bytes left, a nil array or trailing bytes are failures.
func TestReader(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	require.NoError(t, enc.EncodeArrayLen(5))
	require.NoError(t, enc.EncodeUint(42))
	require.NoError(t, enc.EncodeString("name"))
	require.NoError(t, enc.EncodeBool(true))
	require.NoError(t, enc.EncodeBytes([]byte("raw")))
	require.NoError(t, enc.EncodeNil())
	b := buf.Bytes()

	var r Reader
	r.Reset(b, errTest)
	require.Equal(t, 5, r.ArrayLen("message", 1))
	require.EqualValues(t, 42, r.Uint("n"))
	require.Equal(t, "name", r.String("s"))
	require.True(t, r.Bool("flag"))
	require.Equal(t, []byte("raw"), r.Bytes("payload"))
	require.Nil(t, r.Bytes("nil payload"))
	require.NoError(t, r.End())
	require.True(t, r.OK())
	r.Release()

	// The array claims 5 items of at least 3 bytes: 15 > the 13 bytes left.
	r.Reset(b, errTest)
	require.Zero(t, r.ArrayLen("message", 3))
	require.ErrorIs(t, r.Err(), errTest)
	require.ErrorContains(t, r.Err(), "message: length 5 exceeds the 13 bytes left")
	first := r.Err()
	require.Zero(t, r.Uint("n"), "a failed reader reads nothing")
	require.Empty(t, r.String("s"))
	r.Fail("later", errors.New("other"))
	r.SetErr(errors.New("other"))
	require.Same(t, first, r.End(), "the first failure sticks")
	r.Release()

	r.Reset([]byte{0xc0}, errTest) // nil where an array belongs
	require.Zero(t, r.ArrayLen("list", 1))
	require.ErrorContains(t, r.Err(), "list: nil array")
	r.Release()

	r.Reset([]byte{0x07, 0x08}, errTest) // one uint, then a byte too many
	require.EqualValues(t, 7, r.Uint("n"))
	require.Equal(t, 1, r.Left())
	require.ErrorIs(t, r.End(), errTest)
	require.ErrorContains(t, r.Err(), "1 trailing bytes")
	r.Release()

	r.Reset([]byte{0x01}, errTest)
	r.String("s")
	require.ErrorIs(t, r.Err(), errTest, "a decoder error is wrapped too")
	require.ErrorContains(t, r.Err(), "s: ")
	r.Release()

	sentinel := errors.New("other sentinel")
	r.Reset([]byte{0x01}, errTest)
	r.SetErr(sentinel)
	require.ErrorIs(t, r.End(), sentinel, "SetErr records its error as it is")
	require.NotErrorIs(t, r.Err(), errTest)
	r.Release()
}
