package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

// TestDashboardRoutes: behind a token, the dashboard's files are served
// without it while its data (/v1) still needs it; other methods answer a
// JSON 405 and unknown files a JSON 404.
func TestDashboardRoutes(t *testing.T) {
	a := startCluster(t, 1, func(c *server.Config) { c.Token = "s3cret" })[0]
	for _, p := range []string{"/ui", "/ui/", "/ui/app.js", "/ui/style.css"} {
		r := a.call(t, "GET", p, nil)
		require.Equal(t, http.StatusOK, r.status, p)
		require.NotContains(t, r.header.Get("Content-Type"), "json", p)
	}
	require.True(t, strings.HasPrefix(a.call(t, "GET", "/ui", nil).raw, "<!doctype html>"))
	require.Equal(t, http.StatusUnauthorized, a.call(t, "GET", "/v1/nodes", nil).status, "the data still needs the token")

	r := a.call(t, "POST", "/ui/", "x")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "method_not_allowed", r.code())
	require.Equal(t, "GET, HEAD", r.header.Get("Allow"))
	r = a.call(t, "DELETE", "/ui", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	r = a.call(t, "GET", "/ui/secrets.txt", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", r.code())
	r = a.call(t, "GET", "/ui/../v1/nodes", nil)
	require.Equal(t, http.StatusNotFound, r.status, "a path that is not canonical")
}
