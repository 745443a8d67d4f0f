package storage

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// diskFull fails every write, create and sync with ENOSPC while armed, as
// a full disk does.
type diskFull struct {
	armed atomic.Bool
	hits  atomic.Int64
}

func (d *diskFull) String() string { return "disk full" }

func (d *diskFull) MaybeError(op errorfs.Op) error {
	if d.armed.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
		d.hits.Add(1)
		return fmt.Errorf("%w: %w", errorfs.ErrInjected, syscall.ENOSPC)
	}
	return nil
}

// TestRecoverAfterDiskFull fills the disk under a store: the write fails
// with ErrIO (ENOSPC kept as the cause), the store stays failed and
// Recover refuses while the disk is full; once space is freed, Recover
// reopens the store, which then holds every acknowledged write, takes new
// writes, and closes and reopens cleanly. Before Recover existed the store
// refused everything until the process restarted.
func TestRecoverAfterDiskFull(t *testing.T) {
	mem := vfs.NewCrashableMem()
	full := &diskFull{}
	s, err := Open("/db", Options{FS: errorfs.Wrap(mem, full)})
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	require.NoError(t, s.Err())
	require.NoError(t, s.Recover(), "a healthy store has nothing to recover")

	_, err = s.StartIncarnation("n", 0)
	require.NoError(t, err)
	require.NoError(t, s.PutSession(sess("s1")))
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "a", Session: "s1", Meta: []byte("a")}))
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "d", Meta: []byte("d")}))
	before := snapshot(t, s)

	full.armed.Store(true)
	failed := func(s *Store) error {
		return s.PutMember(Member{Scope: "s", Group: "g", ID: "lost", Meta: []byte("x")})
	}
	err = failed(s)
	requireKind(t, err, ErrIO, "/db")
	require.ErrorIs(t, err, syscall.ENOSPC)
	requireKind(t, s.Err(), ErrIO, "/db")
	require.True(t, s.Metrics().Failed)
	_, ok := s.PebbleMetrics()
	require.False(t, ok, "a failed store's Pebble is not the store's")

	// Still full: Recover fails and changes nothing.
	err = s.Recover()
	requireKind(t, err, ErrIO, "/db")
	require.ErrorIs(t, err, syscall.ENOSPC)
	requireKind(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "later"}), ErrIO, "/db")
	require.Zero(t, s.Metrics().Recoveries)

	// Space freed.
	full.armed.Store(false)
	require.NoError(t, s.Recover())
	require.NoError(t, s.Err())
	m := s.Metrics()
	require.False(t, m.Failed)
	require.Equal(t, uint64(1), m.Recoveries)
	_, ok = s.PebbleMetrics()
	require.True(t, ok, "the reopened Pebble reports again")
	got := snapshot(t, s)
	require.Contains(t, []state{before, applied(t, before, failed)}, got,
		"after recovery: every acknowledged write, the failed one entirely or not at all")

	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "after", Meta: []byte("ok")}))
	_, err = s.DeleteMember("s", "g", "d")
	require.NoError(t, err)
	want := snapshot(t, s)
	require.NoError(t, s.Close())

	// Synced writes after the recovery survive a crash.
	s2, err := Open("/db", Options{FS: mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})})
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, want, snapshot(t, s2))
}

// TestRecoverAfterWALFailure recovers from a failed write or sync of the
// write-ahead log alone (the disk's probe succeeds at once).
func TestRecoverAfterWALFailure(t *testing.T) {
	for fail, match := range walOps {
		t.Run(fail, func(t *testing.T) {
			inj := &injector{match: match}
			s := openMem(t, errorfs.Wrap(vfs.NewMem(), inj))
			require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "kept"}))
			inj.armed.Store(true)
			requireKind(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "x"}), ErrIO, "/db")
			inj.armed.Store(false)
			require.NoError(t, s.Recover())
			require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "y"}))
			ms, err := s.Members()
			require.NoError(t, err)
			ids := map[string]bool{}
			for _, m := range ms {
				ids[m.ID] = true
			}
			require.True(t, ids["kept"] && ids["y"], "members: %v", ms)
		})
	}
}

// TestRecoverRefusesCorruption: a store failed on corrupt data is not
// reopened in process.
func TestRecoverRefusesCorruption(t *testing.T) {
	s := openMem(t, nil)
	require.True(t, s.Recoverable())
	s.fail(errorf(ErrCorrupt, s.dir, "test corruption", nil), false)
	err := s.Recover()
	requireKind(t, err, ErrCorrupt, "/db")
	require.Contains(t, err.Error(), "restart")
	requireKind(t, s.Err(), ErrCorrupt, "/db")
	require.False(t, s.Recoverable(), "a restart re-checks corrupt files")
}

// TestRecoverConcurrent runs writers, a disk-full failure and recoveries
// at once, then Close: nothing hangs or panics, every writer ends, and
// Recover and Close do not race (run with -race).
func TestRecoverConcurrent(t *testing.T) {
	full := &diskFull{}
	s, err := Open("/db", Options{FS: errorfs.Wrap(vfs.NewMem(), full)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprintf("%d-%d", w, i)}); err == nil {
					acked.Add(1)
				} else if !errors.Is(err, ErrIO) {
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		}()
	}
	for range 5 {
		full.armed.Store(true)
		_ = s.PutMember(Member{Scope: "s", Group: "g", ID: "trigger"})
		full.armed.Store(false)
		_ = s.Recover()
	}
	wg.Wait()
	require.NoError(t, s.Recover())
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "final"}))
	require.NoError(t, s.Close())
	require.Positive(t, s.Metrics().Recoveries)
}
