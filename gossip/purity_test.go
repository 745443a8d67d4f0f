package gossip

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// pureCores are the subpackages that hold the protocol's decisions as
// state machines driven by this package (see the package comment).
var pureCores = []string{"dissem", "inflight", "pace", "peers", "push", "reorder"}

// pureImports are all a core may import: data structures, formatting,
// time as a type (never read from the clock, see clockCalls), seeded
// randomness, and the CRDT (itself free of I/O and goroutines).
var pureImports = map[string]bool{
	"cmp": true, "container/heap": true, "errors": true, "fmt": true, "maps": true,
	"math": true, "math/bits": true, "math/rand/v2": true, "slices": true, "sort": true,
	"strconv": true, "strings": true, "time": true,
	"github.com/roster-io/roster/crdt": true,
}

// clockCalls read the clock or wait on it.
var clockCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

// randConstructors are the math/rand/v2 functions a core may call: making
// a source from a seed. Every other package-level function draws from the
// global, unseeded generator.
var randConstructors = map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true}

// TestProtocolCoresArePure: the protocol cores import nothing but
// pureImports (no net, os, sync, memberlist, no I/O), start no goroutine
// and hold no channel,
// never read the clock, and never draw from the global random generator:
// time, randomness and messages come in as arguments, as in etcd-io/raft's
// core. This is the check behind the package comment's claim.
func TestProtocolCoresArePure(t *testing.T) {
	for _, pkg := range pureCores {
		files, err := filepath.Glob(filepath.Join(pkg, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files, pkg)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
			require.NoError(t, err)
			names := map[string]string{} // local name -> import path
			for _, imp := range file.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				require.True(t, pureImports[path], "%s imports %s", f, path)
				name := filepath.Base(path)
				if path == "math/rand/v2" {
					name = "rand"
				}
				if imp.Name != nil {
					name = imp.Name.Name
				}
				names[name] = path
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s: a go statement at offset %d", f, n.Pos())
				case *ast.ChanType:
					t.Errorf("%s: a channel at offset %d", f, n.Pos())
				case *ast.SelectorExpr:
					x, ok := n.X.(*ast.Ident)
					if !ok {
						break
					}
					switch names[x.Name] {
					case "time":
						if clockCalls[n.Sel.Name] {
							t.Errorf("%s: time.%s reads the clock", f, n.Sel.Name)
						}
					case "math/rand/v2":
						if ast.IsExported(n.Sel.Name) && !randConstructors[n.Sel.Name] && n.Sel.Name != "Rand" {
							t.Errorf("%s: rand.%s draws from the global generator", f, n.Sel.Name)
						}
					}
				}
				return true
			})
		}
	}
}
