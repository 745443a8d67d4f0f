package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWaitReady: a lone node is ready at once; a node whose seed answers
// becomes ready once joined; one whose seed never answers waits until its
// context ends (with that context's error); a closed node gets ErrClosed,
// also while it waits.
func TestWaitReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a := openLocal(t, "a", 1)
	defer func() { require.NoError(t, a.Close(context.Background())) }()
	require.NoError(t, a.WaitReady(ctx), "no seeds: ready at once")

	b := openLocal(t, "b", 1, a.Addr())
	defer func() { require.NoError(t, b.Close(context.Background())) }()
	require.NoError(t, b.WaitReady(ctx))
	require.True(t, b.Ready())
	require.Len(t, b.Nodes(), 2, "ready means joined")

	c := openLocal(t, "c", 1, "127.0.0.1:1") // nobody there
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	err := c.WaitReady(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, c.Ready())

	done := make(chan error, 1)
	go func() { done <- c.WaitReady(ctx) }()
	time.Sleep(3 * readyPoll)
	require.NoError(t, c.Close(context.Background()))
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrClosed, "closing ends the wait")
	case <-ctx.Done():
		t.Fatal("WaitReady did not return after Close")
	}
	require.ErrorIs(t, c.WaitReady(ctx), ErrClosed)
}

// drained waits for w.C to close, failing the test after a while.
func drained(t *testing.T, w *Watch) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-w.C:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the watch's channel was not closed")
		}
	}
}

// TestWatchErr: Err is nil while a watch runs and, once C is closed, says
// why it ended: Close, the end of its context (canceled or past its
// deadline), or the registry closing.
func TestWatchErr(t *testing.T) {
	r := openLocal(t, "w", 1)
	closed := false
	defer func() {
		if !closed {
			require.NoError(t, r.Close(context.Background()))
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byCancel, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	require.NoError(t, byCancel.Err(), "running")
	byClose, err := r.Watch(context.Background(), "chat", All())
	require.NoError(t, err)
	dl, cancelDL := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelDL()
	byDeadline, err := r.Watch(dl, "chat", All())
	require.NoError(t, err)
	byRegistry, err := r.Watch(context.Background(), "games", All())
	require.NoError(t, err)

	_, err = r.Join(context.Background(), "chat", "g", "m", nil)
	require.NoError(t, err)
	require.Equal(t, "m", next(t, byCancel).Member.ID)
	require.NoError(t, byCancel.Err(), "still running after an event")

	cancel()
	drained(t, byCancel)
	require.ErrorIs(t, byCancel.Err(), context.Canceled)

	byClose.Close()
	drained(t, byClose)
	require.ErrorIs(t, byClose.Err(), ErrWatchClosed)
	byClose.Close()
	require.ErrorIs(t, byClose.Err(), ErrWatchClosed, "a second Close changes nothing")

	drained(t, byDeadline)
	require.ErrorIs(t, byDeadline.Err(), context.DeadlineExceeded)

	require.NoError(t, byRegistry.Err())
	require.NoError(t, r.Close(context.Background()))
	closed = true
	drained(t, byRegistry)
	require.ErrorIs(t, byRegistry.Err(), ErrClosed)
	byRegistry.Close()
	require.ErrorIs(t, byRegistry.Err(), ErrClosed, "the first reason stays")
}
