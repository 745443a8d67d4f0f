package storage

import (
	"fmt"

	"github.com/roster-io/roster/internal/bug"
)

// MaxIncarnation bounds incarnations: every incarnation is below it (the
// CRDT layer reserves the top bits of its counters).
const MaxIncarnation = 1 << 62

// StartIncarnation records that the node called name is starting and returns
// its new incarnation: max(stored+1, floor), where stored is the last
// incarnation handed out from this directory (0 if none). The incarnation is
// fsynced (in every SyncMode) before StartIncarnation returns, so no
// incarnation is ever handed out twice, even if the process crashes right
// after; floor lets the caller mix in wall-clock time so that a node whose
// directory was wiped still starts above its old incarnations.
//
// The first call stores name; later calls with another name fail with
// ErrIdentity: the directory belongs to another node. Invalid names, a floor
// of MaxIncarnation or more, and an exhausted incarnation space fail with
// ErrInvalid.
func (s *Store) StartIncarnation(name string, floor uint64) (uint64, error) {
	if err := validName("node name", name); err != nil {
		return 0, errorf(ErrInvalid, s.dir, "start incarnation", err)
	}
	if floor >= MaxIncarnation {
		return 0, errorf(ErrInvalid, s.dir, fmt.Sprintf("start incarnation: floor %d is not below %d", floor, uint64(MaxIncarnation)), nil)
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	s.incMu.Lock()
	defer s.incMu.Unlock()

	stored, ok, err := s.name()
	if err != nil {
		return 0, err
	}
	if ok && stored != name {
		return 0, errorf(ErrIdentity, s.dir, fmt.Sprintf("directory belongs to node %q, not %q", stored, name), nil)
	}
	last, err := s.incarnation()
	if err != nil {
		return 0, err
	}
	next := max(last+1, floor)
	if bug.ReuseCounters && last != 0 {
		next = last // the same incarnation again: its counters start over
	}
	if next >= MaxIncarnation {
		return 0, errorf(ErrInvalid, s.dir, fmt.Sprintf("start incarnation: incarnations exhausted (last %d)", last), nil)
	}
	b := s.db.NewBatch()
	if !ok {
		_ = b.Set(makeKey(kindMeta, metaName), encodeName(name), nil)
	}
	_ = b.Set(makeKey(kindMeta, metaIncarnation), encodeUint(kindMeta, next), nil)
	if err := s.apply("start incarnation", b, true); err != nil {
		return 0, err
	}
	return next, nil
}

// Name returns the node name stored by StartIncarnation, and whether there
// is one.
func (s *Store) Name() (string, bool, error) {
	if err := s.enter(); err != nil {
		return "", false, err
	}
	defer s.exit()
	return s.name()
}

// Incarnation returns the last incarnation handed out by StartIncarnation
// (0 if none).
func (s *Store) Incarnation() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	return s.incarnation()
}

func (s *Store) name() (string, bool, error) {
	key := makeKey(kindMeta, metaName)
	v, ok, err := s.get(key, "read node name")
	if err != nil || !ok {
		return "", false, err
	}
	name, err := decodeName(v)
	if err != nil {
		return "", false, s.corrupt(kindMeta, key, err)
	}
	return name, true, nil
}

func (s *Store) incarnation() (uint64, error) {
	key := makeKey(kindMeta, metaIncarnation)
	v, ok, err := s.get(key, "read incarnation")
	if err != nil || !ok {
		return 0, err
	}
	inc, err := decodeUint(kindMeta, v)
	if err == nil && (inc == 0 || inc >= MaxIncarnation) {
		err = fmt.Errorf("incarnation %d out of range", inc)
	}
	if err != nil {
		return 0, s.corrupt(kindMeta, key, err)
	}
	return inc, nil
}
