package main

import (
	"bytes"
	"testing"

	"github.com/roster-io/roster/internal/buildinfo"
	"github.com/stretchr/testify/require"
)

// TestVersion: every spelling prints the build's one line: version,
// commit and Go version as buildinfo resolved them. (That -ldflags
// reaches them is checked where a binary is linked with them:
// cmd/roster-image's test.)
func TestVersion(t *testing.T) {
	want := buildinfo.Get()
	for _, arg := range []string{"version", "--version", "-version"} {
		var out, errOut bytes.Buffer
		require.NoError(t, run([]string{arg}, &out, &errOut), arg)
		require.Equal(t, want.String()+"\n", out.String(), arg)
		require.Empty(t, errOut.String())
	}
	require.Contains(t, want.String(), "roster "+want.Version+" (commit "+want.Commit+", "+want.GoVersion+" ")
}
