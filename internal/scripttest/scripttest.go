// Package scripttest runs a package's interaction scripts (testdata/*.txt,
// github.com/cockroachdb/datadriven, rewritten with -rewrite) and reads
// their arguments: the skeleton and the argument parsing the script tests
// of gossip's pure cores share.
//
// It owns nothing but that: no script's commands or state, which stay in
// each package's test. Imported by tests only.
package scripttest

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// Handler runs one command of a script and returns its output.
type Handler func(t *testing.T, d *datadriven.TestData) string

// Run runs every testdata/*.txt script of the calling package, each with
// the handler start returns (fresh state per script).
func Run(t *testing.T, start func(t *testing.T) Handler) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if filepath.Ext(path) != ".txt" {
			t.Skip()
		}
		h := start(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return h(t, d)
		})
	})
}

// Bare returns the arguments given without a value (names, flags), in
// order.
func Bare(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			out = append(out, a.Key)
		}
	}
	return out
}

// Name returns the i-th bare argument; the test fails without one.
func Name(t *testing.T, d *datadriven.TestData, i int) string {
	b := Bare(d)
	if i >= len(b) {
		d.Fatalf(t, "%s needs %d bare arguments", d.Cmd, i+1)
	}
	return b[i]
}

// Flag reports whether name was given as a bare argument.
func Flag(d *datadriven.TestData, name string) bool {
	for _, b := range Bare(d) {
		if b == name {
			return true
		}
	}
	return false
}

// Value returns key's first value.
func Value(d *datadriven.TestData, key string) (string, bool) {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0], true
		}
	}
	return "", false
}

// Values returns all of key's values (key=(a, b)).
func Values(d *datadriven.TestData, key string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a.Vals
		}
	}
	return nil
}

// Int returns key's value, def when it is absent; one that is not an
// integer fails the test.
func Int(t *testing.T, d *datadriven.TestData, key string, def int) int {
	v, ok := Value(d, key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return n
}

// Duration returns key's value, def when it is absent; one that is not a
// duration fails the test.
func Duration(t *testing.T, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	v, ok := Value(d, key)
	if !ok {
		return def
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return x
}

// Step reads a tick's first bare argument, +DURATION.
func Step(t *testing.T, d *datadriven.TestData) time.Duration {
	x, err := time.ParseDuration(strings.TrimPrefix(Name(t, d, 0), "+"))
	if err != nil {
		d.Fatalf(t, "%s: %v", d.Cmd, err)
	}
	return x
}
