package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip"

	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

func newKey(t *testing.T) []byte {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// TestKeyringRotation rotates a two-node cluster's gossip key over the
// API, install then use then remove on every node, and checks that the
// cluster still replicates, that answers never carry key material, and
// that the keyring cannot be read without the token nor changed on a
// server without one.
func TestKeyringRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	const token = "Authorization: Bearer s3cret"
	ns := startClusterWith(t, 2, func(c *registry.Config) {
		c.GossipKeys = [][]byte{k1}
	}, func(c *server.Config) { c.Token = "s3cret" })

	r := ns[0].call(t, "GET", "/v1/keyring", nil)
	require.Equal(t, http.StatusUnauthorized, r.status, "the keyring is behind the token")
	r = ns[0].call(t, "GET", "/v1/keyring", nil, token)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.JSONEq(t, `{"keys":[{"fingerprint":"`+gossip.Fingerprint(k1)+`","primary":true}]}`, r.raw)

	post := func(nd int, op string, body map[string]any) response {
		body["op"] = op
		return ns[nd].call(t, "POST", "/v1/keyring", body, token)
	}
	b64 := base64.StdEncoding.EncodeToString
	for nd := range ns {
		r := post(nd, "install", map[string]any{"key": b64(k2)})
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.NotContains(t, r.raw, b64(k2), "no key material in answers")
	}
	for nd := range ns {
		r := post(nd, "use", map[string]any{"fingerprint": gossip.Fingerprint(k2)})
		require.Equal(t, http.StatusOK, r.status, r.raw)
		r = post(nd, "remove", map[string]any{"fingerprint": gossip.Fingerprint(k2)})
		require.Equal(t, http.StatusConflict, r.status, r.raw)
		require.Equal(t, server.CodePrimaryKey, r.code())
	}
	for nd := range ns {
		r := post(nd, "remove", map[string]any{"key": b64(k1)})
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.JSONEq(t, `{"keys":[{"fingerprint":"`+gossip.Fingerprint(k2)+`","primary":true}]}`, r.raw)
	}
	// Gossip now runs on k2 alone, and still replicates.
	require.Equal(t, http.StatusOK, ns[0].call(t, "PUT", "/v1/scopes/default/groups/g/members/after", map[string]any{}, token).status)
	require.Eventually(t, func() bool {
		ms := ns[1].call(t, "GET", "/v1/scopes/default/groups/g/members", nil, token)
		return ms.status == http.StatusOK && len(memberIDs(t, ms)) == 1
	}, wait, 10*time.Millisecond, "replicated under the new key")

	require.Equal(t, server.CodeUnknownKey, post(0, "use", map[string]any{"fingerprint": gossip.Fingerprint(k1)}).code())
	require.Equal(t, server.CodeInvalidKey, post(0, "install", map[string]any{"key": b64([]byte("short"))}).code())
	require.Equal(t, server.CodeInvalidKey, post(0, "install", map[string]any{"key": "%%%"}).code())
	require.Equal(t, server.CodeBadJSON, post(0, "rotate", map[string]any{}).code())
}

// TestKeyringNeedsTokenAndKeyring: without an API token the keyring can be
// listed but not changed (whoever changes it can let anyone into gossip);
// a node without a keyring answers no_keyring.
func TestKeyringNeedsTokenAndKeyring(t *testing.T) {
	k := newKey(t)
	nd := startClusterWith(t, 1, func(c *registry.Config) {
		c.GossipKeys = [][]byte{k}
	}, nil)[0]
	r := nd.call(t, "POST", "/v1/keyring", map[string]any{"op": "install", "key": base64.StdEncoding.EncodeToString(newKey(t))})
	require.Equal(t, http.StatusForbidden, r.status, r.raw)
	r = nd.call(t, "GET", "/v1/keyring", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.raw, `"primary":true`)
	require.Len(t, r.body["keys"], 1, "nothing was installed")

	plain := startCluster(t, 1, nil)[0]
	r = plain.call(t, "GET", "/v1/keyring", nil)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, server.CodeNoKeyring, r.code())
}
