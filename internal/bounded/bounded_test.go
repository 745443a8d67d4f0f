package bounded

import (
	"bytes"
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
