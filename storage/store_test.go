package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/roster-io/roster/internal/jsonkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenCreatesDirAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir, DefaultOptions())
	require.NoError(t, err)
	require.Equal(t, dir, s.Dir())
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "x", Meta: []byte("m")}))
	require.NoError(t, s.Close())
	requireKind(t, s.Close(), ErrClosed, dir)

	s, err = Open(dir, DefaultOptions())
	require.NoError(t, err)
	defer s.Close()
	ms, err := s.Members()
	require.NoError(t, err)
	require.Equal(t, []Member{{Scope: "s", Group: "g", ID: "x", Meta: []byte("m")}}, ms)
}

func TestOpenInvalidOptions(t *testing.T) {
	fs := vfs.NewMem()
	for name, o := range map[string]Options{
		"sync mode":     {FS: fs, Sync: SyncMode(7)},
		"sync interval": {FS: fs, SyncInterval: -time.Second},
		"cache":         {FS: fs, CacheBytes: -1},
	} {
		_, err := Open("/db", o)
		requireKind(t, err, ErrInvalid, "/db")
		assert.Contains(t, err.Error(), strings.Fields(name)[0], name)
	}
	_, err := Open("", Options{FS: fs})
	require.ErrorIs(t, err, ErrInvalid)
	ls, _ := fs.List("/")
	require.Empty(t, ls, "invalid options must not create anything")
}

func TestClosedStore(t *testing.T) {
	s := openMem(t, nil)
	require.NoError(t, s.Close())
	for name, err := range map[string]error{
		"put member": s.PutMember(Member{Scope: "s", Group: "g", ID: "x"}),
		"members":    second(s.Members()),
		"sessions":   second(s.Sessions()),
		"incarnate":  second(s.StartIncarnation("n", 0)),
		"name":       third(s.Name()),
		"peers":      s.SetPeers([]string{"a:1"}),
		"cache":      s.SaveCache("s", nil),
		"sync":       s.Sync(),
	} {
		requireKind(t, err, ErrClosed, "/db")
		_ = name
	}
	_ = s.Metrics() // allowed after Close
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

func TestIdentity(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	_, ok, err := s.Name()
	require.NoError(t, err)
	require.False(t, ok)
	inc, err := s.Incarnation()
	require.NoError(t, err)
	require.Zero(t, inc)

	inc, err = s.StartIncarnation("node-1", 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, inc)
	inc, err = s.StartIncarnation("node-1", 0)
	require.NoError(t, err)
	require.EqualValues(t, 2, inc)
	// The floor wins when it is higher (a wall-clock mix-in).
	inc, err = s.StartIncarnation("node-1", 1000)
	require.NoError(t, err)
	require.EqualValues(t, 1000, inc)
	// and loses when lower.
	inc, err = s.StartIncarnation("node-1", 10)
	require.NoError(t, err)
	require.EqualValues(t, 1001, inc)

	name, ok, err := s.Name()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "node-1", name)

	_, err = s.StartIncarnation("node-2", 0)
	requireKind(t, err, ErrIdentity, "/db")
	require.Contains(t, err.Error(), `"node-1"`)
	require.Contains(t, err.Error(), `"node-2"`)

	for _, bad := range []string{"", strings.Repeat("x", 256), "\xff\xfe"} {
		_, err = s.StartIncarnation(bad, 0)
		requireKind(t, err, ErrInvalid, "/db")
	}
	_, err = s.StartIncarnation("node-1", MaxIncarnation)
	requireKind(t, err, ErrInvalid, "/db")
	inc, err = s.StartIncarnation("node-1", MaxIncarnation-1)
	require.NoError(t, err)
	require.EqualValues(t, uint64(MaxIncarnation-1), inc)
	_, err = s.StartIncarnation("node-1", 0)
	requireKind(t, err, ErrInvalid, "/db")
	require.Contains(t, err.Error(), "exhausted")

	// Survives a reopen.
	require.NoError(t, s.Close())
	s = openMem(t, fs)
	inc, err = s.Incarnation()
	require.NoError(t, err)
	require.EqualValues(t, uint64(MaxIncarnation-1), inc)
	_, err = s.StartIncarnation("node-2", 0)
	require.ErrorIs(t, err, ErrIdentity)
}

func TestStartIncarnationConcurrent(t *testing.T) {
	s := openMem(t, nil)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				inc, err := s.StartIncarnation("n", 0)
				assert.NoError(t, err)
				mu.Lock()
				assert.False(t, seen[inc], "incarnation %d handed out twice", inc)
				seen[inc] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, 80)
}

func TestMembers(t *testing.T) {
	s := openMem(t, nil)
	ms, err := s.Members()
	require.NoError(t, err)
	require.Empty(t, ms)

	// Names with "/", NUL and multi-byte UTF-8 never collide.
	tricky := []Member{
		{Scope: "a", Group: "b/c", ID: "d"},
		{Scope: "a/b", Group: "c", ID: "d"},
		{Scope: "a", Group: "b", ID: "c/d"},
		{Scope: "a\x00", Group: "b", ID: "c"},
		{Scope: "a", Group: "\x00b", ID: "c"},
		{Scope: "ä", Group: "日本", ID: strings.Repeat("é", 127)},
		{Scope: strings.Repeat("s", 255), Group: strings.Repeat("g", 255), ID: strings.Repeat("i", 255), Meta: bytes.Repeat([]byte{0xff}, MaxMetaBytes-1)},
	}
	for i, m := range tricky {
		m.Meta = append(m.Meta, byte(i))
		tricky[i] = m
		require.NoError(t, s.PutMember(m))
	}
	ms, err = s.Members()
	require.NoError(t, err)
	want := append([]Member(nil), tricky...)
	sortMembers(want)
	require.Equal(t, want, ms)

	// Replace: same key, new meta, no duplicate.
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "b/c", ID: "d", Meta: []byte("new")}))
	ms, err = s.Members()
	require.NoError(t, err)
	require.Len(t, ms, len(tricky))
	require.Contains(t, ms, Member{Scope: "a", Group: "b/c", ID: "d", Meta: []byte("new")})

	ok, err := s.DeleteMember("a", "b/c", "d")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.DeleteMember("a", "b/c", "d")
	require.NoError(t, err)
	require.False(t, ok)
	ms, err = s.Members()
	require.NoError(t, err)
	require.Len(t, ms, len(tricky)-1)
}

func TestMembersSorted(t *testing.T) {
	s := openMem(t, nil)
	// Key order is by length first; Members must sort by string.
	for _, id := range []string{"bb", "a", "c", "ab"} {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: id}))
	}
	require.NoError(t, s.PutMember(Member{Scope: "r", Group: "zz", ID: "z"}))
	ms, err := s.Members()
	require.NoError(t, err)
	var got []string
	for _, m := range ms {
		got = append(got, m.Scope+"/"+m.Group+"/"+m.ID)
	}
	require.Equal(t, []string{"r/zz/z", "s/g/a", "s/g/ab", "s/g/bb", "s/g/c"}, got)
}

func TestBadInputChangesNothing(t *testing.T) {
	s := openMem(t, nil)
	require.NoError(t, s.PutSession(sess("s1")))
	before := s.Metrics().Commits
	long := strings.Repeat("x", 256)
	bad := []Member{
		{Scope: "", Group: "g", ID: "i"},
		{Scope: "s", Group: "", ID: "i"},
		{Scope: "s", Group: "g", ID: ""},
		{Scope: long, Group: "g", ID: "i"},
		{Scope: "s", Group: long, ID: "i"},
		{Scope: "s", Group: "g", ID: long},
		{Scope: "\xc3\x28", Group: "g", ID: "i"},
		{Scope: "s", Group: "g", ID: "i", Session: long},
		{Scope: "s", Group: "g", ID: "i", Session: "\xff"},
		{Scope: "s", Group: "g", ID: "i", Meta: make([]byte, MaxMetaBytes+1)},
		{Scope: "s", Group: "g", ID: "i", Session: "no-such-session"},
	}
	for _, m := range bad {
		requireKind(t, s.PutMember(m), ErrInvalid, "/db")
	}
	_, err := s.DeleteMember("", "g", "i")
	requireKind(t, err, ErrInvalid, "/db")
	_, err = s.DeleteMember("s", "g", long)
	requireKind(t, err, ErrInvalid, "/db")
	for _, ss := range []Session{
		{ID: "", TTL: time.Second, Expires: time.Now()},
		{ID: long, TTL: time.Second, Expires: time.Now()},
		{ID: "x", TTL: 0, Expires: time.Now()},
		{ID: "x", TTL: -time.Second, Expires: time.Now()},
		{ID: "x", TTL: time.Second},
		{ID: "x", TTL: time.Second, Expires: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		requireKind(t, s.PutSession(ss), ErrInvalid, "/db")
	}
	_, err = s.DeleteSession("")
	requireKind(t, err, ErrInvalid, "/db")
	requireKind(t, s.SetPeers([]string{"ok:1", ""}), ErrInvalid, "/db")
	requireKind(t, s.SaveCache("", nil), ErrInvalid, "/db")
	_, err = s.LoadCache(long)
	requireKind(t, err, ErrInvalid, "/db")

	require.Equal(t, before, s.Metrics().Commits, "bad input must not write")
	ms, err := s.Members()
	require.NoError(t, err)
	require.Empty(t, ms)
	ss, err := s.Sessions()
	require.NoError(t, err)
	require.Equal(t, []Session{sess("s1")}, normalize(ss))
	ps, err := s.Peers()
	require.NoError(t, err)
	require.Empty(t, ps)
}

// normalize strips time zones so sessions compare with require.Equal.
func normalize(ss []Session) []Session {
	for i := range ss {
		ss[i].Expires = time.Unix(0, ss[i].Expires.UnixNano())
	}
	return ss
}

func TestSessions(t *testing.T) {
	s := openMem(t, nil)
	exp := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	require.NoError(t, s.PutSession(Session{ID: "b", TTL: time.Second, Expires: exp}))
	require.NoError(t, s.PutSession(Session{ID: "a", TTL: time.Minute, Expires: exp}))
	// Keep-alive: refresh expiry.
	require.NoError(t, s.PutSession(Session{ID: "b", TTL: 2 * time.Second, Expires: exp.Add(time.Hour)}))
	ss, err := s.Sessions()
	require.NoError(t, err)
	require.Len(t, ss, 2)
	require.Equal(t, "a", ss[0].ID)
	require.Equal(t, time.Minute, ss[0].TTL)
	require.True(t, ss[0].Expires.Equal(exp))
	require.Equal(t, "b", ss[1].ID)
	require.Equal(t, 2*time.Second, ss[1].TTL)
	require.True(t, ss[1].Expires.Equal(exp.Add(time.Hour)))
	// Before 1970 is fine too.
	old := time.Date(1969, 7, 20, 20, 17, 0, 1, time.UTC)
	require.NoError(t, s.PutSession(Session{ID: "c", TTL: time.Second, Expires: old}))
	ss, err = s.Sessions()
	require.NoError(t, err)
	require.True(t, ss[2].Expires.Equal(old))
}

func TestDeleteSession(t *testing.T) {
	s := openMem(t, nil)
	require.NoError(t, s.PutSession(sess("s1")))
	require.NoError(t, s.PutSession(sess("s2")))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "1", Session: "s1", Meta: []byte("one")}))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "2", Session: "s1"}))
	require.NoError(t, s.PutMember(Member{Scope: "b", Group: "g", ID: "1", Session: "s1"}))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "3", Session: "s2"}))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "4"}))
	// Rebinding moves a member between sessions and to durable.
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "2", Session: "s2"}))
	require.NoError(t, s.PutMember(Member{Scope: "b", Group: "g", ID: "1"}))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "4", Session: "s1"}))
	checkIndex(t, s)

	removed, err := s.DeleteSession("s1")
	require.NoError(t, err)
	require.Equal(t, []Member{
		{Scope: "a", Group: "g", ID: "1", Session: "s1", Meta: []byte("one")},
		{Scope: "a", Group: "g", ID: "4", Session: "s1"},
	}, removed)
	ms, err := s.Members()
	require.NoError(t, err)
	require.Equal(t, []Member{
		{Scope: "a", Group: "g", ID: "2", Session: "s2"},
		{Scope: "a", Group: "g", ID: "3", Session: "s2"},
		{Scope: "b", Group: "g", ID: "1"},
	}, ms)
	ss, err := s.Sessions()
	require.NoError(t, err)
	require.Len(t, ss, 1)
	require.Equal(t, "s2", ss[0].ID)
	checkIndex(t, s)

	// Unknown (and already deleted) sessions: nothing to do.
	before := s.Metrics().Commits
	removed, err = s.DeleteSession("s1")
	require.NoError(t, err)
	require.Nil(t, removed)
	removed, err = s.DeleteSession("nope")
	require.NoError(t, err)
	require.Nil(t, removed)
	require.Equal(t, before, s.Metrics().Commits)

	// Binding to a deleted session is refused.
	requireKind(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "9", Session: "s1"}), ErrInvalid, "/db")

	// A session with no members deletes alone.
	require.NoError(t, s.PutSession(sess("s3")))
	removed, err = s.DeleteSession("s3")
	require.NoError(t, err)
	require.Empty(t, removed)
	ss, err = s.Sessions()
	require.NoError(t, err)
	require.Len(t, ss, 1)
}

// TestDeleteSessionAtomicVsPutMember races PutMember into a session against
// DeleteSession: every member put successfully must either be returned by
// DeleteSession or have been put after the session was gone (impossible:
// then PutMember fails), so no member of a deleted session survives.
func TestDeleteSessionAtomicVsPutMember(t *testing.T) {
	s := openMem(t, nil)
	for round := range 20 {
		id := fmt.Sprintf("s%d", round)
		require.NoError(t, s.PutSession(sess(id)))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var put []string
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					mid := fmt.Sprintf("%d-%d-%d", round, w, i)
					err := s.PutMember(Member{Scope: "x", Group: "g", ID: mid, Session: id})
					if err != nil {
						assert.ErrorIs(t, err, ErrInvalid)
						return
					}
					mu.Lock()
					put = append(put, mid)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Millisecond)
		removed, err := s.DeleteSession(id)
		require.NoError(t, err)
		wg.Wait()
		var got []string
		for _, m := range removed {
			got = append(got, m.ID)
		}
		require.ElementsMatch(t, put, got, "round %d", round)
		ms, err := s.Members()
		require.NoError(t, err)
		require.Empty(t, ms, "round %d: members of a deleted session survived", round)
	}
	checkIndex(t, s)
}

// TestConcurrentRebinding hammers one member with puts into different
// sessions and durable, while sessions are deleted, then checks the session
// index is exact.
func TestConcurrentRebinding(t *testing.T) {
	s := openMem(t, nil)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				sid := fmt.Sprintf("s%d", (w+i)%3)
				switch i % 4 {
				case 0:
					assert.NoError(t, s.PutSession(sess(sid)))
				case 1, 2:
					m := Member{Scope: "x", Group: "g", ID: fmt.Sprint(i % 3), Session: sid}
					if i%5 == 0 {
						m.Session = ""
					}
					if err := s.PutMember(m); err != nil {
						assert.ErrorIs(t, err, ErrInvalid)
					}
				case 3:
					_, err := s.DeleteSession(sid)
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
	checkIndex(t, s)
}

// checkIndex verifies the session index against the members and sessions:
// every bound member has an index entry and an existing session, and every
// index entry points at a member bound to that session.
func checkIndex(t testing.TB, s *Store) {
	t.Helper()
	ms, err := s.Members()
	require.NoError(t, err)
	ss, err := s.Sessions()
	require.NoError(t, err)
	sessions := map[string]bool{}
	for _, x := range ss {
		sessions[x.ID] = true
	}
	bound := map[string]bool{}
	for _, m := range ms {
		if m.Session != "" {
			require.True(t, sessions[m.Session], "member %v bound to missing session", m)
			bound[string(bindingKey(m.Session, m.Scope, m.Group, m.ID))] = true
		}
	}
	index := map[string]bool{}
	require.NoError(t, s.scan([]byte{kindBinding}, "test", func(k, _ []byte) error {
		index[string(k)] = true
		return nil
	}))
	require.Equal(t, bound, index, "session index out of sync")
}

func TestPeers(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	ps, err := s.Peers()
	require.NoError(t, err)
	require.Empty(t, ps)
	require.NoError(t, s.SetPeers([]string{"10.0.0.2:7946", "10.0.0.1:7946", "10.0.0.2:7946", "[::1]:7946"}))
	ps, err = s.Peers()
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:7946", "10.0.0.2:7946", "[::1]:7946"}, ps)
	before := s.Metrics().Commits
	require.NoError(t, s.SetPeers([]string{"[::1]:7946", "10.0.0.1:7946", "10.0.0.2:7946"}))
	require.Equal(t, before, s.Metrics().Commits, "unchanged peer set must not write")
	require.NoError(t, s.SetPeers([]string{"10.0.0.3:7946"}))
	require.NoError(t, s.Close())
	s = openMem(t, fs)
	ps, err = s.Peers()
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.3:7946"}, ps)
	require.NoError(t, s.SetPeers(nil))
	ps, err = s.Peers()
	require.NoError(t, err)
	require.Empty(t, ps)
}

func TestCache(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	got, err := s.LoadCache("a")
	require.NoError(t, err)
	require.Nil(t, got)

	big := make([][]byte, 300)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte(i)}, 10_000) // ~3 MB in all
	}
	big[7] = []byte{}
	require.NoError(t, s.SaveCache("a", big))
	require.NoError(t, s.SaveCache("ab", [][]byte{[]byte("other scope")}))
	got, err = s.LoadCache("a")
	require.NoError(t, err)
	require.Equal(t, big, got)

	// Replacing with fewer chunks leaves no old chunk behind.
	require.NoError(t, s.SaveCache("a", [][]byte{[]byte("x"), []byte("y")}))
	got, err = s.LoadCache("a")
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("x"), []byte("y")}, got)
	got, err = s.LoadCache("ab")
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("other scope")}, got)

	require.NoError(t, s.Close())
	s = openMem(t, fs)
	got, err = s.LoadCache("a")
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("x"), []byte("y")}, got)
	require.NoError(t, s.SaveCache("a", nil))
	got, err = s.LoadCache("a")
	require.NoError(t, err)
	require.Nil(t, got)
}

func TestMetrics(t *testing.T) {
	s := openMem(t, nil)
	m0 := s.Metrics()
	for i := range 5 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i)}))
	}
	m := s.Metrics()
	require.Equal(t, m0.Commits+5, m.Commits)
	require.Equal(t, m0.SyncedCommits+5, m.SyncedCommits)
	require.GreaterOrEqual(t, m.WALSyncs, m0.WALSyncs+5)
	require.GreaterOrEqual(t, m.Syncs, m.WALSyncs)
	var n uint64
	for _, c := range m.SyncLatency {
		n += c
	}
	require.Equal(t, m.Syncs, n)
	require.False(t, m.Failed)
}

// TestSyncIntervalMode checks that SyncInterval acknowledges without an
// fsync, syncs in the background, and that (as documented) unsynced records
// stay inside the process until then: the log file on disk does not grow.
func TestSyncIntervalMode(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Sync: SyncInterval, SyncInterval: time.Hour})
	require.NoError(t, err)
	walSize := func() int64 {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		var n int64
		for _, l := range logs {
			if fi, err := os.Stat(l); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	// Let the flush a new store starts (see checkFormat) finish: its
	// completion wakes the log writer, which then writes out its buffer.
	quiesce(t, s, true)
	size0, syncs0 := walSize(), s.Metrics().WALSyncs
	for i := range 10 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i)}))
	}
	require.Equal(t, size0, walSize(), "unsynced records are buffered in the process")
	require.Equal(t, syncs0, s.Metrics().WALSyncs)
	require.NoError(t, s.Sync())
	require.Greater(t, walSize(), size0)
	require.Equal(t, syncs0+1, s.Metrics().WALSyncs)
	require.NoError(t, s.Close())

	// The background syncer.
	s, err = Open(dir, Options{Sync: SyncInterval, SyncInterval: time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	quiesce(t, s, false)
	syncs0 = s.Metrics().WALSyncs
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "x"}))
	require.Eventually(t, func() bool { return s.Metrics().WALSyncs > syncs0 }, 5*time.Second, time.Millisecond)
	// Idle: no further syncs.
	time.Sleep(20 * time.Millisecond)
	n := s.Metrics().WALSyncs
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, n, s.Metrics().WALSyncs, "an idle store must not fsync")
}

// quiesce waits until Pebble has no flush or compaction running (and has
// finished at least one flush, if flushed).
func quiesce(t testing.TB, s *Store, flushed bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		m := s.db.Metrics()
		return (!flushed || m.Flush.Count > 0) && m.Flush.NumInProgress == 0 && m.Compact.NumInProgress == 0
	}, 10*time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond)
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultOptions())
	require.NoError(t, err)
	_, err = Open(dir, DefaultOptions())
	requireKind(t, err, ErrLocked, dir)
	require.NoError(t, s.Close())
	s, err = Open(dir, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// The same on a MemFS.
	fs := vfs.NewMem()
	s = openMem(t, fs)
	_, err = Open("/db", Options{FS: fs})
	requireKind(t, err, ErrLocked, "/db")
	require.NoError(t, s.Close())
}

func TestReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permissions are not enforced; TestFailingFS covers a file system that refuses every write")
	}
	parent := t.TempDir()
	require.NoError(t, os.Chmod(parent, 0o500))
	defer os.Chmod(parent, 0o700)
	dir := filepath.Join(parent, "db")
	_, err := Open(dir, DefaultOptions())
	requireKind(t, err, ErrIO, dir)

	dir = t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o500))
	defer os.Chmod(dir, 0o700)
	_, err = Open(dir, DefaultOptions())
	requireKind(t, err, ErrIO, dir)
}

func TestVersionMismatch(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	require.NoError(t, s.db.Set(makeKey(kindMeta, metaFormat), encodeUint(kindMeta, FormatVersion+1), pebble.Sync))
	require.NoError(t, s.Close())
	_, err := Open("/db", Options{FS: fs})
	requireKind(t, err, ErrVersion, "/db")
	require.Contains(t, err.Error(), fmt.Sprintf("format version %d", FormatVersion+1))
	// The failed open released the directory.
	_, err = Open("/db", Options{FS: fs})
	require.ErrorIs(t, err, ErrVersion)
}

func TestNotARosterStore(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: quietLogger})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("foreign"), []byte("data"), pebble.Sync))
	require.NoError(t, db.Close())
	_, err = Open("/db", Options{FS: fs})
	requireKind(t, err, ErrCorrupt, "/db")
}

// TestLoggerRouted: Pebble's lines reach the slog logger, as JSON records
// that name their component and directory once (Pebble's lines used to
// add component=pebble to the store's component=storage logger).
func TestLoggerRouted(t *testing.T) {
	var buf syncbuf.Buffer
	s := openMem(t, nil, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "x"}))
	require.NoError(t, s.db.Flush())
	require.Contains(t, buf.String(), `"component":"pebble"`, "pebble's log lines go to the slog logger")
	require.Empty(t, jsonkeys.Lines([]byte(buf.String())))
}
