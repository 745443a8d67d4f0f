package storage

import (
	"encoding/binary"
	"fmt"
	"math"
)

// SaveCache replaces the cached replica state of scope with chunks (opaque
// bytes, e.g. encoded CRDT deltas), atomically: one batch deletes the old
// chunks and writes the new ones, so a reader or a restart sees either the
// old cache or the new one, never a mix. The write is not fsynced: it is a
// cache, and a crash may bring back the previous one (or none). Saving no
// chunks deletes the scope's cache.
func (s *Store) SaveCache(scope string, chunks [][]byte) error {
	if err := validName("scope", scope); err != nil {
		return errorf(ErrInvalid, s.dir, "save cache", err)
	}
	if uint64(len(chunks)) > math.MaxUint32 {
		return errorf(ErrInvalid, s.dir, "save cache", fmt.Errorf("%d chunks", len(chunks)))
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	prefix := makeKey(kindCache, scope)
	b := s.db.NewBatch()
	_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
	for i, c := range chunks {
		_ = b.Set(cacheKey(scope, uint32(i)), encodeBytes(kindCache, c), nil)
	}
	return s.apply("save cache", b, false)
}

// LoadCache returns the chunks last saved for scope, in order, or nil if
// there are none.
func (s *Store) LoadCache(scope string) ([][]byte, error) {
	if err := validName("scope", scope); err != nil {
		return nil, errorf(ErrInvalid, s.dir, "load cache", err)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	var out [][]byte
	err := s.scan(makeKey(kindCache, scope), "load cache", func(k, v []byte) error {
		_, rest, err := parseKey(k, kindCache, 1, 4)
		if err == nil {
			if i := binary.BigEndian.Uint32(rest); uint64(i) != uint64(len(out)) {
				err = fmt.Errorf("chunk %d where %d was expected", i, len(out))
			}
		}
		var c []byte
		if err == nil {
			c, err = decodeBytes(kindCache, v)
		}
		if err != nil {
			return s.corrupt(kindCache, k, err)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DiscardCache deletes the cached replica state of scope, as SaveCache with
// no chunks does, logs a warning naming why (the cache failed to load or
// decode) and counts it in Metrics.CacheDiscards. The cache is rebuilt from
// peers, so its loss costs a full transfer, not data.
func (s *Store) DiscardCache(scope string, why error) error {
	if err := s.SaveCache(scope, nil); err != nil {
		return err
	}
	s.m.cacheDiscards.Add(1)
	s.log.Warn("cached state of other nodes unreadable: discarded, peers will send it again", "scope", scope, "err", why)
	return nil
}
