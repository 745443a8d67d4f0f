package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// TestCorruptValues overwrites each kind of stored value with garbage
// through the raw Pebble DB: the reader must fail with ErrCorrupt naming the
// directory and the record kind, never panic.
func TestCorruptValues(t *testing.T) {
	garbage := [][]byte{nil, {0}, []byte("garbage"), {kindMember, valueVersion, 1, 2, 3, 4, 5, 6}, frame('z', nil)}
	type tc struct {
		key  []byte
		kind string
		read func(s *Store) error
	}
	cases := map[string]tc{
		"member":      {memberKey("s", "g", "i"), "member", func(s *Store) error { return second(s.Members()) }},
		"member put":  {memberKey("s", "g", "i"), "member", func(s *Store) error { return s.PutMember(Member{Scope: "s", Group: "g", ID: "i"}) }},
		"member del":  {memberKey("s", "g", "i"), "member", func(s *Store) error { return second(s.DeleteMember("s", "g", "i")) }},
		"session":     {makeKey(kindSession, "x"), "session", func(s *Store) error { return second(s.Sessions()) }},
		"name":        {makeKey(kindMeta, metaName), "meta", func(s *Store) error { return third(s.Name()) }},
		"incarnation": {makeKey(kindMeta, metaIncarnation), "meta", func(s *Store) error { return second(s.StartIncarnation("n", 0)) }},
		"peer":        {makeKey(kindPeer, "a:1"), "peer", func(s *Store) error { return second(s.Peers()) }},
		"cache":       {cacheKey("s", 0), "cache", func(s *Store) error { return second(s.LoadCache("s")) }},
		"cache gap":   {cacheKey("s", 1), "cache", func(s *Store) error { return second(s.LoadCache("s")) }},
		"member key":  {[]byte{kindMember, 5, 'a'}, "member", func(s *Store) error { return second(s.Members()) }},
		"session key": {[]byte{kindSession, 0}, "session", func(s *Store) error { return second(s.Sessions()) }},
		"binding key": {[]byte{kindBinding, 1, 'x', 1}, "session index", func(s *Store) error { return second(s.DeleteSession("x")) }},
	}
	for name, c := range cases {
		for i, g := range garbage {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				s := openMem(t, nil)
				if name == "cache gap" {
					g = encodeBytes(kindCache, []byte("chunk 1 without chunk 0"))
				} else if strings.HasSuffix(name, "key") {
					g = encodeBytes(kindMember, nil) // the key is what is wrong
				}
				require.NoError(t, s.db.Set(c.key, g, pebble.Sync))
				err := c.read(s)
				requireKind(t, err, ErrCorrupt, "/db")
				require.Contains(t, err.Error(), c.kind)
			})
		}
	}
}

// TestCorruptFormatRecord: a garbage format record fails Open with
// ErrCorrupt.
func TestCorruptFormatRecord(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	require.NoError(t, s.db.Set(makeKey(kindMeta, metaFormat), []byte("??"), pebble.Sync))
	require.NoError(t, s.Close())
	_, err := Open("/db", Options{FS: fs})
	requireKind(t, err, ErrCorrupt, "/db")
	require.Contains(t, err.Error(), "format")
}

// populate writes a few records, flushes them into an sstable and closes.
func populate(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir, DefaultOptions())
	require.NoError(t, err)
	_, err = s.StartIncarnation("n", 0)
	require.NoError(t, err)
	for i := range 200 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i), Meta: []byte(strings.Repeat("m", 50))}))
	}
	require.NoError(t, s.db.Flush())
	require.NoError(t, s.Close())
}

// clobber overwrites n bytes at the middle of the single file matching
// pattern in dir.
func clobber(t *testing.T, dir, pattern string, at func(size int64) int64, n int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	require.NotEmpty(t, files, pattern)
	for _, f := range files {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		fh, err := os.OpenFile(f, os.O_WRONLY, 0)
		require.NoError(t, err)
		junk := make([]byte, n)
		for i := range junk {
			junk[i] = byte(0xA5 ^ i)
		}
		_, err = fh.WriteAt(junk, at(fi.Size()))
		require.NoError(t, err)
		require.NoError(t, fh.Close())
	}
}

// TestCorruptSSTable damages the data blocks of the sstable: Open or the
// first read must fail with ErrCorrupt, and nothing panics.
func TestCorruptSSTable(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir)
	clobber(t, dir, "*.sst", func(int64) int64 { return 100 }, 64)
	s, err := Open(dir, DefaultOptions())
	if err != nil {
		requireKind(t, err, ErrCorrupt, dir)
		return
	}
	defer s.Close()
	_, err = s.Members()
	requireKind(t, err, ErrCorrupt, dir)
	// The store has failed: later operations say so too.
	err = s.PutMember(Member{Scope: "s", Group: "g", ID: "new"})
	require.Error(t, err)
}

// TestCorruptManifest damages the MANIFEST: Open must fail with ErrCorrupt.
func TestCorruptManifest(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir)
	clobber(t, dir, "MANIFEST-*", func(size int64) int64 { return size / 3 }, 32)
	_, err := Open(dir, DefaultOptions())
	requireKind(t, err, ErrCorrupt, dir)
	// Refusing to start is repeatable (the failed open released the lock).
	_, err = Open(dir, DefaultOptions())
	require.ErrorIs(t, err, ErrCorrupt)
}

// TestCorruptWAL damages synced records at the start of the write-ahead log.
// Pebble's log format carries the synced offset in each chunk, so damage
// followed by synced data in later 32 KiB log blocks is reported as
// corruption rather than taken for the torn tail of a crash. (Pebble reads
// ahead block by block: damage inside the log's last block cannot be told
// from a torn write and is truncated like one.) This runs on a brand-new
// directory on purpose: see checkFormat.
func TestCorruptWAL(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultOptions())
	require.NoError(t, err)
	for i := range 400 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i), Meta: make([]byte, 300)}))
	}
	require.NoError(t, s.Close())
	clobber(t, dir, "*.log", func(size int64) int64 { return 1000 }, 16)
	s, err = Open(dir, DefaultOptions())
	if err == nil {
		ms, merr := s.Members()
		require.NoError(t, s.Close())
		t.Fatalf("opened a store with a damaged log: %d members, %v", len(ms), merr)
	}
	requireKind(t, err, ErrCorrupt, dir)
}
