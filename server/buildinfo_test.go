package server_test

import (
	"strings"
	"testing"

	"github.com/roster-io/roster/internal/buildinfo"
	"github.com/stretchr/testify/require"
)

// TestBuildInfoMetric: /metrics carries roster_build_info = 1 with the
// build's version, commit and Go version as labels, and only that series.
func TestBuildInfoMetric(t *testing.T) {
	nodes := startCluster(t, 1, nil)
	bi := buildinfo.Get()
	m := scrape(t, nodes[0].srv)
	name := `roster_build_info{commit="` + bi.Commit + `",goversion="` + bi.GoVersion + `",version="` + bi.Version + `"}`
	require.Equal(t, 1.0, m[name], "series %s", name)
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "roster_build_info") {
			n++
		}
	}
	require.Equal(t, 1, n, "one build series")
}
