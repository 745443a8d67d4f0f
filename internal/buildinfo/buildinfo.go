// Package buildinfo says which build a roster binary is: its version and
// commit, stamped at link time, or else what the Go toolchain recorded.
//
// Release builds set both with -ldflags (the Dockerfile and
// cmd/roster-image do):
//
//	go build -ldflags "-X github.com/roster-io/roster/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/roster-io/roster/internal/buildinfo.commit=$(git rev-parse HEAD)" ./cmd/roster
//
// Without them, the version is the module version of a `go install
// ...@v1.2.3` build, and the commit the VCS revision `go build` stamps in
// a checkout (-buildvcs), with "-dirty" when the tree had changes.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set at link time with -X; empty otherwise.
var version, commit string

// Unset values.
const (
	DevVersion    = "dev"
	UnknownCommit = "unknown"
)

// Info describes a build.
type Info struct {
	Version   string // e.g. v1.2.3; DevVersion when nothing says
	Commit    string // VCS revision, maybe with "-dirty"; UnknownCommit when nothing says
	GoVersion string // e.g. go1.26.8
	Platform  string // GOOS/GOARCH
}

// Get returns this binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(version, commit, bi)
}

// resolve prefers the link-time values, then the toolchain's record.
func resolve(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	info := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			var rev string
			dirty := false
			for _, kv := range bi.Settings {
				switch kv.Key {
				case "vcs.revision":
					rev = kv.Value
				case "vcs.modified":
					dirty = kv.Value == "true"
				}
			}
			if rev != "" {
				info.Commit = rev
				if dirty {
					info.Commit += "-dirty"
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = DevVersion
	}
	if info.Commit == "" {
		info.Commit = UnknownCommit
	}
	return info
}

// String is the one-line form `roster version` prints:
// "roster v1.2.3 (commit 0123456789abcdef..., go1.26.8 linux/amd64)".
func (i Info) String() string {
	return "roster " + i.Version + " (commit " + i.Commit + ", " + i.GoVersion + " " + i.Platform + ")"
}
