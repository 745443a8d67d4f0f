package client_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
)

// TestBatch: Batch sends ops in requests within the limits (here 10 ops
// or 1 KiB), answers each op in order, and a bad op fails alone with its
// sentinel; a request refused as a whole stops the batch.
func TestBatch(t *testing.T) {
	ctx := context.Background()
	c, ts, reg := start(t, "tok")
	s, err := c.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	var ops []client.BatchOp
	for i := range 25 {
		op := client.BatchOp{Group: "room", ID: fmt.Sprintf("m%02d", i), Meta: map[string]string{"i": fmt.Sprint(i)}}
		if i%2 == 1 {
			op.Session = s.ID
		}
		ops = append(ops, op)
	}
	big := strings.Repeat("v", 900) // leaves room for one leave in a 1 KiB request
	ops = append(ops,
		client.BatchOp{Group: "room", ID: "big", Meta: map[string]string{"k": big}},
		client.BatchOp{Leave: true, Group: "room", ID: "m00"},
		client.BatchOp{Leave: true, Group: "room", ID: "nobody"},
		client.BatchOp{Group: "room", ID: "x", Session: "gone"},
	)
	bc, err := client.New(ts.URL, client.WithToken("tok"), client.WithBatchLimits(10, 1024))
	require.NoError(t, err)
	defer bc.CloseIdleConnections()
	res, err := bc.Batch(ctx, "default", ops)
	require.NoError(t, err)
	require.Len(t, res, len(ops))
	for i := range 25 {
		require.NoError(t, res[i].Err, "op %d", i)
		m := res[i].Member
		require.Equal(t, ops[i].ID, m.ID)
		require.Equal(t, "n0", m.Owner)
		require.Equal(t, reg.Incarnation(), m.Incarnation)
		require.Equal(t, ops[i].Session, m.Session)
		require.Equal(t, i%2 == 0, m.Durable)
		require.Equal(t, map[string]string{"i": fmt.Sprint(i)}, m.Meta)
	}
	require.NoError(t, res[25].Err)
	require.NoError(t, res[26].Err)
	require.Equal(t, client.Member{}, res[26].Member, "a leave answers no member")
	require.ErrorIs(t, res[27].Err, client.ErrNotMember)
	require.ErrorIs(t, res[27].Err, client.ErrNotFound)
	require.ErrorIs(t, res[28].Err, client.ErrSessionNotFound)

	ms, err := c.Members(ctx, "default", "room", false)
	require.NoError(t, err)
	require.Len(t, ms, 25, "m01..m24 and big")
	text, err := c.Metrics(ctx)
	require.NoError(t, err)
	// 10 + 10 + 5 ops, then big and a leave (1 KiB), then the last two.
	require.Contains(t, text, `roster_operations_total{code="ok",op="batch"} 5`)

	res, err = c.Batch(ctx, "nope", ops[:3])
	require.ErrorIs(t, err, client.ErrUnknownScope)
	require.Empty(t, res)
	res, err = c.Batch(ctx, "default", nil)
	require.NoError(t, err)
	require.Empty(t, res)

	_, err = client.New(ts.URL, client.WithBatchLimits(0, 1024))
	require.Error(t, err)
}
