package server_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/roster-io/roster/registry"
	"github.com/stretchr/testify/require"
)

// fullDisk fails every write with ENOSPC while armed.
type fullDisk struct{ armed atomic.Bool }

func (d *fullDisk) String() string { return "full disk" }

func (d *fullDisk) MaybeError(op errorfs.Op) error {
	if d.armed.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
		return fmt.Errorf("%w: %w", errorfs.ErrInjected, syscall.ENOSPC)
	}
	return nil
}

// TestReadyzReflectsStorage fills a node's disk: writes answer 507, and
// /readyz answers 503 storage_failed (it said 200 before) while /healthz
// stays 200 (a restart would not free the disk); once space is freed the
// node recovers by itself: /readyz is 200 and writes succeed again.
func TestReadyzReflectsStorage(t *testing.T) {
	disk := &fullDisk{}
	nd := startClusterWith(t, 1, func(c *registry.Config) {
		c.DataDir = "/data"
		c.Storage.FS = errorfs.Wrap(vfs.NewMem(), disk)
	}, nil)[0]
	const path = "/v1/scopes/default/groups/g/members/"
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", path+"a", map[string]any{}).status)
	require.Equal(t, http.StatusOK, nd.call(t, "GET", "/readyz", nil).status)

	disk.armed.Store(true)
	r := nd.call(t, "PUT", path+"b", map[string]any{})
	require.Equal(t, http.StatusInsufficientStorage, r.status, r.raw)
	r = nd.call(t, "GET", "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.raw)
	require.Equal(t, "storage_failed", r.code())
	require.Contains(t, r.raw, "storage is failing")
	require.Equal(t, http.StatusOK, nd.call(t, "GET", "/healthz", nil).status, "liveness: a restart frees no disk space")

	disk.armed.Store(false)
	require.Eventually(t, func() bool { return nd.call(t, "GET", "/readyz", nil).status == http.StatusOK }, wait, 20*time.Millisecond, "ready again after space is freed")
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", path+"b", map[string]any{}).status)
	require.Equal(t, []string{"a@n0", "b@n0"}, nd.members(t, "default", "g"))
}
