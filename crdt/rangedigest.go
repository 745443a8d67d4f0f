package crdt

// RangeBuckets is the number of buckets a RangeDigest splits the replicas
// into. It is part of the wire format (EncodeRangeDigest).
const RangeBuckets = 256

// RangeDigest summarises a Digest in a size that does not grow with the
// replicas: the replicas are split into RangeBuckets buckets by a hash of
// their name (rangeBucket), and each bucket holds the sum, mod 2^64, of its
// entries' hashes (entryHash). Two states whose Digests are equal have
// equal RangeDigests; up to hash collisions, only they do. Where two
// RangeDigests differ, DifferingBuckets names the buckets, and DigestIn
// and DiffIn exchange and repair only the replicas in those.
//
// The hashes are part of the wire contract: a replica's bucket is its
// name's FNV-1a 64 hash mod RangeBuckets; an entry's hash is
// mix(mix(mix(fnv) ^ incarnation) ^ top) with mix the splitmix64
// finaliser; Root chains the count and the buckets through mix.
type RangeDigest struct {
	// Count is the number of entries (replicas the Digest lists).
	Count int
	// Buckets[b] is the sum of the hashes of the entries in bucket b.
	Buckets [RangeBuckets]uint64
}

// RangeDigest returns the state's range digest: Digest().RangeDigest(),
// computed without listing or sorting the entries.
func (s *State) RangeDigest() RangeDigest {
	var d RangeDigest
	for _, sl := range s.slices {
		if sl.listed() {
			d.add(sl.key, sl.id.Incarnation, sl.ctx.top)
		}
	}
	return d
}

// RangeDigest returns the range digest of a plain digest: what the state
// it describes would compute.
func (d Digest) RangeDigest() RangeDigest {
	var r RangeDigest
	for _, e := range d.Entries {
		r.add(nameKey(e.Name), e.Incarnation, e.Top)
	}
	return r
}

func (d *RangeDigest) add(key, inc, top uint64) {
	d.Count++
	d.Buckets[key%RangeBuckets] += entryHash(key, inc, top)
}

// Root returns one hash of the whole range digest (its count and every
// bucket): equal digests have equal roots, and two that differ in one
// bucket, or in the count alone, never do.
func (d RangeDigest) Root() uint64 {
	h := mix64(uint64(d.Count) + splitmixGamma)
	for _, b := range d.Buckets {
		h = mix64(h ^ b)
	}
	return h
}

// DifferingBuckets returns, in ascending order, the buckets whose sums
// differ between a and b: the only ones whose replicas need comparing.
func DifferingBuckets(a, b RangeDigest) []int {
	var out []int
	for i := range a.Buckets {
		if a.Buckets[i] != b.Buckets[i] {
			out = append(out, i)
		}
	}
	return out
}

// DigestIn returns the state's digest restricted to the replicas in the
// given buckets (numbers outside [0, RangeBuckets) select nothing): the
// entries a peer needs once the range digests have narrowed a difference
// down to those buckets.
func (s *State) DigestIn(buckets []int) Digest {
	in := bucketsOf(buckets)
	return s.digest(&in)
}

// DiffIn is Diff for the replicas in the given buckets only: peer is a
// digest restricted to them (DigestIn), so a replica in those buckets that
// it does not list is one the peer lacks. Replicas outside the buckets
// are not compared, whatever peer lists of them.
func (s *State) DiffIn(peer Digest, buckets []int, maxBytes int) []*Delta {
	in := bucketsOf(buckets)
	return s.diff(peer, &in, maxBytes)
}

// bucketSet is a set of buckets; a nil *bucketSet holds them all.
type bucketSet [RangeBuckets / 64]uint64

func bucketsOf(buckets []int) bucketSet {
	var in bucketSet
	for _, b := range buckets {
		if b >= 0 && b < RangeBuckets {
			in[b/64] |= 1 << (b % 64)
		}
	}
	return in
}

// holds reports whether the replica with name key k is in the set.
func (in *bucketSet) holds(k uint64) bool {
	if in == nil {
		return true
	}
	b := k % RangeBuckets
	return in[b/64]&(1<<(b%64)) != 0
}

// nameKey is the FNV-1a 64 hash of a replica's name. A slice keeps its
// own (slice.key), so RangeDigest does not hash the names again.
func nameKey(name string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * fnvPrime
	}
	return h
}

// entryHash is the hash of one digest entry: each of the name's key, the
// incarnation and the top goes through the splitmix64 finaliser in turn,
// so the hashes of a replica's successive tops are unrelated, and sums of
// them do not cancel.
func entryHash(key, inc, top uint64) uint64 {
	return mix64(mix64(mix64(key)^inc) ^ top)
}

// mix64 is the splitmix64 finaliser: a bijection of uint64 in which every
// input bit affects every output bit.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const (
	fnvOffset     = 14695981039346656037
	fnvPrime      = 1099511628211
	splitmixGamma = 0x9e3779b97f4a7c15
)
