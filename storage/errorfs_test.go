package storage

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// injector fails operations that match, while armed.
type injector struct {
	armed atomic.Bool
	match func(op errorfs.Op) bool
	hits  atomic.Int64
}

func (i *injector) String() string { return "test injector" }

func (i *injector) MaybeError(op errorfs.Op) error {
	if i.armed.Load() && i.match(op) {
		i.hits.Add(1)
		return errorfs.ErrInjected
	}
	return nil
}

// walOps selects failed writes or failed syncs of the write-ahead log.
var walOps = map[string]func(op errorfs.Op) bool{
	"wal-write": func(op errorfs.Op) bool {
		return isWAL(op.Path) && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt)
	},
	"wal-sync": func(op errorfs.Op) bool {
		return isWAL(op.Path) && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo)
	},
}

// TestInjectedFailure fails a WAL write or sync during each kind of write:
// the operation returns ErrIO naming the directory and the cause, without a
// panic; the store then refuses everything; Close returns; and after a
// restart (with or without the unsynced data) the operation is entirely
// there or entirely absent and every earlier acknowledged write is there.
func TestInjectedFailure(t *testing.T) {
	ops := map[string]func(s *Store) error{
		"put-durable": func(s *Store) error {
			return s.PutMember(Member{Scope: "s", Group: "g", ID: "new", Meta: []byte("new")})
		},
		"put-bound": func(s *Store) error {
			return s.PutMember(Member{Scope: "s", Group: "g", ID: "d1", Session: "s2", Meta: []byte("moved")})
		},
		"delete-member": func(s *Store) error { return second(s.DeleteMember("s", "g", "d1")) },
		"delete-session": func(s *Store) error {
			_, err := s.DeleteSession("s1")
			return err
		},
		"put-session":       func(s *Store) error { return s.PutSession(sess("s3")) },
		"start-incarnation": func(s *Store) error { return second(s.StartIncarnation("n", 0)) },
	}
	for fail, match := range walOps {
		for name, op := range ops {
			t.Run(fail+"/"+name, func(t *testing.T) {
				mem := vfs.NewCrashableMem()
				inj := &injector{match: match}
				s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
				require.NoError(t, err)

				// Acknowledged state before the failure.
				_, err = s.StartIncarnation("n", 0)
				require.NoError(t, err)
				require.NoError(t, s.PutSession(sess("s1")))
				require.NoError(t, s.PutSession(sess("s2")))
				for i := range 3 {
					require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i), Session: "s1", Meta: []byte{byte(i)}}))
				}
				require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "d1", Meta: []byte("durable")}))
				before := snapshot(t, s)

				inj.armed.Store(true)
				err = op(s)
				requireKind(t, err, ErrIO, "/db")
				require.ErrorIs(t, err, errorfs.ErrInjected, "the cause is kept")
				require.Positive(t, inj.hits.Load())
				require.True(t, s.Metrics().Failed)

				// Failed store: writes and reads are refused.
				requireKind(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "later"}), ErrIO, "/db")
				_, err = s.Members()
				requireKind(t, err, ErrIO, "/db")
				require.Contains(t, err.Error(), "restart required")
				requireKind(t, s.Close(), ErrIO, "/db")

				after := func(fs vfs.FS) state {
					s, err := Open("/db", Options{FS: fs})
					require.NoError(t, err)
					defer s.Close()
					checkIndex(t, s)
					return snapshot(t, s)
				}
				want := []state{before, applied(t, before, op)}
				for _, pct := range []int{0, 100} {
					got := after(mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(1, 2))}))
					require.Contains(t, want, got, "unsynced kept %d%%: state must be before or after the failed op", pct)
				}
			})
		}
	}
}

// state is everything a test can observe in a store.
type state struct {
	Members     []Member
	Sessions    []Session
	Incarnation uint64
}

func snapshot(t testing.TB, s *Store) state {
	t.Helper()
	ms, err := s.Members()
	require.NoError(t, err)
	ss, err := s.Sessions()
	require.NoError(t, err)
	inc, err := s.Incarnation()
	require.NoError(t, err)
	return state{Members: ms, Sessions: normalize(ss), Incarnation: inc}
}

// applied computes the state after op from the state before it, by running
// op on a healthy store holding that state.
func applied(t testing.TB, before state, op func(*Store) error) state {
	t.Helper()
	s := openMem(t, nil)
	for _, x := range before.Sessions {
		require.NoError(t, s.PutSession(x))
	}
	for _, m := range before.Members {
		require.NoError(t, s.PutMember(m))
	}
	for range before.Incarnation {
		_, err := s.StartIncarnation("n", 0)
		require.NoError(t, err)
	}
	require.NoError(t, op(s))
	return snapshot(t, s)
}

// TestInjectedFailureConcurrent runs the random workload with many writers
// and fails WAL writes or syncs mid-way: every writer gets ErrIO (nobody
// hangs, nothing panics), Close returns, and the directory reopens with
// every acknowledged operation and each writer's failed operation entirely
// there or entirely absent. Before the Store contained log failures (see
// instrumentedFS) about one run in ten wedged Pebble's commit pipeline here.
func TestInjectedFailureConcurrent(t *testing.T) {
	seed := testSeed(t)
	for round := range 12 {
		fail := []string{"wal-write", "wal-sync"}[round%2]
		t.Run(fmt.Sprintf("%d-%s", round, fail), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(round)))
			mem := vfs.NewCrashableMem()
			inj := &injector{match: walOps[fail]}
			s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
			require.NoError(t, err)
			wl := newWorkload(t, s, 32)
			wl.stopOnIO = true
			stop := make(chan struct{})
			wg := wl.run(seed+uint64(round), stop)
			time.Sleep(time.Duration(rng.IntN(20_000)) * time.Microsecond)
			inj.armed.Store(true)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				close(stop)
				t.Fatal("writers hung after an injected failure")
			}
			close(stop)
			require.Equal(t, int64(32), wl.ioErrs.Load(), "every writer ends with ErrIO")
			require.True(t, s.Metrics().Failed)
			requireKind(t, s.Close(), ErrIO, "/db")
			for _, pct := range []int{0, 100} {
				cp := crashPoint{maxInc: wl.maxInc.Load(), desc: fmt.Sprintf("seed %d round %d %s, unsynced kept %d%%", seed, round, fail, pct)}
				cp.fs = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
				for w := range wl.logs {
					cp.acked = append(cp.acked, wl.acked[w].Load())
					cp.started = append(cp.started, wl.started[w].Load())
				}
				wl.verify(t, cp, false)
			}
		})
	}
}

// TestInjectedManifestFailure fails MANIFEST writes while Pebble flushes a
// memtable: Pebble reports it as fatal, the store fails, and Close returns.
func TestInjectedManifestFailure(t *testing.T) {
	mem := vfs.NewCrashableMem()
	inj := &injector{match: func(op errorfs.Op) bool {
		return isManifest(op.Path) && op.Kind.ReadOrWrite() == errorfs.OpIsWrite
	}}
	s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: fmt.Sprint(i)}))
	}
	inj.armed.Store(true)
	_, err = s.db.AsyncFlush()
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.Metrics().Failed }, 10*time.Second, time.Millisecond)
	err = s.PutMember(Member{Scope: "s", Group: "g", ID: "x"})
	requireKind(t, err, ErrIO, "/db")
	require.Contains(t, err.Error(), "MANIFEST")
	inj.armed.Store(false) // let the background flush finish so that Close can
	_ = s.Close()

	s, err = Open("/db", Options{FS: mem.CrashClone(vfs.CrashCloneCfg{})})
	require.NoError(t, err)
	defer s.Close()
	ms, err := s.Members()
	require.NoError(t, err)
	require.Len(t, ms, 20)
}

// TestFailingFS stands in for a read-only directory when running as root
// (which ignores permissions): a file system that refuses every write.
// Open fails with ErrIO naming the directory, for a new directory and an
// existing store alike, and so does a file system that fails every read.
func TestFailingFS(t *testing.T) {
	allWrites := func(op errorfs.Op) bool { return op.Kind.ReadOrWrite() == errorfs.OpIsWrite }
	allReads := func(op errorfs.Op) bool { return op.Kind.ReadOrWrite() == errorfs.OpIsRead }
	armed := func(match func(errorfs.Op) bool) *injector {
		i := &injector{match: match}
		i.armed.Store(true)
		return i
	}

	mem := vfs.NewMem()
	_, err := Open("/db", Options{FS: errorfs.Wrap(mem, armed(allWrites))})
	requireKind(t, err, ErrIO, "/db")
	require.ErrorIs(t, err, errorfs.ErrInjected)

	// Existing store.
	s := openMem(t, mem)
	require.NoError(t, s.PutMember(Member{Scope: "s", Group: "g", ID: "x"}))
	require.NoError(t, s.Close())
	for name, match := range map[string]func(errorfs.Op) bool{"writes": allWrites, "reads": allReads} {
		_, err = Open("/db", Options{FS: errorfs.Wrap(mem, armed(match))})
		requireKind(t, err, ErrIO, "/db")
		require.NotErrorIs(t, err, ErrLocked, name)
	}
	// The directory is intact and unlocked.
	s = openMem(t, mem)
	ms, err := s.Members()
	require.NoError(t, err)
	require.Len(t, ms, 1)
}
