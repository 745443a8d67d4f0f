package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	stage int // index of the FROM it belongs to
	op    string
	args  string
}

// parseDockerfile splits a Dockerfile into instructions, dropping
// comments and blank lines; stage counts FROM lines from 0 (-1 before
// the first).
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []instruction
	stage := -1
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		op, args, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			stage++
		}
		out = append(out, instruction{stage: stage, op: op, args: strings.TrimSpace(args)})
	}
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return out
}

// keyValues parses KEY=VALUE pairs (values optionally double-quoted, no
// spaces inside unquoted ones) as ENV and LABEL take them.
func keyValues(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		require.True(t, ok, "KEY=VALUE in %q", s)
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			require.GreaterOrEqual(t, end, 0, "closing quote in %q", rest)
			v, s = rest[1:1+end], rest[2+end:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out[k] = v
	}
	return out
}

// TestDockerfile: the Dockerfile builds what roster-image builds (which
// TestImage runs): a static binary linked with the version and commit
// through buildinfo's symbols, on an empty base, as the same non-root
// user, with the same paths, environment, ports, volume, labels,
// entrypoint and command, in two stages, on go.mod's Go version.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "../../Dockerfile")
	var froms, runs []instruction
	final := map[string][]string{}
	args := map[string]bool{}
	for _, in := range ins {
		switch {
		case in.op == "FROM":
			froms = append(froms, in)
		case in.op == "RUN" && in.stage == 0:
			runs = append(runs, in)
		case in.op == "ARG" && in.stage == -1:
			args[in.args] = true
		}
		if in.stage == len(froms)-1 && in.stage > 0 && in.op != "FROM" {
			final[in.op] = append(final[in.op], in.args)
		}
	}
	require.Len(t, froms, 2, "multi-stage: a build stage and the image")
	require.Equal(t, "golang:${GO_VERSION} AS build", froms[0].args)
	require.Equal(t, "scratch", froms[1].args, "an empty base: nothing but what is copied in")

	gomod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	var goVersion string
	for _, line := range strings.Split(string(gomod), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			goVersion = strings.TrimSpace(v)
		}
	}
	// go.mod states the minimum (go 1.26); the image builds with a
	// release of that line (1.26.8).
	built := ""
	for a := range args {
		if v, ok := strings.CutPrefix(a, "GO_VERSION="); ok {
			built = v
		}
	}
	require.True(t, built == goVersion || strings.HasPrefix(built, goVersion+"."), "the build stage's Go %q is a release of go.mod's %s", built, goVersion)

	build := runs[len(runs)-2].args
	require.Contains(t, build, "CGO_ENABLED=0", "a static binary")
	require.Contains(t, build, "GOOS=linux")
	require.Contains(t, build, "-trimpath")
	require.Contains(t, build, "-X "+buildinfoX+".version=${VERSION}")
	require.Contains(t, build, "-X "+buildinfoX+".commit=${COMMIT}")
	require.Contains(t, build, "-o /out"+binaryPath+" ./cmd/roster")
	layout := runs[len(runs)-1].args
	require.Contains(t, layout, "printf '"+strings.ReplaceAll(passwd, "\n", `\n`)+"' > /out/etc/passwd")
	require.Contains(t, layout, "printf '"+strings.ReplaceAll(group, "\n", `\n`)+"' > /out/etc/group")
	require.Contains(t, layout, "cp LICENSE /out"+licensePath)
	require.Contains(t, layout, "chmod 1777 /out/tmp")
	require.Contains(t, layout, "chmod 0700 /out"+dataDir)
	require.Contains(t, final["COPY"], "--from=build --chown="+user+" /out"+dataDir+"/ "+dataDir+"/", "the data directory is the user's")

	require.Equal(t, []string{user}, final["USER"])
	require.NotEqual(t, "0", strings.Split(user, ":")[0])
	require.Len(t, final["ENV"], 1)
	gotEnv := keyValues(t, final["ENV"][0])
	wantEnv := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		wantEnv[k] = v
	}
	require.Equal(t, wantEnv, gotEnv)
	require.Equal(t, []string{strings.Join(exposed, " ")}, final["EXPOSE"])
	require.Equal(t, []string{dataDir}, final["VOLUME"])
	require.Len(t, final["LABEL"], 1)
	require.Equal(t, labels("${VERSION}", "${COMMIT}"), keyValues(t, final["LABEL"][0]))
	require.ElementsMatch(t, []string{"VERSION=dev", "COMMIT=unknown"}, final["ARG"], "the labels' build args, defaulted")
	var ep, cmd []string
	require.NoError(t, json.Unmarshal([]byte(final["ENTRYPOINT"][0]), &ep))
	require.NoError(t, json.Unmarshal([]byte(final["CMD"][0]), &cmd))
	require.Equal(t, entrypoint, ep)
	require.Equal(t, command, cmd)
	require.Equal(t, []string{"SIGTERM"}, final["STOPSIGNAL"])
	for op := range final {
		require.Contains(t, []string{"ARG", "COPY", "USER", "ENV", "EXPOSE", "VOLUME", "LABEL", "STOPSIGNAL", "ENTRYPOINT", "CMD"}, op,
			"%s in the image stage: roster-image does not do that", op)
	}

	ignore, err := os.ReadFile("../../.dockerignore")
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(ignore), "\n"), ".git", "the VCS directory stays out of the context (the build passes -buildvcs=false)")
}
