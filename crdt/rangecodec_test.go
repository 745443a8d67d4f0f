package crdt

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// TestRangeMessageSizes: the root message is a few dozen bytes and the
// bucket message about 2.3 KB whatever the replica count; the full
// digest grows by over ten bytes a replica. Each decodes to what was
// encoded.
func TestRangeMessageSizes(t *testing.T) {
	for _, tc := range []struct {
		replicas       int
		bucketsAtLeast int // an empty bucket takes one byte, a full one nine
	}{
		{0, 260},
		{1, 260},
		{100, 900},
		{1_000, 2_280},
		{10_000, 2_300},
		{100_000, 2_300},
	} {
		var d Digest
		for i := range tc.replicas {
			d.Entries = append(d.Entries, DigestEntry{Name: fmt.Sprintf("node-%06d", i), Incarnation: 1, Top: uint64(1 + i%5000)})
		}
		rd := d.RangeDigest()
		root := EncodeRangeRoot(rd.Root(), rd.Count)
		buckets := EncodeRangeDigest(rd)
		full := EncodeDigest(d)
		t.Logf("%7d replicas: root %2d B, buckets %4d B, full digest %7d B", tc.replicas, len(root), len(buckets), len(full))
		require.LessOrEqual(t, len(root), 17, "root message at %d replicas", tc.replicas)
		require.GreaterOrEqual(t, len(buckets), tc.bucketsAtLeast, "bucket message at %d replicas", tc.replicas)
		require.LessOrEqual(t, len(buckets), 2_320, "bucket message at %d replicas", tc.replicas)
		require.GreaterOrEqual(t, len(full), 10*tc.replicas, "full digest at %d replicas", tc.replicas)

		gotRoot, gotCount, err := DecodeRangeRoot(root)
		require.NoError(t, err)
		require.Equal(t, rd.Root(), gotRoot)
		require.Equal(t, tc.replicas, gotCount)
		got, err := DecodeRangeDigest(buckets)
		require.NoError(t, err)
		require.Equal(t, rd, got)
	}
}

// msgpackOf encodes a message field by field: uint64 and int as unsigned
// integers, string as a string, []uint64 as an array of them, nil as nil.
func msgpackOf(t *testing.T, fields ...any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	require.NoError(t, enc.EncodeArrayLen(len(fields)))
	for _, f := range fields {
		switch v := f.(type) {
		case int:
			require.NoError(t, enc.EncodeUint(uint64(v)))
		case uint64:
			require.NoError(t, enc.EncodeUint(v))
		case string:
			require.NoError(t, enc.EncodeString(v))
		case []uint64:
			require.NoError(t, enc.EncodeArrayLen(len(v)))
			for _, u := range v {
				require.NoError(t, enc.EncodeUint(u))
			}
		case nil:
			require.NoError(t, enc.EncodeNil())
		default:
			t.Fatalf("msgpackOf: %T", f)
		}
	}
	return buf.Bytes()
}

// TestDecodeRangeMessagesRejects: every malformed range message is an
// error wrapping ErrDecode (ErrUnsupported for another version), every
// truncation of a valid one too, and a claimed bucket array longer than
// the message allocates nothing for it.
func TestDecodeRangeMessagesRejects(t *testing.T) {
	buckets := func(n int, nonzero ...int) []uint64 {
		out := make([]uint64, n)
		for _, i := range nonzero {
			out[i] = uint64(1000 + i)
		}
		return out
	}
	root := func(b []byte) error { _, _, err := DecodeRangeRoot(b); return err }
	digest := func(b []byte) error { _, err := DecodeRangeDigest(b); return err }
	hostile := append(msgpackOf(t, WireVersion, int(KindRangeDigest), 1), 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01)
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		msg    []byte
		want   error
	}{
		{"root: a digest", root, EncodeDigest(Digest{}), ErrDecode},
		{"root: a bucket message", root, EncodeRangeDigest(RangeDigest{}), ErrDecode},
		{"root: three fields", root, msgpackOf(t, WireVersion, int(KindRangeRoot), 7), ErrDecode},
		{"root: five fields", root, msgpackOf(t, WireVersion, int(KindRangeRoot), 7, 1, 0), ErrDecode},
		{"root: version 2", root, msgpackOf(t, 2, int(KindRangeRoot), 7, 1), ErrUnsupported},
		{"root: count 2^31", root, msgpackOf(t, WireVersion, int(KindRangeRoot), 7, 1<<31), ErrDecode},
		{"root: root a string", root, msgpackOf(t, WireVersion, int(KindRangeRoot), "7", 1), ErrDecode},
		{"root: trailing byte", root, append(EncodeRangeRoot(7, 1), 0), ErrDecode},
		{"root: empty", root, nil, ErrDecode},
		{"buckets: a root", digest, EncodeRangeRoot(7, 1), ErrDecode},
		{"buckets: 255", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 1, buckets(255)), ErrDecode},
		{"buckets: 257", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 1, buckets(257)), ErrDecode},
		{"buckets: none", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 0, buckets(0)), ErrDecode},
		{"buckets: nil", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 0, nil), ErrDecode},
		{"buckets: 2^31 claimed", digest, hostile, ErrDecode},
		{"buckets: a string", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 1, "x"), ErrDecode},
		{"buckets: more occupied than the count", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 1, buckets(256, 0, 255)), ErrDecode},
		{"buckets: occupied with count 0", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 0, buckets(256, 9)), ErrDecode},
		{"buckets: count 2^31", digest, msgpackOf(t, WireVersion, int(KindRangeDigest), 1<<31, buckets(256)), ErrDecode},
		{"buckets: version 2", digest, msgpackOf(t, 2, int(KindRangeDigest), 0, buckets(256)), ErrUnsupported},
		{"buckets: trailing byte", digest, append(EncodeRangeDigest(RangeDigest{}), 0), ErrDecode},
	} {
		require.ErrorIs(t, tc.decode(tc.msg), tc.want, tc.name)
	}
	// The same layouts, well formed, decode.
	r, n, err := DecodeRangeRoot(msgpackOf(t, WireVersion, int(KindRangeRoot), 7, 1<<31-1))
	require.NoError(t, err)
	require.Equal(t, uint64(7), r)
	require.Equal(t, 1<<31-1, n)
	d, err := DecodeRangeDigest(msgpackOf(t, WireVersion, int(KindRangeDigest), 2, buckets(256, 0, 255)))
	require.NoError(t, err)
	require.Equal(t, 2, d.Count)
	require.Equal(t, []int{0, 255}, DifferingBuckets(d, RangeDigest{}))

	var full RangeDigest
	full.Count = 300
	for i := range full.Buckets {
		full.Buckets[i] = mix64(uint64(i) + 1)
	}
	for _, msg := range [][]byte{EncodeRangeRoot(full.Root(), full.Count), EncodeRangeDigest(full)} {
		for n := range len(msg) {
			require.ErrorIs(t, root(msg[:n]), ErrDecode, "root message cut at %d", n)
			require.ErrorIs(t, digest(msg[:n]), ErrDecode, "bucket message cut at %d", n)
		}
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 50 {
		require.Error(t, digest(hostile))
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "50 hostile decodes allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
}

// TestMessageKindRange: the range messages have kinds of their own.
func TestMessageKindRange(t *testing.T) {
	for want, msg := range map[Kind][]byte{
		KindDigest:      EncodeDigest(Digest{}),
		KindRangeRoot:   EncodeRangeRoot(1, 1),
		KindRangeDigest: EncodeRangeDigest(RangeDigest{}),
	} {
		got, err := MessageKind(msg)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := MessageKind(msgpackOf(t, WireVersion, int(KindRangeDigest)+1, 0))
	require.ErrorIs(t, err, ErrDecode)
}

// BenchmarkSyncMessage: what one anti-entropy round costs a node of a
// 10,000-replica scope to build and send, with the full digest and with
// the range root; bytes/msg is the message's size.
func BenchmarkSyncMessage(b *testing.B) {
	s := replicaState(b, 10_000)
	for _, c := range []struct {
		name string
		msg  func() []byte
	}{
		{"full-digest", func() []byte { return EncodeDigest(s.Digest()) }},
		{"range-root", func() []byte { d := s.RangeDigest(); return EncodeRangeRoot(d.Root(), d.Count) }},
		{"range-digest", func() []byte { return EncodeRangeDigest(s.RangeDigest()) }},
	} {
		b.Run(c.name+"/replicas=10000", func(b *testing.B) {
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				size = len(c.msg())
			}
			b.ReportMetric(float64(size), "bytes/msg")
		})
	}
}
