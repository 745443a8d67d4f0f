package storage

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/record"
)

// FormatVersion is the version of the key layout and value encoding this
// build writes and reads. Open refuses a directory with any other version.
const FormatVersion = 1

// pebbleFormat pins Pebble's on-disk format so that upgrading the Pebble
// library never silently ratchets a data directory to a format an older
// roster build cannot read. (It is FormatNewest of Pebble v2.1.7.)
const pebbleFormat = pebble.FormatValueSeparation

const (
	memberStripes  = 256
	sessionStripes = 64
)

// Store is one node's durable state in one Pebble directory. All methods
// are safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	// plog carries Pebble's own lines (component=pebble): a logger of
	// its own rather than log with the key repeated.
	plog *slog.Logger
	db   *pebble.DB
	lock *pebble.Lock
	m    metrics

	// mu guards closed, inflight and reopening; idle is signalled when
	// inflight drops to zero or the store becomes wedged.
	mu       sync.Mutex
	idle     *sync.Cond
	closed   bool
	inflight int
	// reopening is set while Recover replaces db; enter refuses
	// operations with reopenErr meanwhile.
	reopening bool
	reopenErr error
	// recoverMu serialises Recover.
	recoverMu sync.Mutex

	// failure is set once, by the first fatal error; wedged is closed when
	// Pebble's commit pipeline may be left locked (a panic during a commit).
	failure  atomic.Pointer[error]
	wedged   chan struct{}
	wedgeOne sync.Once

	// memberLocks serialise read-modify-write of one member key (stripe by
	// hash); sessionLocks make "session exists, then bind a member to it"
	// atomic against DeleteSession. Lock order: session, then member
	// stripes in increasing index order.
	memberLocks  [memberStripes]sync.Mutex
	sessionLocks [sessionStripes]sync.RWMutex
	incMu        sync.Mutex // StartIncarnation
	peersMu      sync.Mutex // SetPeers

	// Group commit of synced writes (see apply): the queue of the next
	// round and whether a leader is committing one.
	groupMu      sync.Mutex
	groupQueue   []*groupWaiter
	groupLeading bool

	// dirty counts unsynced commits, for the SyncInterval syncer.
	dirty      atomic.Uint64
	stopSyncer chan struct{}
	syncerDone chan struct{}
}

// Open opens the store in dir, creating the directory and an empty store if
// missing. It fails with ErrLocked if another Store (in any process) has dir
// open, ErrVersion if dir was written in an unknown format, ErrCorrupt if
// Pebble's files or the format record are damaged, ErrIO if the directory
// cannot be created or written (read-only, full disk), and ErrInvalid for
// bad options. It never panics.
func Open(dir string, opts Options) (_ *Store, err error) {
	if dir == "" {
		return nil, errorf(ErrInvalid, dir, "empty directory name", nil)
	}
	if err := opts.validate(dir); err != nil {
		return nil, err
	}
	s := &Store{
		dir:    dir,
		opts:   opts,
		log:    opts.Logger.With("component", "storage", "dir", dir),
		plog:   opts.Logger.With("component", "pebble", "dir", dir),
		wedged: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)

	fs := s.newFS()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, errorf(ErrIO, dir, "create directory", err)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		if isLockConflict(err) {
			return nil, errorf(ErrLocked, dir, "directory is in use by another store", err)
		}
		return nil, errorf(ErrIO, dir, "lock directory", err)
	}
	s.lock = lock
	defer func() {
		if err != nil {
			if s.db != nil {
				_ = closeDB(s.db)
			}
			_ = lock.Close()
		}
	}()
	if s.db, err = s.openPebble(fs); err != nil {
		return nil, err
	}
	if f := s.failure.Load(); f != nil {
		return nil, *f
	}
	if err := s.checkFormat(); err != nil {
		return nil, err
	}
	if opts.Sync == SyncInterval {
		s.stopSyncer = make(chan struct{})
		s.syncerDone = make(chan struct{})
		go s.syncer()
	}
	return s, nil
}

// newFS returns the file system wrapper of one Pebble instance: every
// open (Open, Recover) gets a fresh one, whose log is not yet dead.
func (s *Store) newFS() *instrumentedFS {
	return &instrumentedFS{FS: s.opts.FS, m: &s.m, onFail: func(path string, err error) {
		s.fail(errorf(ErrIO, s.dir, "store failed, restart required: I/O on "+path+" failed", err), false)
	}}
}

// openPebble opens Pebble in the store's directory on fs, with the
// directory lock the store holds.
func (s *Store) openPebble(fs *instrumentedFS) (*pebble.DB, error) {
	dir := s.dir
	popts := &pebble.Options{
		FS:                 fs,
		Lock:               s.lock,
		CacheSize:          s.opts.CacheBytes,
		MemTableSize:       s.opts.memTableSize,
		FormatMajorVersion: pebbleFormat,
		Logger:             pebbleLogger{log: s.plog, fatal: s.pebbleFatal},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				s.log.Error("pebble background error", "err", err)
				if pebble.IsCorruptionError(err) {
					s.fail(errorf(ErrCorrupt, dir, "pebble background error", err), false)
				}
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				s.log.Error("pebble detected corruption", "path", info.Path, "err", info.Details)
				s.fail(errorf(ErrCorrupt, dir, "corrupt file "+info.Path, info.Details), false)
			},
			DiskSlow: func(info pebble.DiskSlowInfo) {
				s.log.Warn("slow disk operation", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
		},
	}
	// Bloom filters let PutMember's read of a new member (and other misses)
	// skip tables that cannot hold the key instead of reading their blocks.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		popts.Levels[i].FilterType = pebble.TableFilter
	}
	return openDB(dir, popts)
}

// openDB runs pebble.Open, turning a panic into an error.
func openDB(dir string, popts *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, classify(dir, "open pebble (panicked)", panicError(r))
		}
	}()
	db, err = pebble.Open(dir, popts)
	if err != nil {
		if isVersionError(err) {
			return nil, errorf(ErrVersion, dir, "pebble format", err)
		}
		return nil, classify(dir, "open pebble", err)
	}
	return db, nil
}

// closeDB runs db.Close, turning a panic into an error.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return db.Close()
}

// checkFormat reads the format version record, writing it into an empty
// store.
func (s *Store) checkFormat() error {
	key := makeKey(kindMeta, metaFormat)
	v, ok, err := s.get(key, "read format version")
	if err != nil {
		return err
	}
	if ok {
		ver, err := decodeUint(kindMeta, v)
		if err != nil {
			return errorf(ErrCorrupt, s.dir, "format version record", err)
		}
		if ver != FormatVersion {
			return errorf(ErrVersion, s.dir, fmt.Sprintf("directory has format version %d, this build supports %d", ver, FormatVersion), nil)
		}
		return nil
	}
	// No format record: only an empty store (fresh, or a crash before the
	// first write) is acceptable.
	it, err := s.db.NewIter(nil)
	if err != nil {
		return classify(s.dir, "scan store", err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return classify(s.dir, "scan store", err)
	}
	if !empty {
		return errorf(ErrCorrupt, s.dir, "store has data but no format version record (not a roster store?)", nil)
	}
	b := s.db.NewBatch()
	_ = b.Set(key, encodeUint(kindMeta, FormatVersion), nil)
	if err := s.apply("write format version", b, true); err != nil {
		return err
	}
	// A new Pebble directory starts its first write-ahead log before Pebble
	// upgrades the directory's format, so that log lacks the synced offsets
	// that let recovery tell damaged synced records from a torn tail.
	// Starting a flush rotates to a log in the current format (the flush
	// itself goes on in the background).
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = panicError(r)
			}
		}()
		_, err = s.db.AsyncFlush()
		return err
	}()
	if err != nil {
		return classify(s.dir, "flush new store", err)
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Metrics returns the store's counters. It may be called at any time, also
// after Close.
func (s *Store) Metrics() Metrics {
	out := s.m.snapshot()
	out.Failed = s.failure.Load() != nil
	return out
}

// PebbleMetrics returns Pebble's own figures for the store. It reports
// false, and nothing, while the store is closed, failed or being
// recovered: Pebble's state is then not the store's.
func (s *Store) PebbleMetrics() (PebbleMetrics, bool) {
	s.mu.Lock()
	if s.closed || s.reopening || s.failErr() != nil || s.db == nil {
		s.mu.Unlock()
		return PebbleMetrics{}, false
	}
	s.inflight++
	s.mu.Unlock()
	defer s.exit()
	return pebbleMetrics(s.db.Metrics()), true
}

// Close stops the store and releases the directory. Writes acknowledged in
// SyncInterval mode are synced. Close waits for operations in progress.
//
// If the store has failed, Close still closes Pebble and returns the
// failure (wrapping ErrIO or ErrCorrupt). One case is special: if Pebble
// panicked inside a commit (left after the log-failure containment in
// instrumentedFS: a log file that cannot be created when Pebble rotates
// it), Pebble's commit pipeline stays locked and closing Pebble would block
// forever. Close then returns at once with an error saying so, leaving
// Pebble's goroutines and the directory lock to be released by the process
// exit; operations stuck in Pebble have already returned ErrIO to their
// callers.
// Calling Close twice returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errorf(ErrClosed, s.dir, "close", nil)
	}
	s.closed = true
	s.mu.Unlock()

	if s.stopSyncer != nil {
		close(s.stopSyncer)
		<-s.syncerDone
	}

	s.mu.Lock()
	for s.inflight > 0 && !s.isWedged() {
		s.idle.Wait()
	}
	s.mu.Unlock()
	if s.isWedged() {
		return errorf(ErrIO, s.dir, "close: pebble's commit pipeline is wedged after a failure; its resources are released at process exit", s.failErr())
	}

	var err error
	if s.db != nil { // nil after a Recover that could not reopen Pebble
		err = closeDB(s.db)
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if f := s.failErr(); f != nil {
		if err != nil {
			return fmt.Errorf("%w; closing pebble: %v", f, err)
		}
		return f
	}
	if err != nil {
		return classify(s.dir, "close", err)
	}
	return nil
}

// Sync fsyncs the write-ahead log, making every acknowledged write durable.
// It is only useful in SyncInterval mode or after SetPeers or SaveCache.
func (s *Store) Sync() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	b := s.db.NewBatch()
	_ = b.LogData(nil, nil)
	return s.apply("sync", b, true)
}

// syncer is the SyncInterval mode's background fsync loop.
func (s *Store) syncer() {
	defer close(s.syncerDone)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	var synced uint64
	for {
		select {
		case <-s.stopSyncer:
			return
		case <-t.C:
		}
		d := s.dirty.Load()
		if d == synced {
			continue
		}
		if err := s.Sync(); err != nil {
			if !errors.Is(err, ErrClosed) {
				s.log.Error("periodic sync failed", "err", err)
			}
			continue
		}
		synced = d
	}
}

// enter admits an operation; exit must follow.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errorf(ErrClosed, s.dir, "operation on closed store", nil)
	}
	if s.reopening {
		s.m.errors.Add(1)
		return s.reopenErr
	}
	if f := s.failErr(); f != nil {
		s.m.errors.Add(1)
		return f
	}
	s.inflight++
	return nil
}

func (s *Store) exit() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// fail records the first fatal error; wedged also marks the commit pipeline
// unusable.
func (s *Store) fail(err error, wedged bool) {
	if s.failure.CompareAndSwap(nil, &err) {
		s.log.Error("store failed, restart required", "err", err)
	}
	if wedged {
		s.wedgeOne.Do(func() {
			close(s.wedged)
			s.mu.Lock()
			s.idle.Broadcast()
			s.mu.Unlock()
		})
	}
}

func (s *Store) failErr() error {
	if f := s.failure.Load(); f != nil {
		return *f
	}
	return nil
}

func (s *Store) isWedged() bool {
	select {
	case <-s.wedged:
		return true
	default:
		return false
	}
}

// pebbleFatal is called by Pebble's logger on fatal errors.
func (s *Store) pebbleFatal(msg string) {
	s.fail(errorf(ErrIO, s.dir, "store failed, restart required: pebble reported a fatal error", errors.New(msg)), false)
}

// apply commits b (and closes it on success), fsyncing the log first if
// sync is set. The caller must have entered. Pebble's commit runs in its own
// goroutine so that the caller gets ErrIO instead of blocking forever if a
// concurrent failure wedges the commit pipeline.
// apply commits b, fsynced first when sync is set. Synced commits go
// through a group commit: concurrent callers' batches are merged into one
// Pebble batch and one commit, so 64 writers cost a few commits and one
// fsync per round instead of 64 trips through Pebble's commit pipeline.
// Each caller's batch stays atomic (the merged batch is); every caller of a
// round gets the round's result.
func (s *Store) apply(op string, b *pebble.Batch, sync bool) error {
	if !sync {
		return s.commit(op, b, false)
	}
	p := &groupWaiter{b: b, done: make(chan groupResult, 1)}
	s.groupMu.Lock()
	s.groupQueue = append(s.groupQueue, p)
	if s.groupLeading {
		s.groupMu.Unlock()
		if r := <-p.done; !r.lead {
			return r.err
		}
		// Handed the lead: commit the round that queued up meanwhile.
	} else {
		s.groupLeading = true
		s.groupMu.Unlock()
	}
	s.groupMu.Lock()
	round := s.groupQueue
	s.groupQueue = nil
	s.groupMu.Unlock()

	var err error
	if len(round) == 1 {
		err = s.commit(op, b, true)
	} else {
		merged := s.db.NewBatch()
		for _, w := range round {
			if err = merged.Apply(w.b, nil); err != nil {
				err = errorf(ErrIO, s.dir, op+": merging a group commit", err)
				break
			}
		}
		if err == nil {
			err = s.commit(op+" (group of "+strconv.Itoa(len(round))+")", merged, true)
		}
		for _, w := range round {
			_ = w.b.Close()
		}
	}
	for _, w := range round {
		if w != p {
			w.done <- groupResult{err: err}
		}
	}
	s.groupMu.Lock()
	if len(s.groupQueue) > 0 {
		s.groupQueue[0].done <- groupResult{lead: true}
	} else {
		s.groupLeading = false
	}
	s.groupMu.Unlock()
	return err
}

type groupWaiter struct {
	b    *pebble.Batch
	done chan groupResult
}

type groupResult struct {
	err  error
	lead bool // take over as the leader of the next round
}

// commit commits one batch.
func (s *Store) commit(op string, b *pebble.Batch, sync bool) error {
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				err := errorf(ErrIO, s.dir, "store failed, restart required: pebble panicked during "+op, panicError(r))
				s.fail(err, true)
				done <- err
			}
		}()
		done <- b.Commit(wo)
	}()
	var err error
	select {
	case err = <-done:
	case <-s.wedged:
		err = s.failErr()
	}
	if err != nil {
		// Pebble leaves its commit pipeline in an unknown state after a
		// failed commit (the batch may sit in its pending queue forever).
		if !errors.Is(err, ErrIO) {
			err = errorf(ErrIO, s.dir, "store failed, restart required: "+op+" failed", err)
		}
		s.fail(err, false)
		s.m.errors.Add(1)
		return s.failErr()
	}
	// A fatal error reported through the logger during this commit (a
	// failed log write or fsync) does not make Commit return an error.
	if f := s.failErr(); f != nil {
		s.m.errors.Add(1)
		return f
	}
	_ = b.Close()
	s.m.commits.Add(1)
	if sync {
		s.m.syncedCommits.Add(1)
	} else {
		s.dirty.Add(1)
	}
	return nil
}

// writeSync reports whether member and session writes wait for an fsync.
func (s *Store) writeSync() bool { return s.opts.Sync == SyncAlways }

// get reads key; the value is copied. It uses a prefix iterator rather than
// DB.Get so that bloom filters are consulted on every level: by default
// Pebble skips the filters of the last level, which holds most data, and
// PutMember of a new member would read an index and a data block per miss.
func (s *Store) get(key []byte, op string) ([]byte, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		s.m.errors.Add(1)
		return nil, false, classify(s.dir, op, err)
	}
	var out []byte
	found := it.SeekPrefixGE(key) && string(it.Key()) == string(key)
	if found {
		var v []byte
		if v, err = it.ValueAndErr(); err == nil {
			out = append([]byte(nil), v...)
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.m.errors.Add(1)
		return nil, false, classify(s.dir, op, err)
	}
	return out, found, nil
}

// scan calls fn for every key with the given prefix, in key order. Key and
// value are only valid during the call.
func (s *Store) scan(prefix []byte, op string, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		s.m.errors.Add(1)
		return classify(s.dir, op, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		s.m.errors.Add(1)
		return classify(s.dir, op, err)
	}
	return nil
}

// corrupt builds the ErrCorrupt error for a value or key that does not
// decode.
func (s *Store) corrupt(kind byte, key []byte, err error) error {
	s.m.errors.Add(1)
	return errorf(ErrCorrupt, s.dir, fmt.Sprintf("%s record %q", kindName(kind), key), err)
}

func (s *Store) memberLock(key []byte) int {
	h := fnv.New32a()
	_, _ = h.Write(key)
	return int(h.Sum32() % memberStripes)
}

func (s *Store) sessionLock(id string) *sync.RWMutex {
	return &s.sessionLocks[s.sessionStripe(id)]
}

func (s *Store) sessionStripe(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % sessionStripes)
}

// classify wraps a Pebble error in ErrCorrupt or ErrIO.
func classify(dir, what string, err error) error {
	if isCorruption(err) {
		return errorf(ErrCorrupt, dir, what, err)
	}
	return errorf(ErrIO, dir, what, err)
}

// isCorruption recognises Pebble's corruption errors: those marked with
// pebble.ErrCorruption and the record reader's checksum and framing errors
// (a damaged MANIFEST or log).
func isCorruption(err error) bool {
	return pebble.IsCorruptionError(err) ||
		errors.Is(err, record.ErrInvalidChunk) ||
		errors.Is(err, record.ErrZeroedChunk) ||
		errors.Is(err, record.ErrUnexpectedEOF)
}

// isVersionError recognises Pebble's report of a directory written by a
// newer Pebble.
func isVersionError(err error) bool {
	return strings.Contains(err.Error(), "unknown format major version")
}

// isLockConflict tells a lock held elsewhere (EAGAIN/EACCES from fcntl, or
// Pebble's own "lock held by current process") from a failure to create the
// lock file (a *os.PathError).
func isLockConflict(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// panicError converts a recovered panic value to an error.
func panicError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", r)
}

var _ io.Closer = (*Store)(nil)
