package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

const batchPath = "/v1/scopes/default/batch"

// results returns a batch answer's results.
func results(t *testing.T, r response) []map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, r.raw)
	rs, ok := r.body["results"].([]any)
	require.True(t, ok, r.raw)
	out := make([]map[string]any, len(rs))
	for i, x := range rs {
		out[i] = x.(map[string]any)
	}
	return out
}

// summary renders a result as "status" or "status code".
func summary(res map[string]any) string {
	s := strconv.Itoa(int(res["status"].(float64)))
	if e, ok := res["error"].(map[string]any); ok {
		s += " " + e["code"].(string)
	}
	return s
}

// TestBatch: joins and leaves in one request, each answered as the single
// request would be (status, member or error); a bad op fails alone; the
// applied ones replicate like any join or leave.
func TestBatch(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	require.Equal(t, http.StatusOK, b.call(t, "PUT", member+"theirs", nil).status)
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"old", nil).status)
	require.Eventually(t, func() bool { return len(a.members(t, "default", "room")) == 2 }, wait, 10*time.Millisecond)
	sess := a.call(t, "POST", "/v1/sessions", `{"ttl":"1h"}`).body["id"].(string)

	r := a.call(t, "POST", batchPath, map[string]any{"ops": []map[string]any{
		{"op": "join", "group": "room", "id": "d1", "meta": map[string]string{"addr": "10.0.0.1:1"}},
		{"op": "join", "group": "room", "id": "s1", "session": sess},
		{"op": "leave", "group": "room", "id": "old"},
		{"op": "leave", "group": "room", "id": "theirs"},
		{"op": "leave", "group": "room", "id": "nobody"},
		{"op": "join", "group": "room", "id": "x", "session": "no-such-session"},
		{"op": "join", "group": "room", "id": "bad\x01id"},
		{"op": "join", "group": "other", "id": "d2"},
	}})
	res := results(t, r)
	var got []string
	for _, x := range res {
		got = append(got, summary(x))
	}
	require.Equal(t, []string{"200", "200", "204", "409 not_owner", "404 not_member", "404 session_not_found", "400 invalid_name", "200"}, got)
	inc := strconv.FormatUint(a.reg.Incarnation(), 10)
	require.Equal(t, map[string]any{"id": "d1", "group": "room", "meta": map[string]any{"addr": "10.0.0.1:1"}, "owner": "n0",
		"incarnation": inc, "confirmed": true, "durable": true}, res[0]["member"])
	require.Equal(t, map[string]any{"id": "s1", "group": "room", "meta": map[string]any{}, "owner": "n0",
		"incarnation": inc, "confirmed": true, "session": sess}, res[1]["member"])
	for i := 3; i < 7; i++ {
		require.NotContains(t, res[i], "member")
		require.NotEmpty(t, res[i]["error"].(map[string]any)["message"])
	}
	for _, nd := range ns {
		require.Eventually(t, func() bool {
			return strings.Join(nd.members(t, "default", "room"), ",") == "d1@n0,s1@n0,theirs@n1" &&
				strings.Join(nd.members(t, "default", "other"), ",") == "d2@n0"
		}, wait, 10*time.Millisecond, "on %s", nd.reg.Name())
	}
	life, ok := a.reg.Lifetime("default", "room", "s1")
	require.True(t, ok)
	require.Equal(t, sess, life.Session)
	life, _ = a.reg.Lifetime("default", "room", "d1")
	require.True(t, life.Durable)

	// Each op is counted.
	text := a.call(t, "GET", "/metrics", nil).raw
	for _, want := range []string{
		`roster_operations_total{code="ok",op="batch_join"} 3`,
		`roster_operations_total{code="ok",op="batch_leave"} 1`,
		`roster_operations_total{code="not_owner",op="batch_leave"} 1`,
		`roster_operations_total{code="ok",op="batch"} 1`,
	} {
		require.Contains(t, text, want)
	}
}

// TestBatchRejected: a batch that cannot be read as a whole is answered
// with one error and changes nothing.
func TestBatchRejected(t *testing.T) {
	a := startCluster(t, 1, func(c *server.Config) { c.MaxBatchOps = 3; c.MaxBatchBytes = 2048 })[0]
	join := `{"op":"join","group":"room","id":"a"}`
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"empty body", batchPath, "", 400, "invalid_batch"},
		{"no ops", batchPath, `{"ops":[]}`, 400, "invalid_batch"},
		{"null ops", batchPath, `{"ops":null}`, 400, "invalid_batch"},
		{"unknown op", batchPath, `{"ops":[` + join + `,{"op":"update","group":"room","id":"b"}]}`, 400, "invalid_batch"},
		{"leave with meta", batchPath, `{"ops":[` + join + `,{"op":"leave","group":"room","id":"b","meta":{}}]}`, 400, "invalid_batch"},
		{"leave with session", batchPath, `{"ops":[{"op":"leave","group":"room","id":"b","session":"s"}]}`, 400, "invalid_batch"},
		{"too many ops", batchPath, `{"ops":[` + strings.Repeat(join+",", 3) + join + `]}`, 413, "batch_too_large"},
		// Refused at the first op too many: what follows is not read.
		{"too many ops, then anything", batchPath, `{"ops":[` + strings.Repeat(join+",", 3) + join + `,garbage`, 413, "batch_too_large"},
		{"ops not an array", batchPath, `{"ops":{}}`, 400, "bad_json"},
		{"ops twice", batchPath, `{"ops":[` + join + `],"ops":[` + join + `]}`, 400, "bad_json"},
		{"truncated", batchPath, `{"ops":[` + join, 400, "bad_json"},
		{"body too large", batchPath, `{"ops":[{"op":"join","group":"room","id":"a","meta":{"k":"` + strings.Repeat("v", 2048) + `"}}]}`, 413, "body_too_large"},
		{"unknown field in an op", batchPath, `{"ops":[{"op":"join","group":"room","id":"a","ttl":"1s"}]}`, 400, "bad_json"},
		{"field in another case", batchPath, `{"ops":[{"op":"join","group":"room","ID":"a"}]}`, 400, "bad_json"},
		{"unknown top-level field", batchPath, `{"ops":[` + join + `],"session":"s"}`, 400, "bad_json"},
		{"duplicate key", batchPath, `{"ops":[{"op":"join","group":"room","id":"a","id":"b"}]}`, 400, "bad_json"},
		{"trailing data", batchPath, `{"ops":[` + join + `]} {}`, 400, "bad_json"},
		{"invalid UTF-8", batchPath, "{\"ops\":[{\"op\":\"join\",\"group\":\"room\",\"id\":\"\xff\"}]}", 400, "bad_json"},
		{"lone surrogate", batchPath, `{"ops":[{"op":"join","group":"room","id":"\ud800"}]}`, 400, "bad_json"},
		{"not an object", batchPath, `[` + join + `]`, 400, "bad_json"},
		{"meta value not a string", batchPath, `{"ops":[{"op":"join","group":"room","id":"a","meta":{"n":1}}]}`, 400, "invalid_meta"},
		{"unknown scope", "/v1/scopes/nope/batch", `{"ops":[` + join + `]}`, 404, "unknown_scope"},
		{"bad scope name", "/v1/scopes/%01/batch", `{"ops":[` + join + `]}`, 400, "invalid_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call(t, "POST", tc.path, tc.body)
			require.Equal(t, tc.status, r.status, r.raw)
			require.Equal(t, tc.code, r.code(), r.raw)
			require.NotEmpty(t, r.body["error"].(map[string]any)["message"])
		})
	}
	require.Equal(t, []string{}, a.members(t, "default", "room"), "nothing joined")
	r := a.call(t, "GET", batchPath, nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "POST", r.header.Get("Allow"))
}

// TestBatchesInFlightBounded: with MaxBatchesInFlight 1, a batch whose
// body is still arriving holds the only slot; a second batch waits for it
// rather than being read alongside, then goes through.
func TestBatchesInFlightBounded(t *testing.T) {
	a := startCluster(t, 1, func(c *server.Config) { c.MaxBatchesInFlight = 1 })[0]
	pr, pw := io.Pipe()
	first := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("POST", a.url+batchPath, pr)
		resp, err := a.hc.Do(req)
		if err != nil {
			first <- response{status: -1, raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		first <- response{status: resp.StatusCode, raw: string(raw)}
	}()
	_, err := io.WriteString(pw, `{"ops":[{"op":"join","group":"room","id":"slow"}`)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // the first batch has taken the slot

	second := make(chan response, 1)
	go func() {
		second <- a.call(t, "POST", batchPath, `{"ops":[{"op":"join","group":"room","id":"quick"}]}`)
	}()
	select {
	case r := <-second:
		t.Fatalf("the second batch did not wait for the slot: %d %s", r.status, r.raw)
	case <-time.After(300 * time.Millisecond):
	}
	require.Equal(t, []string{}, a.members(t, "default", "room"))
	_, err = io.WriteString(pw, `]}`)
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r1 := <-first
	require.Equal(t, http.StatusOK, r1.status, r1.raw)
	r2 := <-second
	require.Equal(t, http.StatusOK, r2.status, r2.raw)
	require.Equal(t, []string{"quick@n0", "slow@n0"}, a.members(t, "default", "room"))
}

// TestBatchLarge: a batch of MaxBatchOps (10,000 by default) joins goes
// through in one request and every member is there.
func TestBatchLarge(t *testing.T) {
	a := startCluster(t, 1, nil)[0]
	var body bytes.Buffer
	body.WriteString(`{"ops":[`)
	n := server.DefaultConfig().MaxBatchOps
	for i := range n {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"op":"join","group":"g%d","id":"conn-%d","meta":{"addr":"10.0.0.1:%d"}}`, i%100, i, i)
	}
	body.WriteString(`]}`)
	res := results(t, a.call(t, "POST", batchPath, body.Bytes()))
	require.Len(t, res, n)
	for i, x := range res {
		require.Equal(t, "200", summary(x), "op %d", i)
	}
	c, err := a.reg.Count("default")
	require.NoError(t, err)
	require.Equal(t, n, c)
}
