// Command roster-jepsen is roster's partition test suite:
//
//	go run ./jepsen/cmd/roster-jepsen test --nodes 5 --time 60 --seed 1
//	go run ./jepsen/cmd/roster-jepsen test --bin ./roster --workload join-leave --nemesis partition,kill --time 300
//	go run ./jepsen/cmd/roster-jepsen test --inproc --workload watch      # embedded nodes, no root
//	go run ./jepsen/cmd/roster-jepsen analyze jepsen/store/latest          # re-check a stored run, no root
//	go run ./jepsen/cmd/roster-jepsen list                                 # workloads, nemeses, checkers
//	go run ./jepsen/cmd/roster-jepsen cleanup                              # namespaces left by crashed runs
//
// test runs N roster serve processes (--bin, or one built from
// ./cmd/roster), each in a network namespace of its own, drives a workload
// through their HTTP API from a control namespace while the nemesis cuts
// links (iptables), pauses, kills and restarts nodes, then heals
// everything, waits for the nodes to agree and checks the history. It
// writes jepsen/store/<name>/<time>/ (history, results, summary, plots,
// timeline, node logs) and prints the verdict on its last line. Exit
// status: 0 valid, 1 invalid, 2 unknown or a harness error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks a command line that could not be understood (exit 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	code := 0
	switch args[0] {
	case "test":
		code, err = runTest(ctx, args[1:], stdout, stderr)
	case "analyze":
		code, err = runAnalyze(args[1:], stdout, stderr)
	case "list":
		err = runList(stdout)
	case "cleanup":
		err = runCleanup(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "roster-jepsen: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "roster-jepsen: %v\n", err)
		fmt.Fprintln(stdout, "UNKNOWN: harness error: "+oneLine(err.Error()))
		return 2
	}
	return code
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: roster-jepsen test|analyze|list|cleanup [flags]

  test      run a workload against a cluster under a nemesis, check it (root, or --inproc)
  analyze   re-check a stored run: roster-jepsen analyze jepsen/store/latest
  list      the workloads, nemeses and checkers
  cleanup   remove the namespaces and processes of crashed runs (root)

roster-jepsen test -h lists test's flags. Exit status: 0 valid, 1 invalid,
2 unknown or harness error; the verdict is the last line of stdout.
`)
}
