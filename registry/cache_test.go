package registry

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/roster-io/roster/storage"
	"github.com/stretchr/testify/require"
)

// TestCorruptCacheIsDiscarded damages the saved state of other nodes (the
// warm cache) of a stopped node, once as a chunk whose stored bytes fail
// their checksum and once as a chunk that is not a delta: the node used
// to refuse to start; now it starts, discards the cache (counted in
// CacheDiscards), its own durable members are intact, and the other
// node's members come back from that node.
func TestCorruptCacheIsDiscarded(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"bad-checksum": func(t *testing.T, dir string) {
			db, err := pebble.Open(dir, &pebble.Options{})
			require.NoError(t, err)
			// storage's key of chunk 0 of scope "chat" (see storage/keys.go).
			key := binary.BigEndian.AppendUint32(append([]byte{'c', 4}, "chat"...), 0)
			_, closer, err := db.Get(key)
			require.NoError(t, err, "the cache has a chunk 0")
			closer.Close()
			require.NoError(t, db.Set(key, []byte("\x00garbage"), pebble.Sync))
			require.NoError(t, db.Close())
		},
		"not-a-delta": func(t *testing.T, dir string) {
			st, err := storage.Open(dir, storage.Options{})
			require.NoError(t, err)
			chunks, err := st.LoadCache("chat")
			require.NoError(t, err)
			require.NotEmpty(t, chunks)
			chunks[0] = []byte("not a delta")
			require.NoError(t, st.SaveCache("chat", chunks))
			require.NoError(t, st.Close())
		},
	}
	for name, corrupt := range damage {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			owner := openLocal(t, "owner", 1)
			defer func() { require.NoError(t, owner.Close(ctx)) }()
			_, err := owner.Join(ctx, "chat", "room", "theirs", nil)
			require.NoError(t, err)

			dir := t.TempDir()
			open := func() (*Registry, error) {
				cfg := LocalConfig("cached")
				cfg.Scopes = []string{"chat", "games"}
				cfg.DataDir = dir
				cfg.Seeds = []string{owner.Addr()}
				return Open(ctx, cfg)
			}
			r, err := open()
			require.NoError(t, err)
			_, err = r.Join(ctx, "chat", "room", "mine", Meta{"k": "v"}, Durable())
			require.NoError(t, err)
			eventually(t, "both members", func() bool { return membersOf(r, "room") == "mine@cached,theirs@owner" })
			require.NoError(t, r.Close(ctx)) // saves the cache

			corrupt(t, dir)
			r, err = open()
			require.NoError(t, err, "a damaged cache does not stop the node")
			defer func() { require.NoError(t, r.Close(ctx)) }()
			require.Equal(t, uint64(1), r.disk.Metrics().CacheDiscards)
			local, err := r.LocalMembers("chat", "room")
			require.NoError(t, err)
			require.Len(t, local, 1)
			require.Equal(t, "mine", local[0].ID)
			require.Equal(t, Meta{"k": "v"}, local[0].Meta)
			eventually(t, "the other node's members come back from it", func() bool {
				return membersOf(r, "room") == "mine@cached,theirs@owner"
			})
		})
	}
}
