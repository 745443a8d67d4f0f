package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Names, ports and limits.
const (
	// Marker starts every namespace name this package creates: what
	// Leftovers and Cleanup look for.
	Marker = "rjepsen-"
	// Chain is the suite's own iptables chain in every node's filter
	// table, jumped to from INPUT.
	Chain = "ROSTER-JEPSEN"
	// Control names the control namespace (clients and nemesis) in
	// NS, Command, Exec; Bridge names the bridge's namespace.
	Control = "ctl"
	Bridge  = "br"
	// DefaultSubnet is the third octet of the run's /24 unless
	// Config.Subnet says otherwise: 10.77.77.0/24.
	DefaultSubnet = 77
	// ControlHost is the control namespace's host number in the /24.
	ControlHost = 254
	// MaxNodes is the most nodes a /24 holds besides the control
	// address.
	MaxNodes = 253
	// GossipPort and HTTPPort are the ports every node serves on, on its
	// own address.
	GossipPort = 7946
	HTTPPort   = 8080
	// ProbePort is the UDP port of the harness's probe listener in every
	// node's namespace.
	ProbePort = 7999
)

// The package's errors; each is wrapped with the details.
var (
	// ErrUnavailable: not root, or ip or iptables missing.
	ErrUnavailable = errors.New("netns: unavailable")
	// ErrSetup: the namespaces could not be built.
	ErrSetup = errors.New("netns: setup failed")
	// ErrCommand: a command (ip, iptables) failed.
	ErrCommand = errors.New("netns: command failed")
	// ErrNode: no such node (or namespace) in the run.
	ErrNode = errors.New("netns: unknown node")
	// ErrPrefix: a prefix that is not this package's (see Marker).
	ErrPrefix = errors.New("netns: bad prefix")
	// ErrProcess: a node's process is not in a state the action needs,
	// or would not start or stop.
	ErrProcess = errors.New("netns: process")
	// ErrClosed: the cluster was torn down.
	ErrClosed = errors.New("netns: cluster closed")
)

// cmdTimeout bounds one ip or iptables command.
const cmdTimeout = 30 * time.Second

// Available reports whether this process can build namespaces: it runs as
// root and finds ip, iptables, iptables-save and iptables-restore. Tests
// skip when it returns an error.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces and iptables)", ErrUnavailable)
	}
	for _, bin := range []string{"ip", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install iproute2 iptables)", ErrUnavailable, bin)
		}
	}
	return nil
}

// NewPrefix returns a fresh run prefix: Marker, this process's pid and a
// random tag, e.g. rjepsen-4242-9f3a.
func NewPrefix() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return Marker + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// Config describes a run's network.
type Config struct {
	// Nodes is the number of nodes to create, n1…nN (1 to MaxNodes;
	// the suite uses 3 to 15). Add makes more later.
	Nodes int
	// Prefix names the run's namespaces (<Prefix>-n1, -br, -ctl); empty:
	// NewPrefix(). It must start with Marker.
	Prefix string
	// Subnet is the third octet of the run's 10.77.<Subnet>.0/24 (1 to
	// 254); 0: DefaultSubnet. Runs never see each other's addresses, so
	// this is cosmetic.
	Subnet int
	// Serve says how to run a node's process (StartAll, Start, Add).
	Serve ServeConfig
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
}

// Cluster is a run's namespaces, filters, probe listeners and processes.
// Its methods are safe for concurrent use.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	prefix string
	subnet int
	probe  *prober

	mu     sync.Mutex
	nodes  []string // in order of creation: n1, n2, …
	index  map[string]int
	procs  map[string]*Process
	next   int // the next node's number
	closed bool
}

// Setup builds a run's namespaces: the bridge's, the control namespace,
// and cfg.Nodes nodes, each with its filter chain and probe listener. It
// starts no process (StartAll does). On error, whatever was built is torn
// down again.
func Setup(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes: want 1 to %d", ErrSetup, cfg.Nodes, MaxNodes)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = NewPrefix()
	}
	if !strings.HasPrefix(cfg.Prefix, Marker) || strings.ContainsAny(cfg.Prefix, "/ \t\n") {
		return nil, fmt.Errorf("%w: %q: must start with %q", ErrPrefix, cfg.Prefix, Marker)
	}
	if cfg.Subnet == 0 {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.Subnet < 1 || cfg.Subnet > 254 {
		return nil, fmt.Errorf("%w: subnet %d: want 1 to 254", ErrSetup, cfg.Subnet)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{
		cfg:    cfg,
		log:    log.With("component", "netns", "prefix", cfg.Prefix),
		prefix: cfg.Prefix,
		subnet: cfg.Subnet,
		index:  map[string]int{},
		procs:  map[string]*Process{},
		next:   1,
	}
	c.probe = newProber(c)
	if err := c.build(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = c.close(cctx)
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	c.log.Info("namespaces ready", "nodes", cfg.Nodes, "subnet", c.Subnet())
	return c, nil
}

func (c *Cluster) build(ctx context.Context) error {
	br := c.prefix + "-" + Bridge
	if _, err := runIP(ctx, nil, "netns", "add", br); err != nil {
		return err
	}
	if _, err := runIP(ctx, strings.NewReader("link set lo up\nlink add br0 type bridge\nlink set br0 up\n"),
		"-n", br, "-batch", "-"); err != nil {
		return err
	}
	if err := c.addNS(ctx, Control, ControlHost, "vctl"); err != nil {
		return err
	}
	for i := 1; i <= c.cfg.Nodes; i++ {
		if _, err := c.addNode(ctx); err != nil {
			return err
		}
	}
	return nil
}

// addNS creates namespace <prefix>-<name> with eth0 at host number host,
// cabled to the bridge's port.
func (c *Cluster) addNS(ctx context.Context, name string, host int, port string) error {
	ns := c.prefix + "-" + name
	if _, err := runIP(ctx, nil, "netns", "add", ns); err != nil {
		return err
	}
	br := c.prefix + "-" + Bridge
	in := fmt.Sprintf("link add %s type veth peer name eth0 netns %s\nlink set %s master br0 up\n", port, ns, port)
	if _, err := runIP(ctx, strings.NewReader(in), "-n", br, "-batch", "-"); err != nil {
		return err
	}
	in = fmt.Sprintf("link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n", c.addr(host))
	if _, err := runIP(ctx, strings.NewReader(in), "-n", ns, "-batch", "-"); err != nil {
		return err
	}
	noIPv6(ns)
	return nil
}

// noIPv6 turns IPv6 off inside namespace ns (its own sysctls: /proc/sys/net
// is the opener's namespace's), so that the nodes speak IPv4 only, which
// the filters cover. A kernel without IPv6 has nothing to turn off.
func noIPv6(ns string) {
	_ = inNS(ns, func() error {
		for _, dev := range []string{"all", "default", "eth0"} {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0o644)
		}
		return nil
	})
}

// addNode creates the next node's namespace, filter chain and probe
// listener, and returns its name.
func (c *Cluster) addNode(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	if c.next > MaxNodes {
		c.mu.Unlock()
		return "", fmt.Errorf("%w: more than %d nodes", ErrSetup, MaxNodes)
	}
	i := c.next
	c.next++
	c.mu.Unlock()

	node := "n" + strconv.Itoa(i)
	if err := c.addNS(ctx, node, i, "v"+strconv.Itoa(i)); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, node)
	c.index[node] = i
	c.mu.Unlock()
	if err := c.initFilter(ctx, node); err != nil {
		return "", err
	}
	if err := c.probe.listen(node); err != nil {
		return "", err
	}
	return node, nil
}

// Prefix is the run's name prefix.
func (c *Cluster) Prefix() string { return c.prefix }

// Subnet is the run's /24.
func (c *Cluster) Subnet() netip.Prefix {
	return netip.PrefixFrom(c.addr(0), 24)
}

func (c *Cluster) addr(host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(c.subnet), byte(host)})
}

// Nodes returns the nodes' names in order of creation (n1, n2, …).
func (c *Cluster) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// NS returns the namespace of a node, of Control or of Bridge.
func (c *Cluster) NS(name string) (string, error) {
	if name == Control || name == Bridge {
		return c.prefix + "-" + name, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[name]; !ok {
		return "", fmt.Errorf("%w: %q", ErrNode, name)
	}
	return c.prefix + "-" + name, nil
}

// IP returns a node's address, or the control namespace's for Control.
func (c *Cluster) IP(name string) (netip.Addr, error) {
	if name == Control {
		return c.addr(ControlHost), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[name]
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrNode, name)
	}
	return c.addr(i), nil
}

// ControlIP is the control namespace's address, which no filter drops.
func (c *Cluster) ControlIP() netip.Addr { return c.addr(ControlHost) }

// GossipAddr is a node's gossip host:port.
func (c *Cluster) GossipAddr(node string) (string, error) {
	ip, err := c.IP(node)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(ip, GossipPort).String(), nil
}

// URL is a node's HTTP base URL, http://IP:8080, reachable from the
// control namespace (Transport).
func (c *Cluster) URL(node string) (string, error) {
	ip, err := c.IP(node)
	if err != nil {
		return "", err
	}
	return "http://" + netip.AddrPortFrom(ip, HTTPPort).String(), nil
}

// Command returns a command running name with args inside the namespace
// of a node (or Control, Bridge). It is not started.
func (c *Cluster) Command(ctx context.Context, node, name string, args ...string) (*exec.Cmd, error) {
	ns, err := c.NS(node)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...), nil
}

// Exec runs name with args inside a node's namespace (or Control,
// Bridge) and returns its combined output.
func (c *Cluster) Exec(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	ns, err := c.NS(node)
	if err != nil {
		return nil, err
	}
	return run(ctx, nil, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Close tears the run down: it kills every node's process (SIGKILL) and
// everything else still running in the run's namespaces, closes the probe
// listeners and deletes the namespaces. It may be called more than once.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.close(ctx)
}

func (c *Cluster) close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	procs := make([]*Process, 0, len(c.procs))
	for _, p := range c.procs {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	c.probe.close()
	err := Cleanup(ctx, c.prefix, c.log)
	if err == nil {
		c.log.Info("namespaces removed")
	}
	return err
}

func runIP(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	return run(ctx, stdin, "ip", args...)
}

// run runs a command to completion and returns its combined output; a
// failure wraps ErrCommand with the command line and its output.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, name, strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}
