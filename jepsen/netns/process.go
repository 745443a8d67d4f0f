package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServeConfig says how to run a node: BIN serve --name nX --data-dir
// DIR/nX/data --gossip-addr IP:7946 --http-addr IP:8080 --join PEERS
// --profile P ARGS…, inside nX's namespace, output appended to DIR/nX.log.
type ServeConfig struct {
	// Bin is any executable that accepts roster serve's flags.
	Bin string
	// Dir holds every node's data directory and log.
	Dir string
	// Profile is --profile (lan, wan, local); empty: not passed.
	Profile string
	// Args are more flags, e.g. --gossip-key-file F or --gossip-insecure
	// (the nodes' addresses are not loopback ones).
	Args []string
	// LeaveTimeout bounds a graceful leave (SIGTERM) before SIGKILL;
	// 0: 15 s.
	LeaveTimeout time.Duration
}

// State is a process's state.
type State string

const (
	Running State = "running"
	// Paused: stopped by SIGSTOP (/proc/PID/stat says T).
	Paused State = "paused"
	// Stopped: exited, killed, or never started.
	Stopped State = "stopped"
)

// Process is a node's process: one run of the node's command at a time,
// restarted with the same name, address and data directory.
type Process struct {
	c       *Cluster
	node    string
	ns      string
	bin     string
	dataDir string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run exits
	err  error         // how the last run exited
	runs int
}

// Node is the node's name.
func (p *Process) Node() string { return p.node }

// DataDir is the node's data directory.
func (p *Process) DataDir() string { return p.dataDir }

// LogPath is the node's log file (stdout and stderr of every run).
func (p *Process) LogPath() string { return p.logPath }

// URL is the node's HTTP base URL (see Cluster.Transport).
func (p *Process) URL() string { u, _ := p.c.URL(p.node); return u }

// GossipAddr is the node's gossip host:port.
func (p *Process) GossipAddr() string { a, _ := p.c.GossipAddr(p.node); return a }

// PID is the current (or last) run's pid; 0 before the first.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Runs counts the times the process was started.
func (p *Process) Runs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs
}

// Args returns the command line the next start runs (without BIN): the
// join list names every other node the cluster has at that moment.
func (p *Process) Args() []string {
	ip, _ := p.c.IP(p.node)
	args := []string{"serve",
		"--name", p.node,
		"--data-dir", p.dataDir,
		"--gossip-addr", p.GossipAddr(),
		"--http-addr", fmt.Sprintf("%s:%d", ip, HTTPPort),
	}
	var join []string
	for _, n := range p.c.Nodes() {
		if n != p.node {
			a, _ := p.c.GossipAddr(n)
			join = append(join, a)
		}
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if pr := p.c.cfg.Serve.Profile; pr != "" {
		args = append(args, "--profile", pr)
	}
	return append(args, p.c.cfg.Serve.Args...)
}

// State says whether the process runs, is paused (SIGSTOP) or stopped.
func (p *Process) State() State {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return Stopped
	}
	select {
	case <-done:
		return Stopped
	default:
	}
	st, err := procState(cmd.Process.Pid)
	switch {
	case err != nil || st == 'Z' || st == 'X':
		return Stopped // exited, not reaped yet
	case st == 'T':
		return Paused
	}
	return Running
}

// Exited is closed when the current run exits.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		d := make(chan struct{})
		close(d)
		return d
	}
	return p.done
}

// Wait waits for the current run to exit and returns how it exited (an
// *exec.ExitError for a signal or a non-zero status).
func (p *Process) Wait() error {
	<-p.Exited()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// start starts a run; the process must be stopped.
func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%w: %s is already running", ErrProcess, p.node)
		}
	}
	if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrProcess, p.node, err)
	}
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrProcess, p.node, err)
	}
	defer logf.Close() // the child has its own copy
	args := p.Args()
	fmt.Fprintf(logf, "=== roster-jepsen: %s start %d at %s: %s %s\n", p.node, p.runs+1,
		time.Now().UTC().Format(time.RFC3339Nano), p.bin, strings.Join(args, " "))
	// ip netns exec execs BIN in place: the pid is the node's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.ns, p.bin}, args...)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = filepath.Dir(p.dataDir)
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// harness only, which then tears the run down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %v", ErrProcess, p.node, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	p.runs++
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	p.c.log.Info("process started", "node", p.node, "pid", cmd.Process.Pid, "run", p.runs)
	return nil
}

// signal sends sig to the current run; ErrProcess when it is not running.
func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%w: %s never started", ErrProcess, p.node)
	}
	select {
	case <-done:
		return fmt.Errorf("%w: %s is not running", ErrProcess, p.node)
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%w: %s: %v: %v", ErrProcess, p.node, sig, err)
	}
	return nil
}

// waitExit waits up to limit for the current run to exit.
func (p *Process) waitExit(ctx context.Context, limit time.Duration) error {
	select {
	case <-p.Exited():
		return nil
	case <-time.After(limit):
		return fmt.Errorf("%w: %s did not exit within %v", ErrProcess, p.node, limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitState polls /proc until the process is in state want.
func (p *Process) waitState(ctx context.Context, want State, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st := p.State()
		if st == want {
			return nil
		}
		if st == Stopped || time.Now().After(deadline) {
			return fmt.Errorf("%w: %s is %s, not %s", ErrProcess, p.node, st, want)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Kill kills the process (SIGKILL, paused or not) and waits for it to go.
func (p *Process) Kill(ctx context.Context) error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	return p.waitExit(ctx, 10*time.Second)
}

// kill kills the process if it runs, for teardown.
func (p *Process) kill() {
	if p.signal(syscall.SIGKILL) == nil {
		_ = p.waitExit(context.Background(), 10*time.Second)
	}
}

// Pause stops the process (SIGSTOP) and waits until /proc says so.
func (p *Process) Pause(ctx context.Context) error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return p.waitState(ctx, Paused, 5*time.Second)
}

// Resume continues a paused process (SIGCONT) and waits until /proc says
// it is no longer stopped.
func (p *Process) Resume(ctx context.Context) error {
	if err := p.signal(syscall.SIGCONT); err != nil {
		return err
	}
	return p.waitState(ctx, Running, 5*time.Second)
}

// Stop asks the process to leave gracefully (SIGTERM, and SIGCONT in case
// it is paused), waits up to the leave timeout, then kills it.
func (p *Process) Stop(ctx context.Context) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	_ = p.signal(syscall.SIGCONT)
	limit := p.c.cfg.Serve.LeaveTimeout
	if limit <= 0 {
		limit = 15 * time.Second
	}
	if err := p.waitExit(ctx, limit); err != nil {
		p.c.log.Warn("graceful stop timed out; killing", "node", p.node, "err", err)
		return p.Kill(ctx)
	}
	return nil
}

// Restart starts the stopped process again: same name, address, flags
// and data directory (wiped or not).
func (p *Process) Restart() error { return p.start() }

// Wipe removes the stopped process's data directory (amnesia: restarted,
// it is a new node with an old name).
func (p *Process) Wipe() error {
	if p.State() != Stopped {
		return fmt.Errorf("%w: %s must be stopped to wipe its data", ErrProcess, p.node)
	}
	if err := os.RemoveAll(p.dataDir); err != nil {
		return fmt.Errorf("%w: wipe %s: %v", ErrProcess, p.node, err)
	}
	return nil
}

// Process returns a node's process handle (nil before Start).
func (c *Cluster) Process(node string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[node]
}

// Start starts a node's process (the first time, or again after it
// stopped) and returns its handle.
func (c *Cluster) Start(ctx context.Context, node string) (*Process, error) {
	ns, err := c.NS(node)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	p := c.procs[node]
	if p == nil {
		s := c.cfg.Serve
		if s.Bin == "" || s.Dir == "" {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: Serve.Bin and Serve.Dir are required", ErrProcess)
		}
		bin, err := exec.LookPath(s.Bin)
		if err == nil {
			bin, err = filepath.Abs(bin)
		}
		if err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: --bin %s: %v", ErrProcess, s.Bin, err)
		}
		dir, err := filepath.Abs(s.Dir)
		if err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %v", ErrProcess, err)
		}
		p = &Process{c: c, node: node, ns: ns, bin: bin,
			dataDir: filepath.Join(dir, node, "data"),
			logPath: filepath.Join(dir, node+".log")}
		c.procs[node] = p
	}
	c.mu.Unlock()
	return p, p.start()
}

// StartAll starts every node's process.
func (c *Cluster) StartAll(ctx context.Context) error {
	for _, n := range c.Nodes() {
		if _, err := c.Start(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// proc returns a started node's handle.
func (c *Cluster) proc(node string) (*Process, error) {
	if _, err := c.NS(node); err != nil {
		return nil, err
	}
	p := c.Process(node)
	if p == nil {
		return nil, fmt.Errorf("%w: %s was never started", ErrProcess, node)
	}
	return p, nil
}

// State is a node's process state (Stopped if never started).
func (c *Cluster) State(node string) State {
	if p := c.Process(node); p != nil {
		return p.State()
	}
	return Stopped
}

// Pause pauses a node's process (SIGSTOP).
func (c *Cluster) Pause(ctx context.Context, node string) error {
	p, err := c.proc(node)
	if err != nil {
		return err
	}
	return p.Pause(ctx)
}

// Resume resumes a node's paused process (SIGCONT).
func (c *Cluster) Resume(ctx context.Context, node string) error {
	p, err := c.proc(node)
	if err != nil {
		return err
	}
	return p.Resume(ctx)
}

// Kill kills a node's process (SIGKILL).
func (c *Cluster) Kill(ctx context.Context, node string) error {
	p, err := c.proc(node)
	if err != nil {
		return err
	}
	return p.Kill(ctx)
}

// Leave stops a node's process gracefully (SIGTERM).
func (c *Cluster) Leave(ctx context.Context, node string) error {
	p, err := c.proc(node)
	if err != nil {
		return err
	}
	return p.Stop(ctx)
}

// Restart starts a node's stopped process again with its data.
func (c *Cluster) Restart(ctx context.Context, node string) error {
	_, err := c.Start(ctx, node)
	return err
}

// Wipe removes a stopped node's data directory.
func (c *Cluster) Wipe(ctx context.Context, node string) error {
	p, err := c.proc(node)
	if err != nil {
		return err
	}
	return p.Wipe()
}

// Add creates one more node (namespace, address, filter, probe listener)
// in the running cluster, starts its process joining every other node,
// and returns its name.
func (c *Cluster) Add(ctx context.Context) (string, error) {
	node, err := c.addNode(ctx)
	if err != nil {
		return "", err
	}
	if _, err := c.Start(ctx, node); err != nil {
		return node, err
	}
	c.log.Info("node added", "node", node, "nodes", slices.Clone(c.Nodes()))
	return node, nil
}
