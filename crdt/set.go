package crdt

import "iter"

// smallSet is how many members a memberSet keeps inline before switching to
// a map. Most groups in presence-style workloads hold one or a few members
// per owner, and a Go map costs a few hundred bytes even with one entry.
const smallSet = 8

type member struct {
	id string
	e  entry
}

// memberSet is one slice's members of one group, keyed by member id.
type memberSet struct {
	small []member
	m     map[string]entry
}

func (s *memberSet) len() int {
	if s.m != nil {
		return len(s.m)
	}
	return len(s.small)
}

// get returns id's entry; a nil set holds nothing.
func (s *memberSet) get(id string) (entry, bool) {
	if s == nil {
		return entry{}, false
	}
	if s.m != nil {
		e, ok := s.m[id]
		return e, ok
	}
	for i := range s.small {
		if s.small[i].id == id {
			return s.small[i].e, true
		}
	}
	return entry{}, false
}

// reserve makes room for n more members: a set about to outgrow its
// inline slice gets a map of its final size at once, rather than growing
// one through every doubling. (A Go map cannot be grown in place.)
func (s *memberSet) reserve(n int) {
	if s.m != nil || len(s.small)+n <= smallSet {
		return
	}
	s.toMap(len(s.small) + n)
}

// toMap moves the inline members into a map sized for size members.
func (s *memberSet) toMap(size int) {
	s.m = make(map[string]entry, size)
	for _, x := range s.small {
		s.m[x.id] = x.e
	}
	s.small = nil
}

// set stores e under id and returns the previous entry, if any.
func (s *memberSet) set(id string, e entry) (entry, bool) {
	if s.m != nil {
		old, had := s.m[id]
		s.m[id] = e
		return old, had
	}
	for i := range s.small {
		if s.small[i].id == id {
			old := s.small[i].e
			s.small[i].e = e
			return old, true
		}
	}
	if len(s.small) < smallSet {
		s.small = append(s.small, member{id, e})
		return entry{}, false
	}
	s.toMap(2 * smallSet)
	s.m[id] = e
	return entry{}, false
}

// insert stores e under an id the set does not hold.
func (s *memberSet) insert(id string, e entry) {
	if s.m != nil {
		s.m[id] = e
		return
	}
	if len(s.small) < smallSet {
		s.small = append(s.small, member{id, e})
		return
	}
	s.set(id, e)
}

// del removes id and returns its entry, if it was there.
func (s *memberSet) del(id string) (entry, bool) {
	if s.m != nil {
		old, had := s.m[id]
		delete(s.m, id)
		return old, had
	}
	for i := range s.small {
		if s.small[i].id == id {
			old := s.small[i].e
			last := len(s.small) - 1
			s.small[i] = s.small[last]
			s.small[last] = member{}
			s.small = s.small[:last]
			return old, true
		}
	}
	return entry{}, false
}

// all iterates over the members (in no particular order).
func (s *memberSet) all() iter.Seq2[string, entry] {
	return func(yield func(string, entry) bool) {
		if s.m != nil {
			for id, e := range s.m {
				if !yield(id, e) {
					return
				}
			}
			return
		}
		for _, x := range s.small {
			if !yield(x.id, x.e) {
				return
			}
		}
	}
}

// ownerSet is one owner's member set within a group.
type ownerSet struct {
	sl  *slice
	set *memberSet
}
