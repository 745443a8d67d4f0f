package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/roster-io/roster", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	devel := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/roster-io/roster", Version: "(devel)"}}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name             string
		ldVersion, ldRev string
		bi               *debug.BuildInfo
		want             Info
	}{
		{"link-time values win", "v2.0.0", "feedface", stamped, Info{"v2.0.0", "feedface", "go1.99.1", platform}},
		{"toolchain record", "", "", stamped, Info{"v1.4.0", "0123456789abcdef0123456789abcdef01234567-dirty", "go1.99.1", platform}},
		{"version only at link time", "v2.0.0", "", stamped, Info{"v2.0.0", "0123456789abcdef0123456789abcdef01234567-dirty", "go1.99.1", platform}},
		{"a checkout build without VCS stamp", "", "", devel, Info{DevVersion, UnknownCommit, "go1.99.1", platform}},
		{"no build info", "", "", nil, Info{DevVersion, UnknownCommit, runtime.Version(), platform}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, resolve(tc.ldVersion, tc.ldRev, tc.bi))
		})
	}
}

func TestCleanRevisionHasNoDirtySuffix(t *testing.T) {
	bi := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}
	require.Equal(t, "abc", resolve("", "", bi).Commit)
}

func TestString(t *testing.T) {
	i := Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	require.Equal(t, "roster v1.2.3 (commit abc, go1.26.8 linux/amd64)", i.String())
}
