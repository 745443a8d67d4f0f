package crdt

import "sort"

// Range is an inclusive range of counters [Lo, Hi], 1 <= Lo <= Hi < MaxCounter.
type Range struct{ Lo, Hi uint64 }

// ctxSet is one replica's causal context as seen locally: every counter in
// 1..top, plus the sorted, disjoint, non-adjacent ranges in cloud (all above
// top+1). It is compacted on every insertion: a range that reaches top+1 is
// folded into top, so a replica that has seen everything is a single number.
type ctxSet struct {
	top   uint64
	cloud []Range
}

func (c *ctxSet) contains(n uint64) bool {
	if n == 0 {
		return false
	}
	if n <= c.top {
		return true
	}
	i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Hi >= n })
	return i < len(c.cloud) && c.cloud[i].Lo <= n
}

// max is the highest counter in the context (0 when empty).
func (c *ctxSet) max() uint64 {
	if len(c.cloud) > 0 {
		return c.cloud[len(c.cloud)-1].Hi
	}
	return c.top
}

// add inserts [lo, hi] and compacts.
func (c *ctxSet) add(lo, hi uint64) {
	if hi <= c.top {
		return
	}
	if lo <= c.top+1 {
		c.top = hi
	} else {
		// Insert into the cloud, merging overlapping or adjacent ranges.
		i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Hi+1 >= lo })
		j := i
		for j < len(c.cloud) && c.cloud[j].Lo <= hi+1 {
			lo = min(lo, c.cloud[j].Lo)
			hi = max(hi, c.cloud[j].Hi)
			j++
		}
		if i == j {
			c.cloud = append(c.cloud, Range{})
			copy(c.cloud[i+1:], c.cloud[i:])
			c.cloud[i] = Range{lo, hi}
		} else {
			c.cloud[i] = Range{lo, hi}
			c.cloud = append(c.cloud[:i+1], c.cloud[j:]...)
		}
	}
	// Fold the cloud into top while it touches it.
	k := 0
	for k < len(c.cloud) && c.cloud[k].Lo <= c.top+1 {
		c.top = max(c.top, c.cloud[k].Hi)
		k++
	}
	if k > 0 {
		c.cloud = append(c.cloud[:0], c.cloud[k:]...)
	}
	if len(c.cloud) == 0 {
		c.cloud = nil
	}
}

// ranges returns the context as sorted disjoint ranges.
func (c *ctxSet) ranges() []Range {
	out := make([]Range, 0, 1+len(c.cloud))
	if c.top > 0 {
		out = append(out, Range{1, c.top})
	}
	return append(out, c.cloud...)
}

// clip returns the parts of the context within [lo, hi].
func (c *ctxSet) clip(lo, hi uint64) []Range {
	var out []Range
	for _, r := range c.ranges() {
		l, h := max(r.Lo, lo), min(r.Hi, hi)
		if l <= h {
			out = append(out, Range{l, h})
		}
	}
	return out
}

// overlaps reports whether any counter of rs is in the context.
func (c *ctxSet) overlaps(rs []Range) bool {
	for _, r := range rs {
		if r.Lo <= c.top {
			return true
		}
		i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Hi >= r.Lo })
		if i < len(c.cloud) && c.cloud[i].Lo <= r.Hi {
			return true
		}
	}
	return false
}

// rangesContain reports whether n lies in the sorted disjoint ranges rs.
func rangesContain(rs []Range, n uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi >= n })
	return i < len(rs) && rs[i].Lo <= n
}

// clipRanges returns the parts of rs within [lo, hi].
func clipRanges(rs []Range, lo, hi uint64) []Range {
	var out []Range
	for _, r := range rs {
		l, h := max(r.Lo, lo), min(r.Hi, hi)
		if l <= h {
			out = append(out, Range{l, h})
		}
	}
	return out
}
