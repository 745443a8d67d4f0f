package registry

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/storage"
)

// diskStore is the store with Config.DataDir: a Pebble store.
type diskStore struct{ st *storage.Store }

func storageErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// memberErr maps the store's error for a member write: a put bound to a
// session the store does not hold is ErrNoSession, anything else
// ErrStorage.
func memberErr(session string, del bool, err error) error {
	if session != "" && !del && errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("%w: %q: %w", ErrNoSession, truncate(session), err)
	}
	return storageErr(err)
}

func (d diskStore) putMember(k handleKey, session string, meta []byte) error {
	return memberErr(session, false, d.st.PutMember(storage.Member{Scope: k.scope, Group: k.group, ID: k.id, Meta: meta, Session: session}))
}

func (d diskStore) deleteMember(k handleKey) error {
	_, err := d.st.DeleteMember(k.scope, k.group, k.id)
	return storageErr(err)
}

func (d diskStore) writeMembers(ws []memberWrite) ([]error, error) {
	sws := make([]storage.MemberWrite, len(ws))
	for i, w := range ws {
		sws[i] = storage.MemberWrite{Member: storage.Member{Scope: w.k.scope, Group: w.k.group, ID: w.k.id, Meta: w.meta, Session: w.session}, Delete: w.del}
	}
	errs, err := d.st.WriteMembers(sws)
	if err != nil {
		return nil, storageErr(err)
	}
	for i, e := range errs {
		errs[i] = memberErr(ws[i].session, ws[i].del, e)
	}
	return errs, nil
}

func (d diskStore) putSession(s Session) error {
	return storageErr(d.st.PutSession(storage.Session{ID: s.ID, TTL: s.TTL, Expires: s.Expires}))
}

func (d diskStore) deleteSession(id string) error {
	_, err := d.st.DeleteSession(id)
	return storageErr(err)
}

// openStore opens the data directory and fixes this run's identity: a new
// incarnation, fsynced before anything is announced, and the persisted
// peers added to the seeds.
func openStore(cfg *Config) (*storage.Store, error) {
	opts := cfg.Storage
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	st, err := storage.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, storageErr(err)
	}
	floor := cfg.Incarnation
	if floor == 0 {
		floor = uint64(time.Now().UnixNano()) & (crdt.MaxCounter - 1)
	}
	inc, err := st.StartIncarnation(cfg.Name, floor)
	if err != nil {
		_ = st.Close()
		return nil, storageErr(err)
	}
	cfg.Incarnation = inc
	peers, err := st.Peers()
	if err != nil {
		_ = st.Close()
		return nil, storageErr(err)
	}
	seeds := append(slices.Clone(cfg.Seeds), peers...)
	slices.Sort(seeds)
	cfg.Seeds = slices.Compact(seeds)
	return st, nil
}

// loadCache reads the cached state of every served scope, for
// gossip.Preload. The cache only speeds up a restart (peers hold the same
// state), so a scope's cache that does not load or decode is discarded
// with a warning (storage.Metrics.CacheDiscards counts it) instead of
// stopping the node: anti-entropy then fetches the scope from peers. Only
// a failure to read the disk at all fails.
func loadCache(st *storage.Store, scopes []string) (map[string][][]byte, error) {
	out := map[string][][]byte{}
	for _, scope := range scopes {
		chunks, err := st.LoadCache(scope)
		switch {
		case errors.Is(err, storage.ErrCorrupt):
		case err != nil:
			return nil, storageErr(err)
		default:
			err = checkChunks(chunks)
		}
		if err != nil {
			if err := st.DiscardCache(scope, err); err != nil {
				return nil, storageErr(err)
			}
			chunks = nil
		}
		out[scope] = chunks
	}
	return out, nil
}

// checkChunks decodes every cached chunk, as gossip.Preload will (it fails
// on a chunk that does not decode).
func checkChunks(chunks [][]byte) error {
	for i, c := range chunks {
		if _, err := crdt.DecodeDelta(c); err != nil {
			return fmt.Errorf("cache chunk %d of %d: %w", i, len(chunks), err)
		}
	}
	return nil
}

// restore brings back, after a restart, what the last run persisted (the
// other replicas' state was preloaded by gossip.New): the live sessions,
// and the durable and session members, re-announced under the new
// incarnation. Expired sessions are deleted with their members.
func (r *Registry) restore(st *storage.Store) error {
	sessions, err := st.Sessions()
	if err != nil {
		return storageErr(err)
	}
	now := time.Now()
	live := map[string]bool{}
	for _, s := range sessions {
		if !now.Before(s.Expires) {
			if _, err := st.DeleteSession(s.ID); err != nil {
				return storageErr(err)
			}
			continue
		}
		live[s.ID] = true
	}
	members, err := st.Members()
	if err != nil {
		return storageErr(err)
	}
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	for _, s := range sessions {
		if live[s.ID] {
			r.armLocked(&session{Session: Session{ID: s.ID, TTL: s.TTL, Expires: s.Expires}, members: map[handleKey]struct{}{}})
		}
	}
	restored := 0
	for _, m := range members {
		if m.Session != "" && !live[m.Session] {
			continue // deleted with its session above
		}
		k := handleKey{m.Scope, m.Group, m.ID}
		if err := r.node.Join(m.Scope, m.Group, m.ID, crdt.RawMeta(m.Meta)); err != nil {
			// A scope this node no longer serves: keep the record, so
			// serving the scope again brings the member back.
			r.log.Warn("persisted member not restored", "scope", m.Scope, "group", m.Group, "id", m.ID, "err", err)
			continue
		}
		life := Lifetime{Durable: m.Session == "", Session: m.Session}
		r.sess.owned[k] = life
		if m.Session != "" {
			r.sess.byID[m.Session].members[k] = struct{}{}
		}
		restored++
	}
	if restored > 0 || len(live) > 0 {
		r.log.Info("restored owned members", "members", restored, "sessions", len(live))
	}
	return nil
}

// saveLoop saves the cache and the peer list every CacheInterval, and
// tries every storageProbeInterval to recover a failed store (see
// StorageHealth).
func (r *Registry) saveLoop(st *storage.Store, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var save <-chan time.Time
	if r.cfg.CacheInterval > 0 {
		t := time.NewTicker(r.cfg.CacheInterval)
		defer t.Stop()
		save = t.C
	}
	probe := time.NewTicker(storageProbeInterval)
	defer probe.Stop()
	for {
		select {
		case <-stop:
			return
		case <-probe.C:
			r.recoverStorage(st)
		case <-save:
			if st.Err() != nil {
				continue // the probe reports and recovers it
			}
			if err := r.save(st, false); err != nil {
				r.log.Warn("saving the cache failed", "err", err)
			}
		}
	}
}

// save writes every scope's state (other replicas only) and the peers.
// A scope whose remote state has not moved since the last save is skipped
// unless force (Close).
func (r *Registry) save(st *storage.Store, force bool) error {
	wrote := false
	for _, scope := range r.node.Scopes() {
		v := r.node.RemoteVersion(scope)
		if !force && r.savedVersion[scope] == v {
			continue
		}
		r.savedVersion[scope] = v
		chunks, err := r.node.SaveState(scope)
		if err != nil {
			return err
		}
		if err := st.SaveCache(scope, chunks); err != nil {
			return storageErr(err)
		}
		wrote = true
	}
	if peers := r.node.PeerAddrs(); force || !slices.Equal(peers, r.savedPeers) {
		if err := st.SetPeers(peers); err != nil {
			return storageErr(err)
		}
		r.savedPeers, wrote = peers, true
	}
	if !wrote {
		return nil // nothing moved: no write, no fsync
	}
	// The cache and peers are written without fsync; one sync makes them
	// survive a kill -9 (Pebble buffers unsynced log records in-process).
	return storageErr(st.Sync())
}
