package storage

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteMembersOneSync: a batch of puts, rebindings and deletes is one
// synced commit and one fsync of the log, where the same writes one by
// one cost one each; the result is what the single writes would leave,
// session index included.
func TestWriteMembersOneSync(t *testing.T) {
	s := openMem(t, nil)
	require.NoError(t, s.PutSession(sess("s1")))
	require.NoError(t, s.PutSession(sess("s2")))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "old", Session: "s1"}))
	require.NoError(t, s.PutMember(Member{Scope: "a", Group: "g", ID: "moved", Session: "s1"}))

	var ws []MemberWrite
	var want []Member
	for i := range 100 {
		m := Member{Scope: "a", Group: fmt.Sprintf("g%d", i%7), ID: fmt.Sprintf("m%03d", i), Meta: []byte{byte(i)}}
		if i%2 == 0 {
			m.Session = "s2"
		}
		ws = append(ws, MemberWrite{Member: m})
		want = append(want, m)
	}
	ws = append(ws,
		MemberWrite{Member: Member{Scope: "a", Group: "g", ID: "old"}, Delete: true},
		MemberWrite{Member: Member{Scope: "a", Group: "g", ID: "missing"}, Delete: true}, // writes nothing
		MemberWrite{Member: Member{Scope: "a", Group: "g", ID: "moved", Session: "s2"}},
	)
	want = append(want, Member{Scope: "a", Group: "g", ID: "moved", Session: "s2"})

	m0 := s.Metrics()
	errs, err := s.WriteMembers(ws)
	require.NoError(t, err)
	require.Len(t, errs, len(ws))
	for i, e := range errs {
		require.NoError(t, e, "write %d", i)
	}
	m1 := s.Metrics()
	require.Equal(t, m0.Commits+1, m1.Commits, "one commit for the batch")
	require.Equal(t, m0.SyncedCommits+1, m1.SyncedCommits)
	require.Equal(t, m0.WALSyncs+1, m1.WALSyncs, "one fsync for the batch")

	ms, err := s.Members()
	require.NoError(t, err)
	sortMembers(want)
	require.Equal(t, want, ms)
	checkIndex(t, s)

	// s1 lost both its members to the batch: deleting it removes none.
	removed, err := s.DeleteSession("s1")
	require.NoError(t, err)
	require.Empty(t, removed)
	removed, err = s.DeleteSession("s2")
	require.NoError(t, err)
	require.Len(t, removed, 51)

	// The same 100 puts one at a time: 100 fsyncs.
	m2 := s.Metrics()
	for _, w := range ws[:100] {
		w.Session = ""
		require.NoError(t, s.PutMember(w.Member))
	}
	require.Equal(t, m2.WALSyncs+100, s.Metrics().WALSyncs)
}

// TestWriteMembersBadWrites: each bad write gets its own ErrInvalid, the
// others are written; a batch of only bad writes writes nothing.
func TestWriteMembersBadWrites(t *testing.T) {
	s := openMem(t, nil)
	require.NoError(t, s.PutSession(sess("s1")))
	long := strings.Repeat("x", MaxNameBytes+1)
	ws := []MemberWrite{
		{Member: Member{Scope: "a", Group: "g", ID: "ok1"}},
		{Member: Member{Scope: "a", Group: "g", ID: long}},                      // bad name
		{Member: Member{Scope: "a", Group: "g", ID: "nosess", Session: "gone"}}, // no such session
		{Member: Member{Scope: "a", Group: "g", ID: "ok2", Session: "s1"}},
		{Member: Member{Scope: "a", Group: "g", ID: "ok1", Meta: []byte("again")}}, // twice in one batch
		{Member: Member{Scope: "a", Group: "", ID: "x"}, Delete: true},             // bad delete
		{Member: Member{Scope: "a", Group: "g", ID: "big", Meta: make([]byte, MaxMetaBytes+1)}},
	}
	errs, err := s.WriteMembers(ws)
	require.NoError(t, err)
	for i, bad := range []bool{false, true, true, false, true, true, true} {
		if bad {
			requireKind(t, errs[i], ErrInvalid, "/db")
		} else {
			require.NoError(t, errs[i], "write %d", i)
		}
	}
	require.Contains(t, errs[2].Error(), `session "gone" does not exist`)
	require.Contains(t, errs[4].Error(), "already written by write 0")
	ms, err := s.Members()
	require.NoError(t, err)
	require.Equal(t, []Member{{Scope: "a", Group: "g", ID: "ok1"}, {Scope: "a", Group: "g", ID: "ok2", Session: "s1"}}, ms)
	checkIndex(t, s)

	before := s.Metrics().Commits
	errs, err = s.WriteMembers(ws[1:3])
	require.NoError(t, err)
	requireKind(t, errs[0], ErrInvalid, "/db")
	requireKind(t, errs[1], ErrInvalid, "/db")
	errs, err = s.WriteMembers([]MemberWrite{{Member: Member{Scope: "a", Group: "g", ID: "none"}, Delete: true}})
	require.NoError(t, err)
	require.Equal(t, []error{nil}, errs)
	require.Equal(t, before, s.Metrics().Commits, "nothing to write: no commit")

	require.NoError(t, s.Close())
	errs, err = s.WriteMembers(ws[:1])
	requireKind(t, err, ErrClosed, "/db")
	require.Nil(t, errs)
}

// TestWriteMembersAtomicVsDeleteSession races batches binding members to a
// session against DeleteSession: a member written successfully is either
// removed with the session or refused, never left bound to a deleted
// session; and batches, single puts and deletions never deadlock on each
// other's locks.
func TestWriteMembersAtomicVsDeleteSession(t *testing.T) {
	s := openMem(t, nil)
	for round := range 20 {
		ids := []string{fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)}
		for _, id := range ids {
			require.NoError(t, s.PutSession(sess(id)))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		put := map[string][]string{}
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					var ws []MemberWrite
					for j := range 16 {
						sid := ids[(w+j)%2]
						ws = append(ws, MemberWrite{Member: Member{Scope: "x", Group: "g", ID: fmt.Sprintf("%d-%d-%d-%d", round, w, i, j), Session: sid}})
					}
					errs, err := s.WriteMembers(ws)
					if !assert.NoError(t, err) {
						return
					}
					refused := 0
					mu.Lock()
					for j, e := range errs {
						if e != nil {
							assert.ErrorIs(t, e, ErrInvalid)
							refused++
							continue
						}
						put[ws[j].Session] = append(put[ws[j].Session], ws[j].ID)
					}
					mu.Unlock()
					if refused == len(ws) {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		got := map[string][]string{}
		for _, id := range ids {
			removed, err := s.DeleteSession(id)
			require.NoError(t, err)
			for _, m := range removed {
				got[id] = append(got[id], m.ID)
			}
		}
		wg.Wait()
		for _, id := range ids {
			require.ElementsMatch(t, put[id], got[id], "round %d session %s", round, id)
		}
		ms, err := s.Members()
		require.NoError(t, err)
		require.Empty(t, ms, "round %d: members of a deleted session survived", round)
	}
	checkIndex(t, s)
}
