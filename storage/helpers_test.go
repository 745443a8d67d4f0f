package storage

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// openMem opens a store in "/db" on fs (a fresh MemFS when nil) and closes
// it when the test ends unless the test closed it.
func openMem(t testing.TB, fs vfs.FS, opts ...func(*Options)) *Store {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	o := Options{FS: fs}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open("/db", o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sess returns a valid session with the given id.
func sess(id string) Session {
	return Session{ID: id, TTL: 15 * time.Second, Expires: time.Unix(1_700_000_000, 123456789)}
}

// requireKind asserts that err wraps kind and names the store's directory.
func requireKind(t testing.TB, err, kind error, dir string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kind)
	require.Contains(t, err.Error(), dir)
}
