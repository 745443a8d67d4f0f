package crdt

import (
	"fmt"
	"sort"
)

// tb is what the helpers need from *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// model is the visible membership rebuilt from events alone. apply fails the
// test on an event that contradicts it (join of a present member, leave or
// update of an absent one), so replaying events must yield the state.
type model map[string]RawMeta

func mkey(group, id string, owner ReplicaID) string {
	return fmt.Sprintf("%s/%s/%s", group, id, owner)
}

func (m model) apply(t tb, e Event) {
	t.Helper()
	k := mkey(e.Group, e.ID, e.Owner)
	_, had := m[k]
	switch e.Kind {
	case EventJoin:
		if had {
			t.Fatalf("join of present member %s (%v)", k, e.Cause)
		}
		m[k] = e.Meta
	case EventUpdate:
		if !had {
			t.Fatalf("update of absent member %s (%v)", k, e.Cause)
		}
		if m[k] == e.Meta {
			t.Fatalf("update of %s without a change", k)
		}
		m[k] = e.Meta
	case EventLeave:
		if !had {
			t.Fatalf("leave of absent member %s (%v)", k, e.Cause)
		}
		delete(m, k)
	default:
		t.Fatalf("bad event kind %v", e.Kind)
	}
}

func (m model) emit(t tb) Emit { return func(e Event) { m.apply(t, e) } }

// visible reads the state's visible membership through its query API.
func visible(s *State) model {
	out := model{}
	for _, g := range s.Groups() {
		ms := s.Members(g)
		if len(ms) == 0 {
			panic("Groups listed an empty group " + g)
		}
		for _, m := range ms {
			out[mkey(m.Group, m.ID, m.Owner)] = m.Meta
		}
	}
	return out
}

func (m model) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprint(keys)
}

func equalModels(a, b model) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func mustNew(t tb, name string, inc uint64, opts Options) *State {
	t.Helper()
	s, err := New(ReplicaID{name, inc}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mergeAll merges deltas, failing the test on error.
func mergeAll(t tb, s *State, ds []*Delta, emit Emit) {
	t.Helper()
	for _, d := range ds {
		if _, err := s.Merge(d, emit); err != nil {
			t.Fatalf("merge %s: %v", d.Replica, err)
		}
	}
}

// roundTrip sends a delta through the wire encoding.
func roundTrip(t tb, d *Delta) *Delta {
	t.Helper()
	out, err := DecodeDelta(EncodeDelta(d))
	if err != nil {
		t.Fatalf("round trip of %+v: %v", d, err)
	}
	return out
}
