package storage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncMode says when a write to members or sessions is acknowledged.
type SyncMode int

const (
	// SyncAlways acknowledges a write only after the write-ahead log record
	// holding it has been fsynced: an acknowledged write survives a process
	// kill, a kernel crash and a power loss. Concurrent writers share
	// fsyncs (group commit), so the cost per write falls as writers are
	// added. This is the default.
	SyncAlways SyncMode = iota

	// SyncInterval acknowledges a write as soon as it is in Pebble's
	// memtable and write-ahead-log buffer, and fsyncs the log every
	// Options.SyncInterval (only when something was written since the last
	// sync).
	//
	// What can be lost: Pebble keeps unsynced log records in a 32 KiB
	// block buffer inside the process and hands them to the operating
	// system only when the block fills, a sync is requested, or its log
	// writer wakes up for other work (measured: ten small writes stay in
	// the process until the next sync). So, unlike a plain buffered file, a
	// kill -9 of the process loses the acknowledged writes of up to the
	// last SyncInterval (plus the duration of one fsync) that are still in
	// that buffer, and a kernel crash or a power loss loses the same plus
	// whatever the operating system had not yet written.
	// Writes acknowledged before the last completed periodic sync are never
	// lost. A clean Close syncs everything. Whatever is lost is lost as a
	// suffix: the recovered state is always the state after some prefix of
	// the acknowledged writes, never a partial batch.
	//
	// Identity changes (StartIncarnation) are fsynced in every mode.
	SyncInterval
)

// String implements fmt.Stringer.
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	default:
		return fmt.Sprintf("SyncMode(%d)", int(m))
	}
}

// DefaultSyncInterval is the fsync period of SyncInterval mode when
// Options.SyncInterval is zero.
const DefaultSyncInterval = 10 * time.Millisecond

// Options configures a Store. The zero value is valid and equals
// DefaultOptions().
type Options struct {
	// FS is the file system Pebble uses; nil means vfs.Default (the real
	// disk). Tests pass vfs.NewCrashableMem() or an errorfs wrapper.
	FS vfs.FS
	// Sync chooses when writes are acknowledged; see SyncMode.
	Sync SyncMode
	// SyncInterval is the fsync period in SyncInterval mode; zero means
	// DefaultSyncInterval. Ignored in SyncAlways mode.
	SyncInterval time.Duration
	// Logger receives Pebble's log lines (informational lines at Debug,
	// errors at Error; component=pebble) and this package's own
	// (component=storage); both carry "dir", so give a logger without
	// those keys. Nil discards them: Pebble never writes to stderr on its
	// own.
	Logger *slog.Logger
	// CacheBytes is the size of Pebble's block cache; zero means
	// DefaultCacheBytes. Keep it above the store's working set (about 100
	// bytes plus the metadata per member): Pebble's Clock-PRO cache holds
	// almost nothing once the working set outgrows it, and every PutMember
	// then reads blocks from disk (measured: 8 MiB with 100k members cached
	// nothing; 16 MiB hit 99%).
	CacheBytes int64

	// memTableSize overrides Pebble's memtable size (tests use a small one
	// to exercise flushes and compactions).
	memTableSize uint64
}

// DefaultCacheBytes is the block cache size when Options.CacheBytes is zero.
const DefaultCacheBytes = 32 << 20

// DefaultOptions returns the recommended options: real disk, SyncAlways,
// no logging, a 32 MiB block cache.
func DefaultOptions() Options {
	return Options{
		Sync:         SyncAlways,
		SyncInterval: DefaultSyncInterval,
		CacheBytes:   DefaultCacheBytes,
	}
}

// validate checks opts and fills in defaults.
func (o *Options) validate(dir string) error {
	switch o.Sync {
	case SyncAlways, SyncInterval:
	default:
		return errorf(ErrInvalid, dir, fmt.Sprintf("unknown sync mode %d", int(o.Sync)), nil)
	}
	if o.SyncInterval < 0 {
		return errorf(ErrInvalid, dir, fmt.Sprintf("negative sync interval %v", o.SyncInterval), nil)
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.CacheBytes < 0 {
		return errorf(ErrInvalid, dir, fmt.Sprintf("negative cache size %d", o.CacheBytes), nil)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
