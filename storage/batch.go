package storage

import (
	"fmt"
	"slices"
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

	live := map[string]bool{} // sessions checked so far
	b := s.db.NewBatch()
	for i, w := range ws {
		key := keys[i]
		if key == nil {
			continue
		}
		if !w.Delete && w.Session != "" {
			ok, checked := live[w.Session]
			if !checked {
				var err error
				if _, ok, err = s.get(makeKey(kindSession, w.Session), "read session"); err != nil {
					_ = b.Close()
					return nil, err
				}
				live[w.Session] = ok
			}
			if !ok {
				errs[i] = errorf(ErrInvalid, s.dir, "put member", fmt.Errorf("session %q does not exist", w.Session))
				continue
			}
		}
		old, existed, err := s.member(key)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		if w.Delete {
			if !existed {
				continue // nothing to delete: nothing written
			}
			_ = b.Delete(key, nil)
			if old.Session != "" {
				_ = b.Delete(bindingKey(old.Session, w.Scope, w.Group, w.ID), nil)
			}
			continue
		}
		_ = b.Set(key, encodeMember(memberValue{Session: w.Session, Meta: w.Meta}), nil)
		if existed && old.Session != "" && old.Session != w.Session {
			_ = b.Delete(bindingKey(old.Session, w.Scope, w.Group, w.ID), nil)
		}
		if w.Session != "" && (!existed || old.Session != w.Session) {
			_ = b.Set(bindingKey(w.Session, w.Scope, w.Group, w.ID), encodeBytes(kindBinding, nil), nil)
		}
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
