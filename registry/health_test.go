package registry

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// faultyDisk fails, while armed, every write (full: ENOSPC, as a full
// disk) or only syncs of the write-ahead log (the record reaches the file
// but its fsync fails, so a refused write can still be on disk).
type faultyDisk struct {
	full, walSync atomic.Bool
}

func (d *faultyDisk) String() string { return "faulty disk" }

func (d *faultyDisk) MaybeError(op errorfs.Op) error {
	switch {
	case d.full.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite:
		return fmt.Errorf("%w: %w", errorfs.ErrInjected, syscall.ENOSPC)
	case d.walSync.Load() && strings.HasSuffix(op.Path, ".log") &&
		(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo):
		return fmt.Errorf("%w: %w", errorfs.ErrInjected, syscall.EIO)
	}
	return nil
}

func openOnFS(t *testing.T, fs vfs.FS) *Registry {
	t.Helper()
	cfg := LocalConfig("disk")
	cfg.Scopes = []string{"chat"}
	cfg.DataDir = "/data"
	cfg.Storage.FS = fs
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	return r
}

// TestStorageRecoversAfterDiskFull fills the disk under a node: durable
// joins fail with ErrStorage and StorageHealth reports it (what /readyz
// serves) for as long as the disk is full; once space is freed the node
// recovers by itself, takes durable joins again, ends a session whose
// expiry came while the disk was full, and a restart finds exactly the
// acknowledged members. Before, the node refused every durable write until
// it was restarted.
func TestStorageRecoversAfterDiskFull(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem()
	disk := &faultyDisk{}
	r := openOnFS(t, errorfs.Wrap(mem, disk))
	require.NoError(t, r.StorageHealth())
	_, err := r.Join(ctx, "chat", "room", "a", Meta{"k": "v"}, Durable())
	require.NoError(t, err)
	s, err := r.CreateSession(ctx, time.Second)
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "room", "s1", nil, InSession(s.ID))
	require.NoError(t, err)

	disk.full.Store(true)
	_, err = r.Join(ctx, "chat", "room", "b", nil, Durable())
	require.ErrorIs(t, err, ErrStorage)
	require.ErrorIs(t, r.StorageHealth(), ErrStorage)
	require.ErrorIs(t, r.StorageHealth(), syscall.ENOSPC, "the cause is named")
	// The session's expiry comes and cannot be persisted; the node keeps
	// probing and stays unhealthy while the disk is full.
	time.Sleep(1500*time.Millisecond + storageProbeInterval)
	require.ErrorIs(t, r.StorageHealth(), ErrStorage)
	_, err = r.Join(ctx, "chat", "room", "c", nil, Durable())
	require.ErrorIs(t, err, ErrStorage)

	disk.full.Store(false) // space freed
	eventually(t, "storage healthy again", func() bool { return r.StorageHealth() == nil })
	_, err = r.Join(ctx, "chat", "room", "c", nil, Durable())
	require.NoError(t, err)
	eventually(t, "the overdue session ended", func() bool { return membersOf(r, "room") == "a@disk,c@disk" })
	require.Positive(t, r.disk.Metrics().Recoveries)
	require.NoError(t, r.Close(ctx))

	r = openOnFS(t, mem)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	require.Equal(t, "a@disk,c@disk", membersOf(r, "room"))
	ms, err := r.Members("chat", "room")
	require.NoError(t, err)
	require.Equal(t, Meta{"k": "v"}, ms[0].Meta)
	require.Empty(t, r.Sessions())
}

// TestStorageRecoveryReconciles fails the fsync of a durable join and of a
// durable leave: both are refused (the node acknowledged neither), but
// their records reached the log file, so the reopened store holds them.
// Recovery brings the store back in line with what was acknowledged: the
// refused join is not restored after a restart and the refused leave's
// member is.
func TestStorageRecoveryReconciles(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem()
	disk := &faultyDisk{}
	r := openOnFS(t, errorfs.Wrap(mem, disk))
	_, err := r.Join(ctx, "chat", "room", "kept", nil, Durable())
	require.NoError(t, err)

	disk.walSync.Store(true)
	_, err = r.Join(ctx, "chat", "room", "refused", nil, Durable())
	require.ErrorIs(t, err, ErrStorage)
	disk.walSync.Store(false)
	eventually(t, "recovered", func() bool { return r.StorageHealth() == nil })
	_, onDisk, err := r.disk.Member("chat", "room", "refused")
	require.NoError(t, err)
	require.False(t, onDisk, "the refused join's record is gone from the store")

	disk.walSync.Store(true)
	require.ErrorIs(t, r.Leave(ctx, "chat", "room", "kept"), ErrStorage)
	disk.walSync.Store(false)
	eventually(t, "recovered again", func() bool { return r.StorageHealth() == nil })
	require.Equal(t, "kept@disk", membersOf(r, "room"))
	require.NoError(t, r.Close(ctx))

	r = openOnFS(t, mem)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	require.Equal(t, "kept@disk", membersOf(r, "room"), "exactly the acknowledged members after a restart")
}

// TestStorageHealthWithoutDataDir: a node without a store is always
// healthy.
func TestStorageHealthWithoutDataDir(t *testing.T) {
	r := openLocal(t, "mem", 1)
	defer r.Close(context.Background())
	require.NoError(t, r.StorageHealth())
}
