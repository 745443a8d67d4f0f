package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJoinSaysCreated: the answer to a join says whether it created the
// member or updated one the node already owned, whatever else changed.
func TestJoinSaysCreated(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	join := func(nd *node, id, body string) any {
		t.Helper()
		r := nd.call(t, "PUT", member+id, body)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		return r.body["created"]
	}
	require.Equal(t, true, join(a, "m", `{"meta":{"v":"1"}}`), "new")
	require.Equal(t, false, join(a, "m", `{"meta":{"v":"2"}}`), "new metadata")
	require.Equal(t, false, join(a, "m", `{"meta":{"v":"2"}}`), "the same metadata (a no-op)")
	require.Equal(t, true, join(b, "m", `{}`), "the same id on another owner is another member")

	sess := a.call(t, "POST", "/v1/sessions", `{"ttl":"1m"}`)
	require.Equal(t, http.StatusCreated, sess.status, sess.raw)
	require.Equal(t, false, join(a, "m", `{"session":"`+sess.body["id"].(string)+`"}`), "durable to session")

	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", member+"m", nil).status)
	require.Equal(t, true, join(a, "m", `{}`), "joined again after leaving")

	r := a.call(t, "PUT", member+"x", `{"session":"nope"}`)
	require.Equal(t, "session_not_found", r.code())
	require.Nil(t, r.body["created"], "a refused join says nothing about creating")
	require.Equal(t, true, join(a, "x", `{}`), "a refused join created nothing")
}
