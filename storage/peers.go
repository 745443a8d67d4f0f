package storage

import (
	"slices"
)

// SetPeers replaces the stored set of gossip peer addresses (duplicates are
// ignored). The write is not fsynced on its own: peers are a hint, and a
// crash may lose the latest set; it becomes durable with the next synced
// write, periodic sync or Close. Setting the set already stored writes
// nothing.
func (s *Store) SetPeers(addrs []string) error {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if err := validName("peer address", a); err != nil {
			return errorf(ErrInvalid, s.dir, "set peers", err)
		}
		want[a] = true
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.peersMu.Lock()
	defer s.peersMu.Unlock()

	b := s.db.NewBatch()
	err := s.scan([]byte{kindPeer}, "list peers", func(k, _ []byte) error {
		parts, _, err := parseKey(k, kindPeer, 1, 0)
		if err != nil {
			return s.corrupt(kindPeer, k, err)
		}
		if want[parts[0]] {
			delete(want, parts[0]) // already stored
		} else {
			_ = b.Delete(k, nil)
		}
		return nil
	})
	if err != nil {
		_ = b.Close()
		return err
	}
	for a := range want {
		_ = b.Set(makeKey(kindPeer, a), encodeBytes(kindPeer, nil), nil)
	}
	if b.Empty() {
		_ = b.Close()
		return nil
	}
	return s.apply("set peers", b, false)
}

// Peers returns the stored peer addresses, sorted.
func (s *Store) Peers() ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	var out []string
	err := s.scan([]byte{kindPeer}, "list peers", func(k, v []byte) error {
		parts, _, err := parseKey(k, kindPeer, 1, 0)
		if err == nil {
			_, err = unframe(kindPeer, v)
		}
		if err != nil {
			return s.corrupt(kindPeer, k, err)
		}
		out = append(out, parts[0])
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
