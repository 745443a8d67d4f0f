package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
)

// TestErrorOwners: an error answer naming the owners (not_owner,
// session_not_found, owner_unreachable) keeps them in Error.Owners, and
// the error still matches its sentinel; /v1/nodes' http_addr is read.
func TestErrorOwners(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/nodes":
			_, _ = w.Write([]byte(`{"nodes":[{"name":"n0","incarnation":1,"state":"alive","scopes":["default"],"addr":"10.0.0.1:7946","http_addr":"http://10.0.0.1:8080","self":true}]}`))
		case "/v1/sessions/s":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"error":{"code":"owner_unreachable","message":"forwarding failed","owners":[{"name":"n1","http_addr":"http://10.0.0.2:8080","state":"alive"}]}}`))
		default:
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"not_owner","message":"held by n1","owners":[{"name":"n1","http_addr":"http://10.0.0.2:8080","state":"alive"},{"name":"n2","http_addr":"","state":"dead"}]}}`))
		}
	}))
	defer ts.Close()
	c, err := client.New(ts.URL)
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	err = c.Leave(ctx, "default", "room", "x")
	require.ErrorIs(t, err, client.ErrNotOwner)
	var e *client.Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, []client.Owner{{Name: "n1", HTTPAddr: "http://10.0.0.2:8080", State: "alive"}, {Name: "n2", State: "dead"}}, e.Owners)

	_, err = c.KeepAlive(ctx, "s")
	require.ErrorIs(t, err, client.ErrOwnerUnreachable)
	require.True(t, errors.As(err, &e))
	require.Equal(t, http.StatusBadGateway, e.Status)
	require.Equal(t, "n1", e.Owners[0].Name)

	ns, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.Equal(t, "http://10.0.0.1:8080", ns[0].HTTPAddr)
}
