package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/roster-io/roster/registry"
)

// The transfer experiment also runs its fresh node in a process of its own,
// as a new pg node is a VM of its own. In this process the fresh node
// shares one heap with the four others (about 60 MB in all for 100k
// members), so the garbage collections its transfer sets off mark all of
// it; in its own process it starts from an empty heap instead (small,
// frequent collections and fresh pages). Both figures are printed.

// childEnv carries a freshNodeSpec to a child process of this binary.
const childEnv = "ROSTER_BENCH_FRESH_NODE"

type freshNodeSpec struct {
	Name        string `json:"name"`
	Seed        string `json:"seed"`
	Members     int    `json:"members"`
	LAN         bool   `json:"lan"`
	FanOut      int    `json:"fan_out"`
	Compression bool   `json:"compression"`
	Cluster     string `json:"cluster"`
	Watched     bool   `json:"watched"`
}

type freshNodeResult struct {
	Open    Dur    `json:"open_us"`
	Held    Dur    `json:"held_us"`
	Elapsed Dur    `json:"elapsed_us"`
	Resyncs int    `json:"resyncs"`
	Err     string `json:"error,omitempty"`
}

// runChild is the fresh node of a child process: it opens, watches the
// scope until it holds spec.Members members, prints a freshNodeResult line
// and stays in the cluster until its standard input closes. A failure is
// printed as a result with Err set.
func runChild() int {
	var spec freshNodeSpec
	err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec)
	if err == nil {
		err = freshNode(spec)
	}
	if err != nil {
		// A node that reported its result already ends without error.
		_ = json.NewEncoder(os.Stdout).Encode(freshNodeResult{Err: err.Error()})
		return 1
	}
	return 0
}

func freshNode(spec freshNodeSpec) error {
	ctx := context.Background()
	o := nodeOpts{lan: spec.LAN, fanOut: spec.FanOut, compression: spec.Compression, cluster: spec.Cluster, logger: slog.New(slog.DiscardHandler)}
	res, stop, err := openFresh(ctx, func() (*registry.Registry, error) {
		return registry.Open(ctx, nodeConfig(o, spec.Name, []string{spec.Seed}))
	}, 0, spec.Members, spec.Watched)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	// Report, then stay until the parent has counted what was sent.
	_ = json.NewEncoder(os.Stdout).Encode(res)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// openFresh opens a fresh node (the node-th of its cluster) with open and
// follows its scope until it holds members members: by polling Count
// alone, or, watched, also with a watch whose consumer counts the events
// (the node then builds and delivers an event per member as well). It
// returns the figures and stop, which closes the node.
func openFresh(ctx context.Context, open func() (*registry.Registry, error), node, members int, watched bool) (freshNodeResult, func() error, error) {
	var res freshNodeResult
	t0 := time.Now()
	r, err := open()
	if err != nil {
		return res, nil, err
	}
	res.Open = Dur(time.Since(t0))
	held := pollHeld(ctx, r, members)
	var t *tracker
	if watched {
		if t, err = newTracker(ctx, r, node); err != nil {
			_ = r.Close(ctx)
			return res, nil, err
		}
	}
	stop := func() error {
		if t != nil {
			t.close()
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return r.Close(cctx)
	}
	if t != nil {
		t.setTarget(members)
		last, err := waitReached(ctx, 60*time.Second, []*tracker{t})
		if err != nil {
			_ = stop()
			return res, nil, err
		}
		res.Elapsed = Dur(last.Sub(t0))
		_, _, res.Resyncs = t.snapshot()
	}
	select {
	case at := <-held:
		res.Held = Dur(at.Sub(t0))
	case <-time.After(60 * time.Second):
		_ = stop()
		return res, nil, fmt.Errorf("the node holds %s of %d members after a minute", countOf(r), members)
	}
	return res, stop, nil
}

// countOf describes how many members r holds, for an error.
func countOf(r *registry.Registry) string {
	n, err := r.Count(benchScope)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(n)
}

// pollHeld polls r's Count every 200 µs and sends when it first shows
// members members (the node holds them all, whether or not anybody has
// been told yet).
func pollHeld(ctx context.Context, r *registry.Registry, members int) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			if n, err := r.Count(benchScope); err == nil && n == members {
				at <- time.Now()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return at
}

// freshProcess runs the fresh node of the transfer experiment in a child
// process and returns its result once it holds every member; done stops
// it (the node leaves the cluster) and waits for it to exit.
func freshProcess(ctx context.Context, spec freshNodeSpec, logOut io.Writer) (res freshNodeResult, done func() error, err error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return res, nil, err
	}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = logOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, nil, err
	}
	if err := cmd.Start(); err != nil {
		return res, nil, fmt.Errorf("start the fresh node: %w", err)
	}
	done = func() error {
		_ = stdin.Close()
		return cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &res)
	}
	if err == nil && res.Err != "" {
		err = errors.New(res.Err)
	}
	if err != nil {
		_ = done()
		return res, nil, fmt.Errorf("fresh node process: %w", err)
	}
	return res, done, nil
}
