package dissem

import "time"

// record is one retained message: its id (to spot duplicates) and, for a
// Plumtree message, its payload (to answer GRAFTs).
type record struct {
	id      MsgID
	seq     uint64 // position in the store, for the index
	at      time.Time
	payload []byte
	round   uint16 // the Round this node sends it with
	plum    bool   // payload retained: a Plumtree message
	// grafted is the peer whose answer to this node's GRAFT delivered it,
	// until a duplicate shows that the graft raced the tree (plumtree.go).
	grafted string
}

// store is the retained messages in the order received: a FIFO, so that
// both Retain (oldest first by time) and MaxRetained (oldest first by
// count) drop from its head. Memory is O(retained messages).
type store struct {
	recs []record // recs[head:] are live
	head int
	byID map[MsgID]uint64 // id -> seq of its record
	next uint64           // seq of the next record added
}

func (s *store) len() int { return len(s.recs) - s.head }

func (s *store) get(id MsgID) *record {
	seq, ok := s.byID[id]
	if !ok {
		return nil
	}
	return &s.recs[s.head+int(seq-s.recs[s.head].seq)]
}

func (s *store) has(id MsgID) bool {
	_, ok := s.byID[id]
	return ok
}

// add appends r (whose id must not be retained); if that makes more than
// max records, the oldest is dropped and add reports true.
func (s *store) add(r record, max int) (evicted bool) {
	if s.byID == nil {
		s.byID = make(map[MsgID]uint64)
	}
	r.seq = s.next
	s.next++
	s.recs = append(s.recs, r)
	s.byID[r.id] = r.seq
	if s.len() > max {
		s.dropHead()
		return true
	}
	return false
}

// expire drops the records received at or before cutoff and returns how
// many.
func (s *store) expire(cutoff time.Time) int {
	n := 0
	for s.len() > 0 && !s.recs[s.head].at.After(cutoff) {
		s.dropHead()
		n++
	}
	return n
}

// oldest is the receipt time of the oldest record.
func (s *store) oldest() (time.Time, bool) {
	if s.len() == 0 {
		return time.Time{}, false
	}
	return s.recs[s.head].at, true
}

func (s *store) dropHead() {
	delete(s.byID, s.recs[s.head].id)
	s.recs[s.head] = record{} // release the payload
	s.head++
	if s.head == len(s.recs) {
		s.recs, s.head = s.recs[:0], 0
	} else if s.head >= 64 && s.head*2 >= len(s.recs) {
		n := copy(s.recs, s.recs[s.head:])
		clear(s.recs[n:])
		s.recs, s.head = s.recs[:n], 0
	}
}

// each calls f on every record, oldest first.
func (s *store) each(f func(*record)) {
	for i := s.head; i < len(s.recs); i++ {
		f(&s.recs[i])
	}
}
