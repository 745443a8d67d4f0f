package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file holds a randomized workload shared by the crash and
// error-injection tests. Each worker owns its keys (scope "w<n>", sessions
// "w<n>-s<k>") and runs its operations one after another, so a model of
// its keys predicts every result exactly, and after a crash the state of
// its keys must equal the model after some prefix of its operations: every
// operation acknowledged before the crash, plus possibly the ones in flight.
// Anything else (a lost acknowledged write, a half-applied DeleteSession, a
// member of a deleted session) matches no prefix.

type opKind int

const (
	opPutDurable opKind = iota
	opPutBound
	opDeleteMember
	opPutSession
	opDeleteSession
	opStartIncarnation
)

func (k opKind) String() string {
	return [...]string{"put-durable", "put-bound", "delete-member", "put-session", "delete-session", "start-incarnation"}[k]
}

// wop is one workload operation.
type wop struct {
	kind opKind
	m    Member  // put: the member; delete: its key
	sess Session // put-session
	sid  string  // delete-session
}

func (o wop) String() string {
	switch o.kind {
	case opPutDurable, opPutBound, opDeleteMember:
		return fmt.Sprintf("%v %s/%s/%s session=%q meta=%dB", o.kind, o.m.Scope, o.m.Group, o.m.ID, o.m.Session, len(o.m.Meta))
	case opPutSession:
		return fmt.Sprintf("%v %s", o.kind, o.sess.ID)
	case opDeleteSession:
		return fmt.Sprintf("%v %s", o.kind, o.sid)
	}
	return o.kind.String()
}

type mkey struct{ scope, group, id string }

func keyOf(m Member) mkey { return mkey{m.Scope, m.Group, m.ID} }

// wmodel is the expected state of one worker's keys.
type wmodel struct {
	members  map[mkey]Member
	sessions map[string]Session
}

func newModel() *wmodel {
	return &wmodel{members: map[mkey]Member{}, sessions: map[string]Session{}}
}

// outcome is what an operation is expected to return.
type outcome struct {
	invalid bool     // ErrInvalid, nothing changes
	existed bool     // DeleteMember's result
	removed []Member // DeleteSession's result
}

func (md *wmodel) apply(o wop) outcome {
	switch o.kind {
	case opPutDurable, opPutBound:
		if o.m.Session != "" {
			if _, ok := md.sessions[o.m.Session]; !ok {
				return outcome{invalid: true}
			}
		}
		m := o.m
		if len(m.Meta) == 0 {
			m.Meta = nil
		}
		md.members[keyOf(m)] = m
	case opDeleteMember:
		_, ok := md.members[keyOf(o.m)]
		delete(md.members, keyOf(o.m))
		return outcome{existed: ok}
	case opPutSession:
		ss := o.sess
		ss.Expires = time.Unix(0, ss.Expires.UnixNano())
		md.sessions[ss.ID] = ss
	case opDeleteSession:
		var removed []Member
		for k, m := range md.members {
			if m.Session == o.sid {
				removed = append(removed, m)
				delete(md.members, k)
			}
		}
		delete(md.sessions, o.sid)
		sortMembers(removed)
		return outcome{removed: removed}
	}
	return outcome{}
}

// matches reports whether the model equals stored members and sessions.
func (md *wmodel) matches(ms []Member, ss []Session) bool {
	if len(ms) != len(md.members) || len(ss) != len(md.sessions) {
		return false
	}
	for _, m := range ms {
		want, ok := md.members[keyOf(m)]
		if !ok || want.Session != m.Session || !bytes.Equal(want.Meta, m.Meta) || (want.Meta == nil) != (m.Meta == nil) {
			return false
		}
	}
	for _, x := range ss {
		want, ok := md.sessions[x.ID]
		if !ok || want.TTL != x.TTL || !want.Expires.Equal(x.Expires) {
			return false
		}
	}
	return true
}

// diff describes how the model differs from stored members and sessions,
// for failure reports.
func (md *wmodel) diff(ms []Member, ss []Session) string {
	var b strings.Builder
	got := map[mkey]Member{}
	for _, m := range ms {
		got[keyOf(m)] = m
		want, ok := md.members[keyOf(m)]
		switch {
		case !ok:
			fmt.Fprintf(&b, "unexpected member %s; ", describe(m))
		case !assert.ObjectsAreEqual(want, m):
			fmt.Fprintf(&b, "member %s, want %s; ", describe(m), describe(want))
		}
	}
	for k, m := range md.members {
		if _, ok := got[k]; !ok {
			fmt.Fprintf(&b, "missing member %s; ", describe(m))
		}
	}
	gotS := map[string]bool{}
	for _, s := range ss {
		gotS[s.ID] = true
		want, ok := md.sessions[s.ID]
		switch {
		case !ok:
			fmt.Fprintf(&b, "unexpected session %s; ", s.ID)
		case want.TTL != s.TTL || !want.Expires.Equal(s.Expires):
			fmt.Fprintf(&b, "session %v, want %v; ", s, want)
		}
	}
	for id := range md.sessions {
		if !gotS[id] {
			fmt.Fprintf(&b, "missing session %s; ", id)
		}
	}
	return b.String()
}

func describe(m Member) string {
	return fmt.Sprintf("%s/%s/%s(session=%q, meta %dB %x)", m.Scope, m.Group, m.ID, m.Session, len(m.Meta), m.Meta[:min(len(m.Meta), 4)])
}

// gen picks a random operation for worker w given its model.
func gen(rng *rand.Rand, md *wmodel, w int, incarnations bool) wop {
	scope := fmt.Sprintf("w%d", w)
	m := Member{
		Scope: scope,
		Group: []string{"a", "b/c"}[rng.IntN(2)],
		ID:    strconv.Itoa(rng.IntN(3)),
	}
	sid := fmt.Sprintf("w%d-s%d", w, rng.IntN(3))
	switch n := rng.IntN(100); {
	case n < 25:
		m.Meta = randMeta(rng)
		return wop{kind: opPutDurable, m: m}
	case n < 52:
		m.Meta = randMeta(rng)
		// Mostly an existing session, sometimes one that may not exist.
		if len(md.sessions) > 0 && rng.IntN(5) > 0 {
			ids := make([]string, 0, len(md.sessions))
			for id := range md.sessions {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			sid = ids[rng.IntN(len(ids))]
		}
		m.Session = sid
		return wop{kind: opPutBound, m: m}
	case n < 67:
		return wop{kind: opDeleteMember, m: m}
	case n < 84:
		return wop{kind: opPutSession, sess: Session{ID: sid, TTL: time.Duration(1+rng.IntN(60)) * time.Second, Expires: time.Unix(1_700_000_000+rng.Int64N(1e6), rng.Int64N(1e9))}}
	case n < 97 || !incarnations:
		return wop{kind: opDeleteSession, sid: sid}
	default:
		return wop{kind: opStartIncarnation}
	}
}

func randMeta(rng *rand.Rand) []byte {
	var n int
	switch r := rng.IntN(10); {
	case r == 0:
		n = 0
	case r == 1:
		n = 1000 + rng.IntN(2000) // pushes data through memtable flushes
	default:
		n = 1 + rng.IntN(40)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

const nodeName = "node-under-test"

// workload runs workers against a store and records their operations.
type workload struct {
	t        testing.TB
	s        *Store
	logs     [][]wop
	started  []atomic.Int64 // operations begun, per worker
	acked    []atomic.Int64 // operations returned (acknowledged), per worker
	maxInc   atomic.Uint64  // highest incarnation returned
	stopOnIO bool           // error injection: a worker stops at its first ErrIO
	ioErrs   atomic.Int64
	between  func(w int) // called by worker 0 between operations
}

func newWorkload(t testing.TB, s *Store, workers int) *workload {
	return &workload{
		t:       t,
		s:       s,
		logs:    make([][]wop, workers),
		started: make([]atomic.Int64, workers),
		acked:   make([]atomic.Int64, workers),
	}
}

// run starts the workers, seeded from seed; they stop when stop is closed
// (or, with stopOnIO, at their first ErrIO). The returned WaitGroup tracks
// them.
func (wl *workload) run(seed uint64, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range wl.logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wl.worker(w, rand.New(rand.NewPCG(seed, uint64(w))), stop)
		}()
	}
	return &wg
}

func (wl *workload) worker(w int, rng *rand.Rand, stop <-chan struct{}) {
	t := wl.t
	md := newModel()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if w == 0 && wl.between != nil {
			wl.between(w)
		}
		o := gen(rng, md, w, true)
		wl.logs[w] = append(wl.logs[w], o)
		wl.started[w].Store(int64(i + 1))
		want := md.apply(o)

		var err error
		var got outcome
		switch o.kind {
		case opPutDurable, opPutBound:
			err = wl.s.PutMember(o.m)
		case opDeleteMember:
			got.existed, err = wl.s.DeleteMember(o.m.Scope, o.m.Group, o.m.ID)
		case opPutSession:
			err = wl.s.PutSession(o.sess)
		case opDeleteSession:
			got.removed, err = wl.s.DeleteSession(o.sid)
		case opStartIncarnation:
			var inc uint64
			inc, err = wl.s.StartIncarnation(nodeName, 0)
			if err == nil {
				for {
					cur := wl.maxInc.Load()
					if inc <= cur || wl.maxInc.CompareAndSwap(cur, inc) {
						break
					}
				}
			}
		}
		switch {
		case err != nil && wl.stopOnIO && errors.Is(err, ErrIO):
			if !strings.Contains(err.Error(), wl.s.Dir()) {
				t.Errorf("worker %d op %d %v: error does not name the directory: %v", w, i, o, err)
			}
			wl.ioErrs.Add(1)
			return
		case want.invalid:
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("worker %d op %d %v: got %v, want ErrInvalid", w, i, o, err)
				return
			}
		case err != nil:
			t.Errorf("worker %d op %d %v: %v", w, i, o, err)
			return
		case o.kind == opDeleteMember && got.existed != want.existed:
			t.Errorf("worker %d op %d %v: existed=%v, want %v", w, i, o, got.existed, want.existed)
			return
		case o.kind == opDeleteSession && !assert.ObjectsAreEqual(want.removed, got.removed):
			t.Errorf("worker %d op %d %v: removed %v, want %v", w, i, o, got.removed, want.removed)
			return
		}
		wl.acked[w].Store(int64(i + 1))
	}
}

// crashPoint is a crash-consistent copy of the file system plus what was
// acknowledged before it was taken and what had begun by the time it was
// done.
type crashPoint struct {
	fs             *vfs.MemFS
	acked, started []int64
	maxInc         uint64
	desc           string
}

// crash takes a crash point of mem, keeping unsynced data with a random
// probability.
func (wl *workload) crash(mem *vfs.MemFS, rng *rand.Rand, desc string) crashPoint {
	cp := crashPoint{acked: make([]int64, len(wl.logs)), started: make([]int64, len(wl.logs))}
	for w := range wl.logs {
		cp.acked[w] = wl.acked[w].Load()
	}
	cp.maxInc = wl.maxInc.Load()
	pct := []int{0, 0, 30, 100}[rng.IntN(4)]
	cp.fs = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
	for w := range wl.logs {
		cp.started[w] = wl.started[w].Load()
	}
	cp.desc = fmt.Sprintf("%s (unsynced data kept: %d%%)", desc, pct)
	return cp
}

// verify opens the crash point's file system and checks that every
// worker's keys hold the model's state after some prefix of its operations
// with at least acked (0 if anyPrefix) and at most started operations, that
// the session index is exact, and that a new incarnation exceeds every one
// handed out before the crash.
func (wl *workload) verify(t testing.TB, cp crashPoint, anyPrefix bool) {
	t.Helper()
	s, err := Open("/db", Options{FS: cp.fs})
	require.NoError(t, err, cp.desc)
	defer func() { require.NoError(t, s.Close(), cp.desc) }()

	ms, err := s.Members()
	require.NoError(t, err, cp.desc)
	ss, err := s.Sessions()
	require.NoError(t, err, cp.desc)
	byWorkerM := make([][]Member, len(wl.logs))
	byWorkerS := make([][]Session, len(wl.logs))
	for _, m := range ms {
		w, err := strconv.Atoi(strings.TrimPrefix(m.Scope, "w"))
		require.NoError(t, err, "%s: foreign member %v", cp.desc, m)
		require.Less(t, w, len(wl.logs), cp.desc)
		byWorkerM[w] = append(byWorkerM[w], m)
	}
	for _, x := range ss {
		w, err := strconv.Atoi(strings.TrimPrefix(x.ID[:strings.Index(x.ID, "-")], "w"))
		require.NoError(t, err, "%s: foreign session %v", cp.desc, x)
		byWorkerS[w] = append(byWorkerS[w], x)
	}
	for w, log := range wl.logs {
		lo, hi := cp.acked[w], cp.started[w]
		if anyPrefix {
			lo = 0
		}
		md := newModel()
		for _, o := range log[:lo] {
			md.apply(o)
		}
		for k := lo; ; k++ {
			if md.matches(byWorkerM[w], byWorkerS[w]) {
				break
			}
			if k == hi {
				wl.explain(t, cp, w, lo, hi, byWorkerM[w], byWorkerS[w])
			}
			md.apply(log[k])
		}
	}
	checkIndex(t, s)
	inc, err := s.StartIncarnation(nodeName, 0)
	require.NoError(t, err, cp.desc)
	require.Greater(t, inc, cp.maxInc, "%s: incarnation reused", cp.desc)
}

// explain fails the test with how the recovered state of worker w differs
// from each allowed prefix.
func (wl *workload) explain(t testing.TB, cp crashPoint, w int, lo, hi int64, ms []Member, ss []Session) {
	t.Helper()
	log := wl.logs[w]
	md := newModel()
	var diffs []string
	for k := int64(0); k <= hi; k++ {
		if k >= lo {
			diffs = append(diffs, fmt.Sprintf("after %d ops: %s", k, md.diff(ms, ss)))
		}
		if k < hi {
			md.apply(log[k])
		}
	}
	var ops []string
	for i := max(0, lo-3); i < min(int64(len(log)), hi+2); i++ {
		ops = append(ops, fmt.Sprintf("  #%d %v", i, log[i]))
	}
	t.Fatalf("%s: worker %d: recovered state matches no prefix of %d..%d operations:\n%s\noperations:\n%s",
		cp.desc, w, lo, hi, strings.Join(diffs, "\n"), strings.Join(ops, "\n"))
}

// testSeed returns the seed for a randomized test and arranges for it to be
// printed if the test fails.
func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: replay with -storage.seed=%d (worker operation sequences replay exactly; goroutine and crash timing do not)", seed, seed)
		}
	})
	return seed
}
