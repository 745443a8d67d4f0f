package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/roster-io/roster/apitype"
	"net/http"
)

// Batch request bounds: the node's defaults (server.Config.MaxBatchOps and
// MaxBatchBytes). Batch splits larger batches into requests within them;
// WithBatchLimits changes them for a node configured otherwise.
const (
	DefaultBatchOps   = 10_000
	DefaultBatchBytes = 8 << 20
)

// WithBatchLimits sets the most ops and body bytes of one batch request
// (see Batch); they must not exceed the node's limits.
func WithBatchLimits(ops, bytes int) Option {
	return func(c *Client) { c.batchOps, c.batchBytes = ops, bytes }
}

// BatchOp is one operation of Batch: the join of the member (Group, ID)
// with Meta, bound to Session or, without one, durable (as Join); or,
// with Leave, its leave (Meta and Session unset).
type BatchOp struct {
	Leave   bool
	Group   string
	ID      string
	Meta    map[string]string
	Session string
}

// MarshalJSON encodes the op as the API takes it.
func (o BatchOp) MarshalJSON() ([]byte, error) {
	op := "join"
	if o.Leave {
		op = "leave"
	}
	return json.Marshal(apitype.BatchOp{Op: op, Group: o.Group, ID: o.ID, Meta: o.Meta, Session: o.Session})
}

// BatchResult answers one op of Batch: Err is nil when it was applied
// (Member is then a join's member, as Join returns it), or the *Error the
// node answered for that op alone (errors.Is(r.Err, ErrNotOwner), ...).
type BatchResult struct {
	Member Member
	Err    error
}

// Batch performs joins and leaves in one scope with a few requests
// (POST /v1/scopes/{scope}/batch) instead of one each: the node answers
// every op, persists the batch's durable and session members with one
// fsync, and applies the ops in order. A bad op fails alone: results[i]
// answers ops[i]. Batches over the request limits (WithBatchLimits) are
// sent as several requests, one after another.
//
// err is set when a request failed as a whole (unknown scope, a refused
// body, the network, ctx): results then answers only the ops of the
// requests before it, and the ops of that request may or may not have
// been applied if the failure came after they were sent.
func (c *Client) Batch(ctx context.Context, scope string, ops []BatchOp) ([]BatchResult, error) {
	results := make([]BatchResult, 0, len(ops))
	var body bytes.Buffer
	for start := 0; start < len(ops); {
		body.Reset()
		body.WriteString(`{"ops":[`)
		end := start
		for ; end < len(ops) && end-start < c.batchOps; end++ {
			b, err := json.Marshal(ops[end])
			if err != nil {
				return results, fmt.Errorf("client: encoding batch op %d: %w", end, err)
			}
			if end > start && body.Len()+len(b)+3 > c.batchBytes {
				break
			}
			if end > start {
				body.WriteByte(',')
			}
			body.Write(b)
		}
		body.WriteString(`]}`)
		var out apitype.BatchResponse
		if err := c.do(ctx, http.MethodPost, scopePath(scope)+"/batch", nil, json.RawMessage(body.Bytes()), &out); err != nil {
			return results, err
		}
		if len(out.Results) != end-start {
			return results, fmt.Errorf("client: batch of %d ops answered with %d results", end-start, len(out.Results))
		}
		for _, r := range out.Results {
			var res BatchResult
			switch {
			case r.Error != nil:
				res.Err = &Error{Status: r.Status, Code: r.Error.Code, Message: r.Error.Message, Owners: r.Error.Owners}
			case r.Member != nil:
				res.Member = *r.Member
			}
			results = append(results, res)
		}
		start = end
	}
	return results, nil
}
