package storage

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Member is a group member this node owns that must survive a restart:
// durable (Session == "") or bound to a session.
type Member struct {
	Scope, Group, ID string
	// Meta is opaque metadata, at most MaxMetaBytes; stored and returned as
	// is, except that empty metadata comes back as nil.
	Meta []byte
	// Session is the session the member is bound to, or "" for a durable
	// member.
	Session string
}

// Session is a client session (like an etcd lease): its members leave when
// it is deleted.
type Session struct {
	ID  string
	TTL time.Duration
	// Expires is stored with nanosecond precision as Unix time; it comes
	// back in the local time zone, without a monotonic reading.
	Expires time.Time
}

func (m Member) validate() error {
	if err := validName("scope", m.Scope); err != nil {
		return err
	}
	if err := validName("group", m.Group); err != nil {
		return err
	}
	if err := validName("member id", m.ID); err != nil {
		return err
	}
	if m.Session != "" {
		if err := validName("session id", m.Session); err != nil {
			return err
		}
	}
	if len(m.Meta) > MaxMetaBytes {
		return fmt.Errorf("meta is %d bytes, limit %d", len(m.Meta), MaxMetaBytes)
	}
	return nil
}

// minExpiry and maxExpiry bound the times that Unix nanoseconds represent.
var (
	minExpiry = time.Unix(0, math.MinInt64+1)
	maxExpiry = time.Unix(0, math.MaxInt64)
)

func (ss Session) validate() error {
	if err := validName("session id", ss.ID); err != nil {
		return err
	}
	if ss.TTL <= 0 {
		return fmt.Errorf("session %q has non-positive TTL %v", ss.ID, ss.TTL)
	}
	if ss.Expires.IsZero() || ss.Expires.Before(minExpiry) || ss.Expires.After(maxExpiry) || ss.Expires.UnixNano() == 0 {
		return fmt.Errorf("session %q has unrepresentable expiry %v", ss.ID, ss.Expires)
	}
	return nil
}

// PutMember inserts or replaces a member (keyed by scope, group, id). The
// write is acknowledged according to the SyncMode. A member bound to a
// session that does not exist is rejected with ErrInvalid; the check and the
// write are atomic with respect to DeleteSession.
func (s *Store) PutMember(m Member) error {
	if err := m.validate(); err != nil {
		return errorf(ErrInvalid, s.dir, "put member", err)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if m.Session != "" {
		l := s.sessionLock(m.Session)
		l.RLock()
		defer l.RUnlock()
	}
	key := memberKey(m.Scope, m.Group, m.ID)
	ml := &s.memberLocks[s.memberLock(key)]
	ml.Lock()
	defer ml.Unlock()

	if m.Session != "" {
		_, ok, err := s.get(makeKey(kindSession, m.Session), "read session")
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrInvalid, s.dir, "put member", fmt.Errorf("session %q does not exist", m.Session))
		}
	}
	old, existed, err := s.member(key)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	stagePut(b, key, m, old, existed)
	return s.apply("put member", b, s.writeSync())
}

// DeleteMember removes a member and reports whether it existed. Deleting a
// missing member writes nothing.
func (s *Store) DeleteMember(scope, group, id string) (bool, error) {
	m := Member{Scope: scope, Group: group, ID: id}
	if err := m.validate(); err != nil {
		return false, errorf(ErrInvalid, s.dir, "delete member", err)
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	key := memberKey(scope, group, id)
	ml := &s.memberLocks[s.memberLock(key)]
	ml.Lock()
	defer ml.Unlock()

	old, existed, err := s.member(key)
	if err != nil || !existed {
		return false, err
	}
	b := s.db.NewBatch()
	stageDelete(b, key, m, old)
	if err := s.apply("delete member", b, s.writeSync()); err != nil {
		return false, err
	}
	return true, nil
}

// stagePut adds to b the writes that store m at key, given the record
// there before (old, if existed): the member, and its session binding
// moved to m's session.
func stagePut(b *pebble.Batch, key []byte, m Member, old memberValue, existed bool) {
	_ = b.Set(key, encodeMember(memberValue{Session: m.Session, Meta: m.Meta}), nil)
	if existed && old.Session != "" && old.Session != m.Session {
		_ = b.Delete(bindingKey(old.Session, m.Scope, m.Group, m.ID), nil)
	}
	if m.Session != "" && (!existed || old.Session != m.Session) {
		_ = b.Set(bindingKey(m.Session, m.Scope, m.Group, m.ID), encodeBytes(kindBinding, nil), nil)
	}
}

// stageDelete adds to b the writes that remove the member m at key, whose
// record was old: the member and its session binding.
func stageDelete(b *pebble.Batch, key []byte, m Member, old memberValue) {
	_ = b.Delete(key, nil)
	if old.Session != "" {
		_ = b.Delete(bindingKey(old.Session, m.Scope, m.Group, m.ID), nil)
	}
}

// member reads and decodes one member record.
func (s *Store) member(key []byte) (memberValue, bool, error) {
	v, ok, err := s.get(key, "read member")
	if err != nil || !ok {
		return memberValue{}, false, err
	}
	mv, err := decodeMember(v)
	if err != nil {
		return memberValue{}, false, s.corrupt(kindMember, key, err)
	}
	return mv, true, nil
}

// Member returns the stored member (scope, group, id); ok is false if
// there is none.
func (s *Store) Member(scope, group, id string) (m Member, ok bool, err error) {
	m = Member{Scope: scope, Group: group, ID: id}
	if err := m.validate(); err != nil {
		return Member{}, false, errorf(ErrInvalid, s.dir, "read member", err)
	}
	if err := s.enter(); err != nil {
		return Member{}, false, err
	}
	defer s.exit()
	mv, ok, err := s.member(memberKey(scope, group, id))
	if err != nil || !ok {
		return Member{}, false, err
	}
	m.Meta, m.Session = mv.Meta, mv.Session
	return m, true, nil
}

// Members returns every stored member, sorted by scope, group and id.
func (s *Store) Members() ([]Member, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	var out []Member
	err := s.scan([]byte{kindMember}, "list members", func(k, v []byte) error {
		parts, _, err := parseKey(k, kindMember, 3, 0)
		if err != nil {
			return s.corrupt(kindMember, k, err)
		}
		mv, err := decodeMember(v)
		if err != nil {
			return s.corrupt(kindMember, k, err)
		}
		out = append(out, Member{Scope: parts[0], Group: parts[1], ID: parts[2], Meta: mv.Meta, Session: mv.Session})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortMembers(out)
	return out, nil
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID))
	})
}

// PutSession creates a session or refreshes its TTL and expiry (a
// keep-alive). The write is acknowledged according to the SyncMode.
func (s *Store) PutSession(ss Session) error {
	if err := ss.validate(); err != nil {
		return errorf(ErrInvalid, s.dir, "put session", err)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	b := s.db.NewBatch()
	_ = b.Set(makeKey(kindSession, ss.ID), encodeSession(sessionValue{TTL: ss.TTL, Expires: ss.Expires.UnixNano()}), nil)
	return s.apply("put session", b, s.writeSync())
}

// DeleteSession deletes a session and every member bound to it in one atomic
// batch, and returns the members removed (sorted). Deleting an unknown
// session writes nothing and returns (nil, nil), so that closing and expiring
// a session may race harmlessly.
func (s *Store) DeleteSession(id string) ([]Member, error) {
	if err := validName("session id", id); err != nil {
		return nil, errorf(ErrInvalid, s.dir, "delete session", err)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	l := s.sessionLock(id)
	l.Lock()
	defer l.Unlock()

	// Members bound to id, from the index. No member can be bound to id
	// while we hold its session lock; members can still be rebound away
	// from it or deleted, so each is re-read under its own lock below.
	sessKey := makeKey(kindSession, id)
	var bound []Member
	err := s.scan(makeKey(kindBinding, id), "list session members", func(k, _ []byte) error {
		parts, _, err := parseKey(k, kindBinding, 4, 0)
		if err != nil {
			return s.corrupt(kindBinding, k, err)
		}
		bound = append(bound, Member{Scope: parts[1], Group: parts[2], ID: parts[3]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var stripes []int
	for _, m := range bound {
		stripes = append(stripes, s.memberLock(memberKey(m.Scope, m.Group, m.ID)))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.memberLocks[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.memberLocks[i].Unlock()
		}
	}()

	b := s.db.NewBatch()
	var removed []Member
	for _, m := range bound {
		key := memberKey(m.Scope, m.Group, m.ID)
		mv, ok, err := s.member(key)
		if err != nil {
			return nil, err
		}
		_ = b.Delete(bindingKey(id, m.Scope, m.Group, m.ID), nil)
		if !ok || mv.Session != id {
			// A stale index entry: PutMember and DeleteMember keep the
			// index exact, so this only follows damage. Drop it.
			s.log.Warn("dropping stale session index entry", "session", id, "scope", m.Scope, "group", m.Group, "id", m.ID)
			continue
		}
		_ = b.Delete(key, nil)
		m.Meta, m.Session = mv.Meta, mv.Session
		removed = append(removed, m)
	}
	_, exists, err := s.get(sessKey, "read session")
	if err != nil {
		return nil, err
	}
	if exists {
		_ = b.Delete(sessKey, nil)
	}
	if b.Empty() {
		_ = b.Close()
		return nil, nil
	}
	if err := s.apply("delete session", b, s.writeSync()); err != nil {
		return nil, err
	}
	sortMembers(removed)
	return removed, nil
}

// Sessions returns every stored session, sorted by id.
func (s *Store) Sessions() ([]Session, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	var out []Session
	err := s.scan([]byte{kindSession}, "list sessions", func(k, v []byte) error {
		parts, _, err := parseKey(k, kindSession, 1, 0)
		if err != nil {
			return s.corrupt(kindSession, k, err)
		}
		sv, err := decodeSession(v)
		if err != nil {
			return s.corrupt(kindSession, k, err)
		}
		out = append(out, Session{ID: parts[0], TTL: sv.TTL, Expires: time.Unix(0, sv.Expires)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Session) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
