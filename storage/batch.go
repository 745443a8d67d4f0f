package storage

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// MemberWrite is one change of a WriteMembers batch: Member put (inserted
// or replaced, as PutMember), or, with Delete, the member (Scope, Group,
// ID) removed (as DeleteMember; Meta and Session are then ignored).
type MemberWrite struct {
	Member
	Delete bool
}

// WriteMembers applies many member writes in one atomic Pebble batch,
// acknowledged according to the SyncMode: with SyncAlways, one fsync for
// the whole batch (shared, like every synced write, with concurrent
// writers through group commit) instead of one per member.
//
// Each write is checked as PutMember or DeleteMember would check it, and a
// write that fails its check is left out while the others are written:
// errs has one entry per write, nil or an ErrInvalid error (a bad name or
// metadata, a session that does not exist, or a member already written
// earlier in the same batch). err, when set, is a failure of the whole
// batch (ErrIO, ErrClosed, ErrCorrupt): then nothing was written, and errs
// is nil. The session checks are atomic with respect to DeleteSession, as
// PutMember's.
func (s *Store) WriteMembers(ws []MemberWrite) (errs []error, err error) {
	errs = make([]error, len(ws))
	keys := make([][]byte, len(ws))
	seen := make(map[string]int, len(ws))
	valid := 0
	for i, w := range ws {
		m := w.Member
		op := "put member"
		if w.Delete {
			m.Meta, m.Session, op = nil, "", "delete member"
		}
		if err := m.validate(); err != nil {
			errs[i] = errorf(ErrInvalid, s.dir, op, err)
			continue
		}
		key := memberKey(m.Scope, m.Group, m.ID)
		if j, dup := seen[string(key)]; dup {
			errs[i] = errorf(ErrInvalid, s.dir, op, fmt.Errorf("member %q of %s/%s is already written by write %d of the batch", m.ID, m.Scope, m.Group, j))
			continue
		}
		seen[string(key)] = i
		keys[i] = key
		valid++
	}
	if valid == 0 {
		return errs, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()

	// Locks as PutMember and DeleteSession take them: session stripes
	// (shared) before member stripes, each kind in increasing index order,
	// so that batches, single writes and session deletions never wait on
	// each other in a cycle.
	var sessStripes, memberStripes []int
	for i, w := range ws {
		if keys[i] == nil {
			continue
		}
		if !w.Delete && w.Session != "" {
			sessStripes = append(sessStripes, s.sessionStripe(w.Session))
		}
		memberStripes = append(memberStripes, s.memberLock(keys[i]))
	}
	slices.Sort(sessStripes)
	sessStripes = slices.Compact(sessStripes)
	slices.Sort(memberStripes)
	memberStripes = slices.Compact(memberStripes)
	for _, i := range sessStripes {
		s.sessionLocks[i].RLock()
	}
	defer func() {
		for _, i := range sessStripes {
			s.sessionLocks[i].RUnlock()
		}
	}()
	for _, i := range memberStripes {
		s.memberLocks[i].Lock()
	}
	defer func() {
		for _, i := range memberStripes {
			s.memberLocks[i].Unlock()
		}
	}()

	// One iterator for every read: a point read (get) opens and closes
	// one per key, which cost a 10,000-member batch more than its writes.
	// The member locks keep the keys read from changing meanwhile.
	it, err := s.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		s.m.errors.Add(1)
		return nil, classify(s.dir, "write members", err)
	}
	read := func(key []byte) ([]byte, bool, error) {
		if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
			return nil, false, it.Error()
		}
		v, err := it.ValueAndErr()
		return v, err == nil, err
	}
	live := map[string]bool{} // sessions checked so far
	b := s.db.NewBatch()
	fail := func(err error) ([]error, error) {
		_ = b.Close()
		_ = it.Close()
		s.m.errors.Add(1)
		return nil, classify(s.dir, "write members", err)
	}
	for i, w := range ws {
		key := keys[i]
		if key == nil {
			continue
		}
		if !w.Delete && w.Session != "" {
			ok, checked := live[w.Session]
			if !checked {
				var err error
				if _, ok, err = read(makeKey(kindSession, w.Session)); err != nil {
					return fail(err)
				}
				live[w.Session] = ok
			}
			if !ok {
				errs[i] = errorf(ErrInvalid, s.dir, "put member", fmt.Errorf("session %q does not exist", w.Session))
				continue
			}
		}
		v, existed, err := read(key)
		if err != nil {
			return fail(err)
		}
		var old memberValue
		if existed {
			if old, err = decodeMember(v); err != nil {
				_ = b.Close()
				_ = it.Close()
				return nil, s.corrupt(kindMember, key, err)
			}
		}
		if w.Delete {
			if !existed {
				continue // nothing to delete: nothing written
			}
			stageDelete(b, key, w.Member, old)
			continue
		}
		stagePut(b, key, w.Member, old, existed)
	}
	if err := it.Close(); err != nil {
		_ = b.Close()
		s.m.errors.Add(1)
		return nil, classify(s.dir, "write members", err)
	}
	if b.Empty() {
		_ = b.Close()
		return errs, nil
	}
	if err := s.apply("write members", b, s.writeSync()); err != nil {
		return nil, err
	}
	return errs, nil
}
