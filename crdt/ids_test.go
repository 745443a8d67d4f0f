package crdt

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// validNameSpec is ValidName's definition written plainly: what the
// one-pass implementation must agree with.
func validNameSpec(s string) bool {
	if s == "" || len(s) > MaxNameBytes || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// TestValidNameMatchesSpec: on arbitrary bytes, mostly short and biased to
// the edges (C0, DEL, C1, invalid and multi-byte UTF-8), ValidName accepts
// exactly what its definition does, and names the reason when it refuses.
func TestValidNameMatchesSpec(t *testing.T) {
	edges := []string{"\x00", "\n", "\x1f", " ", "~", "\x7f", "\u0080", "\u009f", "\u00a0", "é", "\u2028", "\U0001F600", "\xff", "\xc3", "\xed\xa0\x80", "a"}
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		for _, p := range rapid.SliceOfN(rapid.OneOf(rapid.SampledFrom(edges), rapid.String()), 0, 8).Draw(t, "parts") {
			b.WriteString(p)
		}
		s := b.String()
		err := ValidName(s)
		if want := validNameSpec(s); (err == nil) != want {
			t.Fatalf("ValidName(%q) = %v, want valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("ValidName(%q) = %v, not ErrInvalidName", s, err)
		}
	})
	for _, s := range []string{"conn 1", "é", "room/1", strings.Repeat("x", MaxNameBytes)} {
		if err := ValidName(s); err != nil {
			t.Errorf("ValidName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "a\x00", "\u0085", "\xff", strings.Repeat("x", MaxNameBytes+1)} {
		if ValidName(s) == nil {
			t.Errorf("ValidName(%q) accepted", s)
		}
	}
}
