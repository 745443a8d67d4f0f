package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMembersPages: limit and offset page a group's listing in its order,
// with its total; local pages the node's own members; a bad page is a 400
// invalid_query naming the parameter.
func TestMembersPages(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	for i := range 12 {
		require.Equal(t, http.StatusOK, a.call(t, "PUT", member+fmt.Sprintf("m%02d", i), `{"meta":{"k":"v"}}`).status)
	}
	require.Equal(t, http.StatusOK, b.call(t, "PUT", member+"zz", nil).status)
	require.Eventually(t, func() bool { return len(a.members(t, "default", "room")) == 13 }, wait, 10*time.Millisecond)
	all := a.members(t, "default", "room")
	require.Nil(t, a.call(t, "GET", "/v1/scopes/default/groups/room/members", nil).body["total"], "no total without a page")

	var paged []string
	for offset := 0; offset < 13; offset += 5 {
		r := a.call(t, "GET", fmt.Sprintf("/v1/scopes/default/groups/room/members?limit=5&offset=%d", offset), nil)
		require.Equal(t, float64(13), r.body["total"], r.raw)
		page := memberIDs(t, r)
		require.Len(t, page, min(5, 13-offset))
		paged = append(paged, page...)
	}
	require.Equal(t, all, paged, "the pages make up the listing")
	r := a.call(t, "GET", "/v1/scopes/default/groups/room/members?limit=2", nil)
	require.Equal(t, []string{"m00@n0", "m01@n0"}, memberIDs(t, r), "offset defaults to 0")
	m := r.body["members"].([]any)[0].(map[string]any)
	require.Equal(t, map[string]any{"k": "v"}, m["meta"])
	r = a.call(t, "GET", "/v1/scopes/default/groups/room/members?limit=10&offset=13", nil)
	require.Equal(t, []string{}, memberIDs(t, r), "past the end: an empty page")
	require.Equal(t, float64(13), r.body["total"])
	r = b.call(t, "GET", "/v1/scopes/default/groups/room/members?local=true&limit=10", nil)
	require.Equal(t, []string{"zz@n1"}, memberIDs(t, r))
	require.Equal(t, float64(1), r.body["total"])
	r = a.call(t, "GET", "/v1/scopes/default/groups/nobody/members?limit=10", nil)
	require.Equal(t, []string{}, memberIDs(t, r))
	require.Equal(t, float64(0), r.body["total"])

	for query, says := range map[string]string{
		"limit=0": "limit", "limit=1001": "limit", "limit=x": "limit", "limit=5&offset=-1": "offset",
		"offset=5": "offset needs limit", "limit=5&offset=1e3": "offset",
	} {
		r := a.call(t, "GET", "/v1/scopes/default/groups/room/members?"+query, nil)
		require.Equal(t, http.StatusBadRequest, r.status, query)
		require.Equal(t, "invalid_query", r.code(), query)
		require.Contains(t, r.raw, says, query)
	}
	r = a.call(t, "GET", "/v1/scopes/nope/groups/room/members?limit=5", nil)
	require.Equal(t, "unknown_scope", r.code())
}

// TestGroupsListing: prefix filters, counts gives each listed group's
// size, limit and after page by name with the matching total and the next
// page's after; without any of them the answer is as before.
func TestGroupsListing(t *testing.T) {
	a := startCluster(t, 1, nil)[0]
	sizes := map[string]int{"api": 2, "app": 1, "apple": 3, "batch": 1, "web": 4}
	for g, n := range sizes {
		for i := range n {
			r := a.call(t, "PUT", fmt.Sprintf("/v1/scopes/default/groups/%s/members/m%d", g, i), nil)
			require.Equal(t, http.StatusOK, r.status, r.raw)
		}
	}
	r := a.call(t, "GET", "/v1/scopes/default/groups", nil)
	require.Equal(t, map[string]any{"groups": []any{"api", "app", "apple", "batch", "web"}}, r.body)

	r = a.call(t, "GET", "/v1/scopes/default/groups?prefix=ap&counts=true", nil)
	require.Equal(t, map[string]any{
		"groups": []any{"api", "app", "apple"},
		"counts": map[string]any{"api": float64(2), "app": float64(1), "apple": float64(3)},
	}, r.body)
	r = a.call(t, "GET", "/v1/scopes/default/groups?prefix=zz", nil)
	require.Equal(t, map[string]any{"groups": []any{}}, r.body)

	r = a.call(t, "GET", "/v1/scopes/default/groups?limit=2&counts=true", nil)
	require.Equal(t, map[string]any{
		"groups": []any{"api", "app"}, "counts": map[string]any{"api": float64(2), "app": float64(1)},
		"total": float64(5), "next": "app",
	}, r.body)
	r = a.call(t, "GET", "/v1/scopes/default/groups?limit=2&after=app", nil)
	require.Equal(t, map[string]any{"groups": []any{"apple", "batch"}, "total": float64(5), "next": "batch"}, r.body)
	r = a.call(t, "GET", "/v1/scopes/default/groups?limit=2&after=batch", nil)
	require.Equal(t, map[string]any{"groups": []any{"web"}, "total": float64(5)}, r.body, "the last page has no next")
	r = a.call(t, "GET", "/v1/scopes/default/groups?limit=2&after=apz&prefix=ap", nil)
	require.Equal(t, map[string]any{"groups": []any{}, "total": float64(3)}, r.body, "after a name that is not a group")
	r = a.call(t, "GET", "/v1/scopes/default/groups?limit=1&after=b&prefix=a", nil)
	require.Equal(t, map[string]any{"groups": []any{}, "total": float64(3)}, r.body)

	for query, says := range map[string]string{
		"limit=0": "limit", "limit=1001": "limit", "after=app": "after needs limit", "counts=maybe": "counts",
	} {
		r := a.call(t, "GET", "/v1/scopes/default/groups?"+query, nil)
		require.Equal(t, http.StatusBadRequest, r.status, query)
		require.Equal(t, "invalid_query", r.code(), query)
		require.Contains(t, r.raw, says, query)
	}
}

// TestNodesDivergence: every peer of /v1/nodes carries its divergence per
// scope once digests have been exchanged, all zero when the nodes agree;
// the node itself carries none.
func TestNodesDivergence(t *testing.T) {
	ns := startCluster(t, 3, nil)
	a := ns[0]
	require.Equal(t, http.StatusOK, ns[1].call(t, "PUT", member+"x", nil).status)
	type div struct {
		Scope         string
		Behind, Ahead uint64
		AgeMS         int64 `json:"age_ms"`
	}
	var last string
	agree := func() bool {
		var got struct {
			Nodes []struct {
				Name       string
				Self       bool
				Divergence []div
			}
		}
		r := a.call(t, "GET", "/v1/nodes", nil)
		last = r.raw
		if json.Unmarshal([]byte(r.raw), &got) != nil || len(got.Nodes) != 3 {
			return false
		}
		for _, n := range got.Nodes {
			if n.Self {
				if n.Divergence != nil {
					return false
				}
				continue
			}
			if len(n.Divergence) != 2 || n.Divergence[0].Scope != "chat" || n.Divergence[1].Scope != "default" {
				return false
			}
			for _, d := range n.Divergence {
				if d.Behind != 0 || d.Ahead != 0 || d.AgeMS < 0 || d.AgeMS > 60_000 {
					return false
				}
			}
		}
		return true
	}
	if !assert.Eventually(t, agree, wait, 50*time.Millisecond, "every peer agrees with n0 in both scopes, n0 has no divergence") {
		t.Fatalf("last answer: %s", last)
	}
}

// TestWatchWithoutSnapshot: snapshot=false starts a stream with the
// changes, and its ids resume as any; a bad value is a 400.
func TestWatchWithoutSnapshot(t *testing.T) {
	a := startCluster(t, 1, nil)[0]
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"before", nil).status)
	w := a.watch(t, "/v1/scopes/default/watch?snapshot=false")
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"after", nil).status)
	e := w.next(t)
	require.Equal(t, "join after joined", e.summary(), "the first event is the change, not a snapshot")
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"later", nil).status)
	require.Equal(t, "join later joined", w.next(t).summary())
	rw := a.watch(t, "/v1/scopes/default/watch?snapshot=false", "Last-Event-ID: "+e.id)
	require.Equal(t, "join later joined", rw.next(t).summary(), "resumes after the given id")

	r := a.call(t, "GET", "/v1/scopes/default/watch?snapshot=nah", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, "invalid_query", r.code())
	require.Contains(t, r.raw, "snapshot")
}
