package storage

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// probeFile is written, synced and removed by Recover to check that the
// disk takes writes again before Pebble is reopened.
const probeFile = "roster-probe.tmp"

// probeBytes is the size of the probe write: enough for the first records
// of a new write-ahead log, so that a disk with a few bytes free does not
// pass the probe only to fail the reopen.
const probeBytes = 64 << 10

// Err returns nil while the store is healthy, and otherwise the failure
// that made it refuse operations (wrapping ErrIO or ErrCorrupt), or
// ErrClosed after Close.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errorf(ErrClosed, s.dir, "store closed", nil)
	}
	if s.reopening {
		return s.reopenErr
	}
	return s.failErr()
}

// Recoverable reports whether Recover can bring the store back once its
// disk takes writes again: false after a failure on corrupt data or a
// wedged commit pipeline, which need a process restart. A healthy store is
// recoverable.
func (s *Store) Recoverable() bool {
	return !s.isWedged() && !errors.Is(s.failErr(), ErrCorrupt)
}

// Recover brings a failed store back without restarting the process, once
// its disk takes writes again (space freed on a full disk, a remount). It
// returns nil at once if the store has not failed.
//
// It waits for the operations in progress to return, checks that the
// directory takes a synced write (a probe file, removed again), closes
// Pebble and reopens it from the directory, keeping the directory lock.
// Reopening yields what reached stable storage, exactly as a restart
// would: every acknowledged write, and each write that failed either
// entirely or not at all (the caller, which knows what it acknowledged,
// may reconcile). Operations are refused meanwhile.
//
// It fails, and the store stays failed, with ErrIO if the disk still
// refuses the probe or Pebble does not reopen (call it again later); with
// ErrCorrupt if the store failed on corrupt data (a restart re-checks the
// files; recovering in process could serve damaged data); and with ErrIO
// if Pebble's commit pipeline is wedged (see Close): only a process
// restart releases it.
func (s *Store) Recover() error {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errorf(ErrClosed, s.dir, "recover", nil)
	}
	f := s.failErr()
	if f == nil {
		s.mu.Unlock()
		return nil
	}
	if errors.Is(f, ErrCorrupt) {
		s.mu.Unlock()
		return errorf(ErrCorrupt, s.dir, "not recoverable in process: restart to re-check the store", f)
	}
	for s.inflight > 0 && !s.isWedged() {
		s.idle.Wait()
	}
	if s.isWedged() {
		s.mu.Unlock()
		return errorf(ErrIO, s.dir, "not recoverable in process: pebble's commit pipeline is wedged; restart required", f)
	}
	s.inflight++ // Close waits for the recovery
	s.mu.Unlock()
	defer s.exit()

	if err := s.probe(); err != nil {
		return errorf(ErrIO, s.dir, "recover: the disk still refuses writes", err)
	}
	s.mu.Lock()
	s.reopening, s.reopenErr = true, errorf(ErrIO, s.dir, "store is being recovered", f)
	s.mu.Unlock()
	if s.db != nil {
		if err := closeDB(s.db); err != nil {
			s.log.Warn("recover: closing the failed pebble instance", "err", err)
		}
		s.db = nil
	}
	// Nothing runs on the old instance any more: clear its failure so that
	// failures of the new one are recorded.
	s.failure.Store(nil)
	db, err := s.openPebble(s.newFS())
	if err == nil {
		if f := s.failure.Load(); f != nil {
			err = *f
			_ = closeDB(db)
		} else {
			s.db = db
		}
	}
	if err == nil {
		err = s.checkFormat() // as Open does

		if err != nil {
			_ = closeDB(s.db)
			s.db = nil
		}
	}
	s.mu.Lock()
	s.reopening, s.reopenErr = false, nil
	s.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrIO) && !errors.Is(err, ErrCorrupt) {
			err = errorf(ErrIO, s.dir, "recover: reopen", err)
		}
		s.fail(err, false)
		return fmt.Errorf("%w (still failed)", err)
	}
	s.m.recoveries.Add(1)
	s.log.Warn("store recovered after a failure", "failure", f)
	return nil
}

// probe writes, syncs and removes a probe file in the directory, on the
// file system Pebble uses.
func (s *Store) probe() error {
	fs := s.opts.FS
	path := fs.PathJoin(s.dir, probeFile)
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, probeBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := fs.Remove(path); err == nil {
		err = rerr
	}
	return err
}
