package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/client"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// memberlist's Shutdown does not wait for a probe already in flight; that
// goroutine ends on its own within a probe interval. Everything else must
// be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

const wait = 10 * time.Second

// start runs a single node behind httptest and returns a client for it.
func start(t *testing.T, token string) (*client.Client, *httptest.Server, *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	rcfg := registry.LocalConfig("n0")
	rcfg.DataDir = t.TempDir()
	reg, err := registry.Open(ctx, rcfg)
	require.NoError(t, err)
	cfg := server.DefaultConfig()
	cfg.Token = token
	srv, err := server.New(reg, cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	c, err := client.New(ts.URL, client.WithToken(token))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, srv.Shutdown(ctx))
		ts.Close()
		c.CloseIdleConnections()
		require.NoError(t, reg.Close(ctx))
	})
	return c, ts, reg
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	c, _, reg := start(t, "tok")

	ok, err := c.Ready(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.Health(ctx))

	m, err := c.Join(ctx, "default", "room/1", "conn 1", map[string]string{"addr": "x"}, "")
	require.NoError(t, err)
	require.Equal(t, client.Member{ID: "conn 1", Group: "room/1", Meta: map[string]string{"addr": "x"}, Owner: "n0", Incarnation: reg.Incarnation(), Confirmed: true, Durable: true, Created: new(true)}, m)
	m, err = c.Join(ctx, "default", "room/1", "conn 1", map[string]string{"addr": "y"}, "")
	require.NoError(t, err)
	require.NotNil(t, m.Created)
	require.False(t, *m.Created, "an update")
	require.Equal(t, "y", m.Meta["addr"])
	require.NoError(t, c.Readiness(ctx))
	s, err := c.CreateSession(ctx, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, s.TTL)
	require.WithinDuration(t, time.Now().Add(2*time.Second), s.Expires, time.Second)
	m, err = c.Join(ctx, "default", "room/1", "conn 2", nil, s.ID)
	require.NoError(t, err)
	require.Equal(t, s.ID, m.Session)

	ms, err := c.Members(ctx, "default", "room/1", false)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, map[string]string{}, ms[1].Meta)
	ms, err = c.Members(ctx, "default", "room/1", true)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	gs, err := c.Groups(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, []string{"room/1"}, gs)
	ns, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, ns, 1)
	require.True(t, ns[0].Self)
	require.Equal(t, "alive", ns[0].State)

	s2, err := c.KeepAlive(ctx, s.ID)
	require.NoError(t, err)
	require.False(t, s2.Expires.Before(s.Expires))
	got, err := c.GetSession(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, s.ID, got.ID)
	ss, err := c.Sessions(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 1)
	require.NoError(t, c.CloseSession(ctx, s.ID))
	ms, err = c.Members(ctx, "default", "room/1", false)
	require.NoError(t, err)
	require.Len(t, ms, 1, "closing the session removed its member")
	require.NoError(t, c.Leave(ctx, "default", "room/1", "conn 1"))

	text, err := c.Metrics(ctx)
	require.NoError(t, err)
	require.Contains(t, text, "roster_operations_total")

	// Errors: typed, matching sentinels by code and ErrNotFound by status.
	err = c.Leave(ctx, "default", "room/1", "conn 1")
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Status)
	require.Equal(t, "not_member", e.Code)
	require.NotEmpty(t, e.Message)
	require.ErrorIs(t, err, client.ErrNotMember)
	require.ErrorIs(t, err, client.ErrNotFound)
	require.False(t, errors.Is(err, client.ErrNotOwner))
	_, err = c.Join(ctx, "nope", "g", "i", nil, "")
	require.ErrorIs(t, err, client.ErrUnknownScope)
	_, err = c.CreateSession(ctx, time.Millisecond)
	require.ErrorIs(t, err, client.ErrInvalidTTL)
	_, err = c.KeepAlive(ctx, s.ID)
	require.ErrorIs(t, err, client.ErrSessionNotFound)
	_, err = c.Join(ctx, "default", "g", string(make([]byte, 300)), nil, "")
	require.ErrorIs(t, err, client.ErrInvalidName)

	bad, err := client.New(c.BaseURL(), client.WithToken("wrong"))
	require.NoError(t, err)
	defer bad.CloseIdleConnections()
	_, err = bad.Nodes(ctx)
	require.ErrorIs(t, err, client.ErrUnauthorized)
	_, err = bad.Watch(ctx, "default", "", "", "")
	require.ErrorIs(t, err, client.ErrUnauthorized)

	_, err = client.New("localhost:8080")
	require.Error(t, err)
}

// TestWatchResumes cuts the stream under a watch repeatedly while changes
// happen: the client reconnects with Last-Event-ID and delivers every
// change exactly once, in order, without a new snapshot.
func TestWatchResumes(t *testing.T) {
	ctx := context.Background()
	c, ts, reg := start(t, "")
	w, err := c.Watch(ctx, "default", "room", "", "")
	require.NoError(t, err)
	defer w.Close()
	next := func() client.Event {
		t.Helper()
		select {
		case e, ok := <-w.C:
			require.True(t, ok, "watch ended: %v", w.Err())
			return e
		case <-time.After(wait):
			t.Fatal("no event")
		}
		return client.Event{}
	}
	snap := next()
	require.Equal(t, client.EventSnapshot, snap.Type)
	require.Empty(t, snap.Members)
	require.Equal(t, "n0", snap.Node)
	last := seqOf(t, reg, snap.ID)

	const n = 60
	go func() {
		for i := range n {
			if _, err := c.Join(ctx, "default", "room", fmt.Sprintf("m%02d", i), nil, ""); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 5 {
				ts.CloseClientConnections() // cut every stream
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for i := range n {
		e := next()
		require.Equal(t, client.EventJoin, e.Type, "event %d: %+v", i, e)
		require.Equal(t, fmt.Sprintf("m%02d", i), e.Member.ID)
		require.Equal(t, "joined", e.Reason)
		id := seqOf(t, reg, e.ID)
		require.Equal(t, last+1, id)
		last = id
	}
	require.GreaterOrEqual(t, w.Reconnects(), 1)
	require.Equal(t, eventID(reg, last), w.LastEventID())

	// Resuming explicitly from an id replays what followed it.
	w2, err := c.Watch(ctx, "default", "", "ro", eventID(reg, last-2))
	require.NoError(t, err)
	defer w2.Close()
	for _, id := range []string{"m58", "m59"} {
		select {
		case e := <-w2.C:
			require.Equal(t, id, e.Member.ID)
		case <-time.After(wait):
			t.Fatal("no replay")
		}
	}
	_, err = c.Watch(ctx, "nope", "", "", "")
	require.ErrorIs(t, err, client.ErrUnknownScope)
}

// eventID is the SSE id of reg's event seq: "<incarnation>-<seq>".
func eventID(reg *registry.Registry, seq uint64) string {
	return strconv.FormatUint(reg.Incarnation(), 10) + "-" + strconv.FormatUint(seq, 10)
}

// seqOf checks that id is of reg's run and returns its seq.
func seqOf(t *testing.T, reg *registry.Registry, id string) uint64 {
	t.Helper()
	run, seq, ok := strings.Cut(id, "-")
	require.True(t, ok, "event id %q names its run", id)
	require.Equal(t, strconv.FormatUint(reg.Incarnation(), 10), run)
	v, err := strconv.ParseUint(seq, 10, 64)
	require.NoError(t, err)
	return v
}
