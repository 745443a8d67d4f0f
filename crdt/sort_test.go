package crdt

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestPropSortMembers: sortMembers orders like the plain field-by-field
// comparison, for ids that share long prefixes, are prefixes of each other,
// hold NUL bytes and repeat across owners, in one group or several.
func TestPropSortMembers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		groups := rapid.SampledFrom([]string{"g", "g2", "a"})
		oneGroup := rapid.Bool().Draw(t, "one group")
		id := rapid.SampledFrom([]string{"a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "abcdefgi", "abcdefghz", "a\x00", "\x00", "b", "zzzzzzzzzz", "é"})
		owner := rapid.SampledFrom([]ReplicaID{{"n1", 1}, {"n1", 2}, {"n2", 1}, {"n10", 1}})
		ms := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Member {
			m := Member{Group: "g", ID: id.Draw(t, "id"), Owner: owner.Draw(t, "owner")}
			if !oneGroup {
				m.Group = groups.Draw(t, "group")
			}
			return m
		}), 0, 40).Draw(t, "members")
		want := slices.Clone(ms)
		slices.SortStableFunc(want, func(a, b Member) int {
			return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.ID, b.ID),
				strings.Compare(a.Owner.Name, b.Owner.Name), cmp.Compare(a.Owner.Incarnation, b.Owner.Incarnation))
		})
		sortMembers(ms)
		if !slices.Equal(ms, want) {
			t.Fatalf("sorted\n%v\nwant\n%v", ms, want)
		}
	})
}

// BenchmarkSortMembers100: one group's 100 members, as a snapshot sorts
// them 1,000 times for a 100k-member scope.
func BenchmarkSortMembers100(b *testing.B) {
	base := make([]Member, 100)
	for i := range base {
		base[i] = Member{Group: "g42", ID: fmt.Sprintf("m%d", i*1000+7), Owner: ReplicaID{"n1", 3}}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(base), func(i, j int) { base[i], base[j] = base[j], base[i] })
	ms := make([]Member, len(base))
	for b.Loop() {
		copy(ms, base)
		sortMembers(ms)
	}
}

// TestPropRuns: runs groups indices by name, groups in order of first
// appearance and indices ascending within each, also when the pooled
// value is reused across calls.
func TestPropRuns(t *testing.T) {
	rs := getRuns()
	defer rs.release()
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "c", "dd", ""}), 0, 50).Draw(t, "names")
		var want [][]int32
		pos := map[string]int{}
		for i, n := range names {
			j, ok := pos[n]
			if !ok {
				j = len(want)
				pos[n] = j
				want = append(want, nil)
			}
			want[j] = append(want[j], int32(i))
		}
		rs.group(len(names), func(i int) string { return names[i] })
		var got [][]int32
		for r := range rs.len() {
			got = append(got, slices.Clone(rs.run(r)))
		}
		if !slices.EqualFunc(got, want, slices.Equal[[]int32]) {
			t.Fatalf("runs of %q: %v, want %v", names, got, want)
		}
	})
}
