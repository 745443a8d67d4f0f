package depcheck

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	module     = "github.com/roster-io/roster"
	memberlist = "github.com/hashicorp/memberlist"
)

// rule forbids what pkg may depend on (directly or not): each entry is a
// package, and with "/..." also every package under it.
type rule struct {
	pkg       string // relative to the module root, as go list takes it
	forbidden []string
}

var rules = []rule{
	{"./server", []string{module + "/registry", module + "/gossip/...", memberlist + "/..."}},
	{"./registry/regtype", []string{module + "/registry", module + "/gossip/...", memberlist + "/..."}},
}

// TestServerStandsAlone: go list -deps of each rule's package holds none
// of its forbidden packages; a failure names the chain of imports that
// brings one in.
func TestServerStandsAlone(t *testing.T) {
	root := moduleRoot(t)
	for _, r := range rules {
		t.Run(strings.TrimPrefix(r.pkg, "./"), func(t *testing.T) {
			g := goList(t, root, "-deps", r.pkg)
			self := module + strings.TrimPrefix(r.pkg, ".")
			require.Contains(t, g, self, "go list -deps %s does not list the package itself", r.pkg)
			for _, v := range forbiddenDeps(g, self, r.forbidden) {
				t.Errorf("%s must not depend on %s: %s", self, v[len(v)-1], strings.Join(v, " -> "))
			}
		})
	}
}

// TestMemberlistOnlyInGossip: no package outside gossip (and its
// subpackages) imports memberlist directly.
func TestMemberlistOnlyInGossip(t *testing.T) {
	g := goList(t, moduleRoot(t), "./...")
	require.Contains(t, g, module+"/gossip", "go list ./... does not list gossip")
	for _, v := range directImports(g, module+"/gossip/...", memberlist+"/...") {
		t.Errorf("%s imports %s: only package gossip may", v[0], v[1])
	}
}

// TestCheckers: the two checks above, on a made-up graph, find exactly
// the violations in it and name the shortest chain.
func TestCheckers(t *testing.T) {
	g := graph{
		"m/server":           {"m/apitype", "m/registry/regtype", "m/storage"},
		"m/registry/regtype": {"m/crdt", "m/storage"},
		"m/storage":          {"x/pebble"},
		"m/apitype":          {"m/crdt", "m/gossip/faultnet"},
		"m/gossip/faultnet":  {"m/gossip", "x/memberlist"},
		"m/gossip":           {"x/memberlist/sub"},
		"m/crdt":             nil,
		"x/pebble":           nil,
		"x/memberlist":       nil,
		"x/memberlist/sub":   nil,
		"m/registry":         {"m/gossip"},
		"m/cmd":              {"m/registry", "x/memberlist"},
	}
	require.Equal(t, [][]string{
		{"m/server", "m/apitype", "m/gossip/faultnet"},
		{"m/server", "m/apitype", "m/gossip/faultnet", "m/gossip"},
		{"m/server", "m/apitype", "m/gossip/faultnet", "x/memberlist"},
		{"m/server", "m/apitype", "m/gossip/faultnet", "m/gossip", "x/memberlist/sub"},
	}, forbiddenDeps(g, "m/server", []string{"m/registry", "m/gossip/...", "x/memberlist/..."}))
	require.Empty(t, forbiddenDeps(g, "m/registry/regtype", []string{"m/registry", "m/gossip/...", "x/memberlist/..."}))
	require.Equal(t, [][]string{{"m/cmd", "x/memberlist"}}, directImports(g, "m/gossip/...", "x/memberlist/..."))

	require.True(t, matches("m/gossip", "m/gossip/..."))
	require.True(t, matches("m/gossip/memnet", "m/gossip/..."))
	require.False(t, matches("m/gossipy", "m/gossip/..."))
	require.True(t, matches("m/registry", "m/registry"))
	require.False(t, matches("m/registry/regtype", "m/registry"))
}

// graph maps a package to the packages it imports.
type graph map[string][]string

// matches reports whether pkg is pattern, or under it when pattern ends
// in "/...".
func matches(pkg, pattern string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchesAny(pkg string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(pkg, p) })
}

// forbiddenDeps returns, for each forbidden package that root reaches in
// g, the shortest chain of imports from root to it, sorted by the length
// of the chain, then by the package.
func forbiddenDeps(g graph, root string, forbidden []string) [][]string {
	from := map[string]string{root: ""}
	queue := []string{root}
	var found [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		imps := slices.Clone(g[p])
		slices.Sort(imps)
		for _, q := range imps {
			if _, seen := from[q]; seen {
				continue
			}
			from[q] = p
			queue = append(queue, q)
			if matchesAny(q, forbidden) {
				var chain []string
				for x := q; x != ""; x = from[x] {
					chain = append(chain, x)
				}
				slices.Reverse(chain)
				found = append(found, chain)
			}
		}
	}
	slices.SortStableFunc(found, func(a, b []string) int { return len(a) - len(b) })
	return found
}

// directImports returns the pairs (package, import) of g where a package
// not matching allowed imports one matching target, sorted.
func directImports(g graph, allowed, target string) [][]string {
	var out [][]string
	for p, imps := range g {
		if matches(p, allowed) {
			continue
		}
		for _, q := range imps {
			if matches(q, target) {
				out = append(out, []string{p, q})
			}
		}
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	return out
}

// goList runs go list in root with args and the format that gives every
// listed package's imports, and returns them as a graph.
func goList(t *testing.T, root string, args ...string) graph {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH, so the packages' dependencies cannot be listed")
	}
	args = append([]string{"list", "-f", `{{.ImportPath}} {{join .Imports " "}}`}, args...)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go %s: %s", strings.Join(args, " "), stderr.String())
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, g, "go %s listed nothing", strings.Join(args, " "))
	return g
}

// moduleRoot is the directory of the go.mod above the test's working
// directory (the package's directory under go test).
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above %s", dir)
		}
		dir = parent
	}
}
