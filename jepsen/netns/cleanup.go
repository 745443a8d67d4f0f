package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Leftover is a run prefix whose namespaces exist.
type Leftover struct {
	Prefix string
	// PID is the harness that made it, from the prefix.
	PID int
	// Alive: a process with that pid exists (the run may be going on,
	// or the pid was reused); Cleanup it only if it is yours.
	Alive bool
	// Namespaces are its namespaces' names.
	Namespaces []string
}

// namespaces lists the names ip netns knows.
func namespaces(ctx context.Context) ([]string, error) {
	out, err := runIP(ctx, nil, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// splitName returns the run prefix of a namespace name made by this
// package (Marker<pid>-<tag>-<x>), and its pid.
func splitName(name string) (prefix string, pid int, ok bool) {
	rest, found := strings.CutPrefix(name, Marker)
	if !found {
		return "", 0, false
	}
	f := strings.SplitN(rest, "-", 3)
	if len(f) != 3 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return "", 0, false
	}
	return Marker + f[0] + "-" + f[1], pid, true
}

// Leftovers lists every run prefix with namespaces present, by Marker:
// runs going on, and runs that crashed or were killed before Close.
func Leftovers(ctx context.Context) ([]Leftover, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	names, err := namespaces(ctx)
	if err != nil {
		return nil, err
	}
	by := map[string]*Leftover{}
	var out []Leftover
	for _, n := range names {
		prefix, pid, ok := splitName(n)
		if !ok {
			continue
		}
		l := by[prefix]
		if l == nil {
			_, err := os.Stat("/proc/" + strconv.Itoa(pid))
			l = &Leftover{Prefix: prefix, PID: pid, Alive: err == nil}
			by[prefix] = l
		}
		l.Namespaces = append(l.Namespaces, n)
	}
	for _, l := range by {
		slices.Sort(l.Namespaces)
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Leftover) int { return strings.Compare(a.Prefix, b.Prefix) })
	return out, nil
}

// Cleanup removes what a run of prefix left: it kills (SIGKILL) every
// process inside its namespaces, paused ones included, waits for them to
// go, and deletes the namespaces (their veths and filters go with them).
// It never touches a namespace whose name does not start with prefix+"-",
// and prefix must start with Marker. Nothing left is not an error.
func Cleanup(ctx context.Context, prefix string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !strings.HasPrefix(prefix, Marker) || len(prefix) <= len(Marker) {
		return fmt.Errorf("%w: %q: must start with %q", ErrPrefix, prefix, Marker)
	}
	if err := Available(); err != nil {
		return err
	}
	names, err := namespaces(ctx)
	if err != nil {
		return err
	}
	var mine []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			mine = append(mine, n)
		}
	}
	var pids []int
	for _, ns := range mine {
		out, err := runIP(ctx, nil, "netns", "pids", ns)
		if err != nil {
			log.Warn("cleanup: cannot list processes", "ns", ns, "err", err)
			continue
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() && pid > 1 {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		log.Info("cleanup: killing", "pid", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := waitGone(ctx, pids, 10*time.Second); err != nil {
		log.Warn("cleanup: processes linger", "err", err)
	}
	var errs []error
	for _, ns := range mine {
		if _, err := runIP(ctx, nil, "netns", "del", ns); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Debug("cleanup: deleted", "ns", ns)
	}
	return errors.Join(errs...)
}

// CleanupStale removes the leftovers of every run whose harness is gone
// (with all, also of runs whose harness seems alive, except this
// process's own) and returns the prefixes it removed: roster-jepsen
// cleanup.
func CleanupStale(ctx context.Context, all bool, log *slog.Logger) ([]string, error) {
	left, err := Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, l := range left {
		if l.Alive && (!all || l.PID == os.Getpid()) {
			continue
		}
		if err := Cleanup(ctx, l.Prefix, log); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, l.Prefix)
	}
	return done, errors.Join(errs...)
}

// waitGone waits until none of pids exists (or is a zombie of ours).
func waitGone(ctx context.Context, pids []int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: pids %v still alive", ErrProcess, left)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := procState(pid)
	return err == nil && st != 'Z' && st != 'X'
}

// procState returns the state letter of /proc/PID/stat (R, S, D, T, Z…).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) S …: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("%w: /proc/%d/stat: %q", ErrProcess, pid, b)
	}
	return b[i+2], nil
}
