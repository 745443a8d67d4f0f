package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
)

// TestWatchEventTooLarge: a node (or anything posing as one) that sends an
// endless SSE line ends the watch with ErrEventTooLarge; the client does
// not grow its memory with the line, nor reconnect to get another.
func TestWatchEventTooLarge(t *testing.T) {
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("id: 1-1\nevent: snapshot\ndata: "))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}))
	defer ts.Close()
	defer close(stop)
	c, err := client.New(ts.URL, client.WithMaxEventBytes(1<<20))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	w, err := c.Watch(context.Background(), "default", "", "", "")
	require.NoError(t, err)
	defer w.Close()
	select {
	case _, ok := <-w.C:
		require.False(t, ok, "no event from an endless line")
	case <-time.After(wait):
		t.Fatal("the watch did not end")
	}
	require.ErrorIs(t, w.Err(), client.ErrEventTooLarge)
	require.Zero(t, w.Reconnects())
}

// TestDefaultTimeout: a call to a node that never answers ends after the
// client's timeout (DefaultTimeout unless set); a watch is not cut by it.
func TestDefaultTimeout(t *testing.T) {
	require.Positive(t, client.DefaultTimeout)
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(stop)
	c, err := client.New(hang.URL, client.WithTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	_, err = c.Nodes(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	rc, _, _ := start(t, "")
	wc, err := client.New(rc.BaseURL(), client.WithTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer wc.CloseIdleConnections()
	w, err := wc.Watch(context.Background(), "default", "room", "", "")
	require.NoError(t, err)
	defer w.Close()
	require.Equal(t, client.EventSnapshot, (<-w.C).Type)
	time.Sleep(300 * time.Millisecond) // past the timeout
	_, err = wc.Join(context.Background(), "default", "room", "late", nil, "")
	require.NoError(t, err)
	select {
	case e := <-w.C:
		require.Equal(t, "late", e.Member.ID)
	case <-time.After(wait):
		t.Fatal("the watch was cut")
	}
	require.Zero(t, w.Reconnects())
}

// TestWatchResumeFromAnotherRun: resuming with an id of another run of the
// node (it restarted) yields a resync, never the new run's events of the
// same seqs.
func TestWatchResumeFromAnotherRun(t *testing.T) {
	ctx := context.Background()
	a, _, regA := start(t, "")
	b, _, regB := start(t, "") // the node's next run
	require.NotEqual(t, regA.Incarnation(), regB.Incarnation())
	for i := range 5 {
		for _, c := range []*client.Client{a, b} {
			_, err := c.Join(ctx, "default", "room", fmt.Sprintf("m%d", i), nil, "")
			require.NoError(t, err)
		}
	}
	w, err := a.Watch(ctx, "default", "room", "", "")
	require.NoError(t, err)
	snap := <-w.C
	w.Close()
	wb, err := b.Watch(ctx, "default", "room", "", eventID(regA, seqOf(t, regA, snap.ID)-3))
	require.NoError(t, err)
	defer wb.Close()
	e := <-wb.C
	require.Equal(t, client.EventResync, e.Type)
	require.Len(t, e.Members, 5)
	require.Equal(t, regB.Incarnation(), e.Incarnation)
}

// TestSessionsHideIDs: the listing carries fingerprints, not ids.
func TestSessionsHideIDs(t *testing.T) {
	ctx := context.Background()
	c, _, _ := start(t, "")
	s, err := c.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	require.NotEmpty(t, s.ID)
	require.NotEmpty(t, s.Fingerprint)
	ss, err := c.Sessions(ctx)
	require.NoError(t, err)
	require.Equal(t, []client.Session{{Fingerprint: s.Fingerprint, TTL: time.Minute, Expires: ss[0].Expires}}, ss)
	require.True(t, errors.Is(&client.Error{Status: 429, Code: "too_many_sessions"}, client.ErrTooManySessions))
}

// TestWatchStateReported: a cut stream is reported as a disconnection
// (with why) and its re-establishment as a reconnection resuming after
// the last event delivered, in that order, once each per cut.
func TestWatchStateReported(t *testing.T) {
	ctx := context.Background()
	_, ts, _ := start(t, "")
	states := make(chan client.WatchState, 16)
	c, err := client.New(ts.URL, client.WithWatchState(func(s client.WatchState) { states <- s }))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	w, err := c.Watch(ctx, "default", "room", "", "")
	require.NoError(t, err)
	defer w.Close()
	snap := <-w.C
	require.Equal(t, client.EventSnapshot, snap.Type)
	next := func() client.WatchState {
		t.Helper()
		select {
		case s := <-states:
			return s
		case <-time.After(wait):
			t.Fatal("no state reported")
		}
		return client.WatchState{}
	}
	for range 2 {
		ts.CloseClientConnections()
		down := next()
		require.False(t, down.Connected)
		require.Error(t, down.Err)
		require.Equal(t, snap.ID, down.LastEventID)
		up := next()
		require.True(t, up.Connected, "%+v", up)
		require.NoError(t, up.Err)
		require.Equal(t, snap.ID, up.LastEventID)
	}
	require.Equal(t, 2, w.Reconnects())
	select {
	case s := <-states:
		t.Fatalf("unexpected state %+v", s)
	case <-time.After(100 * time.Millisecond):
	}
}
