package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for every decoder. The default test run executes them over
// their seed corpus; fuzz each with, for example:
//
//	go test ./crdt -run '^$' -fuzz '^FuzzDecodeDelta$' -fuzztime 1m

// fuzzSeeds returns encodings of real deltas of every shape: local joins,
// updates, leaves, plain repairs, chunked authoritative transfers.
func fuzzSeeds(t testing.TB) [][]byte {
	a := mustNew(t, "a", 7, Options{LogCap: 2})
	var out [][]byte
	add := func(d *Delta, err error) {
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			out = append(out, EncodeDelta(d))
		}
	}
	add(a.Join("room", "u1", Meta{"addr": "10.0.0.5:4000"}, nil))
	add(a.Join("room", "u2", nil, nil))
	add(a.Join("room", "u1", Meta{"addr": "10.0.0.6:4000", "zone": "eu"}, nil))
	add(a.Join("lobby", "u1", nil, nil))
	add(a.Leave("room", "u2", nil))
	add(a.LeaveAll("u1", nil))
	add(a.Join("room", "u3", nil, nil))
	b := mustNew(t, "b", 1, DefaultOptions())
	for _, d := range a.Snapshot(1) {
		out = append(out, EncodeDelta(d))
	}
	for _, d := range a.Diff(b.Digest(), 0) {
		out = append(out, EncodeDelta(d))
	}
	return out
}

func FuzzDecodeDelta(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x9c, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidDelta) && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v wraps no crdt sentinel", err)
			}
			return
		}
		// A decoded delta is valid, re-encodes to something that decodes to
		// the same delta, and merges without error or panic.
		again, err := DecodeDelta(EncodeDelta(d))
		if err != nil {
			t.Fatalf("re-encoded delta does not decode: %v", err)
		}
		if !bytes.Equal(EncodeDelta(again), EncodeDelta(d)) {
			t.Fatalf("encoding not stable")
		}
		s := mustNew(t, "obs", 1, DefaultOptions())
		if _, err := s.Join("room", "mine", nil, nil); err != nil {
			t.Fatal(err)
		}
		m := model{}
		for _, g := range s.Groups() {
			for _, mem := range s.Members(g) {
				m[mkey(mem.Group, mem.ID, mem.Owner)] = mem.Meta
			}
		}
		if _, err := s.Merge(d, m.emit(t)); err != nil {
			t.Fatalf("decoded delta rejected by Merge: %v", err)
		}
		if !equalModels(m, visible(s)) {
			t.Fatalf("events replay to %v, state shows %v", m, visible(s))
		}
		_ = s.Describe(true)
		_ = s.Diff(Digest{}, 64)
		// Released and decoded again (maybe into the same memory), it
		// is the same delta, and the state merged from it is unchanged.
		before := visible(s)
		want := EncodeDelta(d)
		d.Release()
		again.Release()
		third, err := DecodeDelta(b)
		if err != nil {
			t.Fatalf("decodes once, not after a release: %v", err)
		}
		if !bytes.Equal(EncodeDelta(third), want) {
			t.Fatalf("decoded differently after a release")
		}
		if !equalModels(before, visible(s)) {
			t.Fatalf("a release changed the state: %v, then %v", before, visible(s))
		}
	})
}

func FuzzDecodeDigest(f *testing.F) {
	a := mustNew(f, "a", 1, DefaultOptions())
	for _, n := range []string{"b", "c"} {
		o := mustNew(f, n, 3, DefaultOptions())
		d, _ := o.Join("g", "x", nil, nil)
		if _, err := a.Merge(d, nil); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(EncodeDigest(a.Digest()))
	f.Add(EncodeDigest(Digest{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDigest(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps no crdt sentinel", err)
			}
			return
		}
		if !bytes.Equal(EncodeDigest(d), b) {
			// Not every valid encoding is canonical (msgpack has several
			// widths per integer), but a re-encoding must decode the same.
			again, err := DecodeDigest(EncodeDigest(d))
			if err != nil || len(again.Entries) != len(d.Entries) {
				t.Fatalf("re-encoded digest differs: %v", err)
			}
		}
		// Any valid digest can be answered and observed.
		_ = a.Diff(d, 128)
		s := mustNew(t, "obs", 1, DefaultOptions())
		s.Observe(d, nil)
	})
}

func FuzzDecodeRangeRoot(f *testing.F) {
	for _, d := range rangeSeeds(f) {
		f.Add(EncodeRangeRoot(d.Root(), d.Count))
	}
	f.Add(EncodeRangeRoot(1<<64-1, 1<<31-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		root, count, err := DecodeRangeRoot(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps no crdt sentinel", err)
			}
			return
		}
		if count < 0 {
			t.Fatalf("decoded a negative count %d", count)
		}
		// Re-encoded, it decodes to the same root and count.
		root2, count2, err := DecodeRangeRoot(EncodeRangeRoot(root, count))
		if err != nil || root2 != root || count2 != count {
			t.Fatalf("re-encoded root decodes to %#x, %d (%v), want %#x, %d", root2, count2, err, root, count)
		}
	})
}

func FuzzDecodeRangeDigest(f *testing.F) {
	for _, d := range rangeSeeds(f) {
		f.Add(EncodeRangeDigest(d))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeRangeDigest(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps no crdt sentinel", err)
			}
			return
		}
		// Re-encoded, it decodes to the same digest, and compares with
		// a state's without error or panic.
		again, err := DecodeRangeDigest(EncodeRangeDigest(d))
		if err != nil || again != d {
			t.Fatalf("re-encoded range digest decodes to %v (%v), want %v", again, err, d)
		}
		occupied := len(DifferingBuckets(d, RangeDigest{}))
		if d.Count < 0 || occupied > d.Count {
			t.Fatalf("count %d with %d occupied buckets", d.Count, occupied)
		}
		s := mustNew(t, "obs", 1, DefaultOptions())
		bs := DifferingBuckets(d, s.RangeDigest())
		_ = s.DiffIn(s.DigestIn(bs), bs, 64)
	})
}

// rangeSeeds returns range digests of states of several sizes.
func rangeSeeds(t testing.TB) []RangeDigest {
	out := []RangeDigest{{}}
	for _, n := range []int{1, 3, 300} {
		var d Digest
		for i := range n {
			d.Entries = append(d.Entries, DigestEntry{Name: fmt.Sprintf("node-%03d", i), Incarnation: 1, Top: uint64(i + 1)})
		}
		out = append(out, d.RangeDigest())
	}
	a := mustNew(t, "a", 1, DefaultOptions())
	if _, err := a.Join("g", "x", nil, nil); err != nil {
		t.Fatal(err)
	}
	return append(out, a.RangeDigest())
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{{"addr": "10.0.0.5:4000"}, {"a": "", "b": "ü"}} {
		raw, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := RawMeta(b).Decode()
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("error %v does not wrap ErrInvalidMeta", err)
			}
			return
		}
		// Accepted metadata is canonical: it re-encodes to the same bytes.
		raw, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		if len(b) > 0 && string(raw) != string(b) {
			t.Fatalf("accepted non-canonical metadata %x (canonical %x)", b, raw)
		}
	})
}

// TestDecodeHostileLengths: a string header claiming far more bytes than
// the input holds is rejected before anything is allocated for it.
// msgpack's own DecodeString allocated a megabyte per such string and kept
// what it grew in the pooled decoder: 30 deltas of 8 bytes left 800 MiB
// live.
func TestDecodeHostileLengths(t *testing.T) {
	huge := []byte{0xdb, 0x20, 0, 0, 0} // str32 of 512 MiB
	for _, tc := range []struct {
		name   string
		decode func() error
	}{
		{"delta replica name", func() error {
			// (Padded: the 12-field header must fit what is left.)
			_, err := DecodeDelta(append(append([]byte{0x9c, WireVersion, byte(KindDelta)}, huge...), make([]byte, 12)...))
			return err
		}},
		{"metadata key", func() error {
			_, err := RawMeta(append([]byte{0x81}, huge...)).Decode()
			return err
		}},
		{"metadata value", func() error {
			_, err := RawMeta(append([]byte{0x81, 0xa1, 'k'}, huge...)).Decode()
			return err
		}},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 50 {
			require.Error(t, tc.decode(), tc.name)
		}
		runtime.ReadMemStats(&after)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "%s: 50 decodes allocated %d bytes", tc.name, after.TotalAlloc-before.TotalAlloc)
	}
}
