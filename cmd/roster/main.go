// Command roster runs a roster node (roster serve) and talks to one over
// its HTTP API (join, leave, members, groups, watch, nodes, status,
// session, wait, keyring), and prints shell completion scripts.
//
// Every flag can also be set with an environment variable ROSTER_<FLAG>
// (upper case, dashes as underscores: --http-addr is ROSTER_HTTP_ADDR);
// flags given on the command line win. Flags may come before or after the
// positional arguments.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/roster-io/roster/internal/buildinfo"
)

const usage = `roster: an eventually consistent process-group registry

Usage:
  roster serve [flags]                       run a node
  roster join [flags] GROUP ID [KEY=VALUE...]  join (or update) a member on the node
  roster leave [flags] GROUP ID              remove a member owned by the node
  roster members [flags] GROUP               list a group's members
  roster groups [flags]                      list a scope's groups
  roster watch [flags]                       stream a scope's, group's or prefix's changes
  roster nodes [flags]                       show the cluster as the node sees it
  roster status [flags]                      this node and the cluster at a glance
  roster session create|keepalive|close|list|get  manage sessions (member leases)
  roster wait --ready [--timeout 30s]        wait until the node is ready (scripts)
  roster keyring list|install|use|remove     rotate the node's gossip keys
  roster completion bash|zsh|fish            print a shell completion script
  roster version (or --version)              print the version, commit and Go version

Run "roster <command> -h" (or "roster help <command>") for the flags of a
command. Every flag can be set with ROSTER_<FLAG> in the environment (e.g.
ROSTER_ADDR, ROSTER_TOKEN). --addr takes a URL or host:port (http://
assumed, https:// with --tls-ca, --tls-cert or --tls-key).
`

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func usageErr(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "roster:", errorText(err))
	} else {
		code = 0
	}
	os.Exit(code)
}

// run dispatches a command line; it is main without the process exit.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(rest, stdout, stderr)
	case "join", "leave", "members", "groups", "watch", "nodes", "status", "session":
		return runClient(cmd, rest, stdout, stderr)
	case "wait":
		return runWait(rest, stdout, stderr)
	case "keyring":
		return runKeyring(rest, os.Stdin, stdout, stderr)
	case "completion":
		return runCompletion(rest, stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, buildinfo.Get())
		return nil
	case "help", "-h", "--help", "-help":
		if cmd == "help" && len(rest) > 0 { // roster help CMD [SUB]
			return run(append(slices.Clone(rest), "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return unknownCommand(cmd)
}

// parseArgs parses flags interspersed with positional arguments (a "--"
// ends the flags), then fills every flag not given on the command line from
// its ROSTER_<FLAG> environment variable. -h prints the command's help
// (fs.Usage) and returns flag.ErrHelp; a bad flag is one error line.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	help, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard) // the flag package's own error and usage lines
	defer func() { fs.Usage = help; fs.SetOutput(out) }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				help()
				return nil, err
			}
			return nil, flagError(fs, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, &exitError{2, err}
	}
	return pos, nil
}

// envName is the environment variable of a flag: ROSTER_HTTP_ADDR for
// http-addr.
func envName(flagName string) string {
	return "ROSTER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a FlagSet whose usage (the command's help, asked
// for with -h) names the command and goes to w, normally stdout. Given a
// *flagSink, it records the FlagSet there instead (for completion).
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		if sink, ok := w.(*flagSink); ok {
			sink.fs = fs
			return
		}
		fmt.Fprintf(w, "Usage: roster %s\n\nFlags (each also ROSTER_<FLAG>):\n", synopsis)
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	return fs
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
