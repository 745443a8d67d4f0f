package storage

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// instrumentedFS wraps the FS given to Pebble. It does two things:
//
//   - It times every sync for Metrics.
//
//   - It contains write-ahead-log failures. Pebble v2.1.7 makes a failed
//     log write or sync sticky inside its log writer; the next record that
//     fills a 32 KiB log block then makes the following commit panic while
//     it holds the commit pipeline's mutex, which blocks every later commit
//     and DB.Close forever (cockroachdb/pebble#6004). With 64 concurrent
//     writers that happened after about one injected failure in ten. So the
//     first failed write or sync of a log file marks the Store failed (every
//     commit not yet acknowledged then returns ErrIO, see Store.apply) and
//     from then on the wrapper reports success to Pebble while discarding
//     every further log write and sync. Pebble's in-memory state then runs
//     ahead of the disk, but the Store serves nothing from it any more; the
//     log on disk ends where the failure happened, which recovery treats as
//     the torn tail of a crash. Close then works normally and releases the
//     directory, and reopening yields exactly the durable writes.
//
// A failed MANIFEST write also marks the Store failed (Pebble reports it as
// fatal and returns an error; it does not wedge).
type instrumentedFS struct {
	vfs.FS
	m      *metrics
	onFail func(path string, err error)
	// walDead is set by the first failed log write or sync.
	walDead atomic.Bool
}

func baseName(path string) string { return path[strings.LastIndexAny(path, `/\`)+1:] }

func isWAL(path string) bool      { return strings.HasSuffix(baseName(path), ".log") }
func isManifest(path string) bool { return strings.HasPrefix(baseName(path), "MANIFEST-") }

func (fs *instrumentedFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		if isWAL(name) || isManifest(name) {
			fs.onFail(name, err)
		}
		return f, err
	}
	return &instrumentedFile{File: f, fs: fs, name: name, wal: isWAL(name), manifest: isManifest(name)}, nil
}

// Create implements vfs.FS.
func (fs *instrumentedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs *instrumentedFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS.
func (fs *instrumentedFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

// OpenDir implements vfs.FS; directory syncs are counted too.
func (fs *instrumentedFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return f, err
	}
	return &instrumentedFile{File: f, fs: fs, name: name}, nil
}

// Unwrap implements vfs.FS.
func (fs *instrumentedFS) Unwrap() vfs.FS { return fs.FS }

// instrumentedFile times syncs and contains log failures.
type instrumentedFile struct {
	vfs.File
	fs       *instrumentedFS
	name     string
	wal      bool
	manifest bool
}

// discard reports whether a log write must be dropped because an earlier
// one failed.
func (f *instrumentedFile) discard() bool { return f.wal && f.fs.walDead.Load() }

// failed handles the error of a write or sync; for the log it reports the
// failure and hides it from Pebble (see instrumentedFS).
func (f *instrumentedFile) failed(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case f.wal:
		f.fs.walDead.Store(true)
		f.fs.onFail(f.name, err)
		return nil
	case f.manifest:
		f.fs.onFail(f.name, err)
	}
	return err
}

func (f *instrumentedFile) Write(p []byte) (int, error) {
	if f.discard() {
		return len(p), nil
	}
	n, err := f.File.Write(p)
	if err = f.failed(err); err == nil {
		n = len(p)
	}
	return n, err
}

func (f *instrumentedFile) WriteAt(p []byte, off int64) (int, error) {
	if f.discard() {
		return len(p), nil
	}
	n, err := f.File.WriteAt(p, off)
	if err = f.failed(err); err == nil {
		n = len(p)
	}
	return n, err
}

func (f *instrumentedFile) Preallocate(off, n int64) error {
	if f.discard() {
		return nil
	}
	return f.failed(f.File.Preallocate(off, n))
}

func (f *instrumentedFile) Sync() error {
	if f.discard() {
		return nil
	}
	start := time.Now()
	err := f.File.Sync()
	f.fs.m.observeSync(time.Since(start), f.wal)
	return f.failed(err)
}

func (f *instrumentedFile) SyncData() error {
	if f.discard() {
		return nil
	}
	start := time.Now()
	err := f.File.SyncData()
	f.fs.m.observeSync(time.Since(start), f.wal)
	return f.failed(err)
}

func (f *instrumentedFile) SyncTo(length int64) (bool, error) {
	if f.discard() {
		return true, nil
	}
	start := time.Now()
	full, err := f.File.SyncTo(length)
	if full {
		f.fs.m.observeSync(time.Since(start), f.wal)
	}
	if err = f.failed(err); err == nil && !full && f.fs.walDead.Load() {
		full = true
	}
	return full, err
}
