package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// node is one roster serve process.
type node struct {
	name       string
	gossip     string // host:port
	http       string // http://host:port
	cmd        *exec.Cmd
	log        bytes.Buffer
	done       chan struct{}
	exitStatus error
}

// buildRoster builds ./cmd/roster (from the module root) into dir.
func buildRoster(dir string) (string, error) {
	bin := filepath.Join(dir, "roster")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/roster")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/roster: %v\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory holding go.mod, upwards from here.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func startNode(bin, dir, name string, seeds ...string) (*node, error) {
	gp, err := freePort()
	if err != nil {
		return nil, err
	}
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &node{name: name, gossip: fmt.Sprintf("127.0.0.1:%d", gp), http: fmt.Sprintf("http://127.0.0.1:%d", hp), done: make(chan struct{})}
	args := []string{"serve", "--name", name, "--data-dir", filepath.Join(dir, name),
		"--gossip-addr", n.gossip, "--http-addr", strings.TrimPrefix(n.http, "http://"), "--profile", "local", "--log-level", "warn"}
	for _, s := range seeds {
		args = append(args, "--join", s)
	}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { n.exitStatus = n.cmd.Wait(); close(n.done) }()
	return n, nil
}

func (n *node) stop() {
	if n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *node) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// memory returns the process's resident set and its peak, in bytes.
func (n *node) memory() (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak, sc.Err()
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func (n *node) do(method, path string, body any, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.http+path, r)
	if err != nil {
		return 0, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (n *node) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !n.alive() {
			return fmt.Errorf("%s exited: %v\n%s", n.name, n.exitStatus, n.log.String())
		}
		if code, err := n.do("GET", "/readyz", nil, nil); err == nil && code == 200 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v", n.name, d)
}

type nodeInfo struct {
	Name        string          `json:"name"`
	Incarnation json.RawMessage `json:"incarnation"` // a number, or a string
	State       string          `json:"state"`
}

func (i nodeInfo) incarnation() uint64 {
	s := strings.Trim(string(i.Incarnation), `"`)
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

func (n *node) nodes() ([]nodeInfo, error) {
	var out struct {
		Nodes []nodeInfo `json:"nodes"`
	}
	code, err := n.do("GET", "/v1/nodes", nil, &out)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /v1/nodes: %d", code)
	}
	return out.Nodes, err
}

type member struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}

func (n *node) members(group string) ([]member, error) {
	var out struct {
		Members []member `json:"members"`
	}
	code, err := n.do("GET", "/v1/scopes/default/groups/"+group+"/members", nil, &out)
	if err == nil && code != 200 && code != 404 {
		err = fmt.Errorf("GET members of %s: %d", group, code)
	}
	return out.Members, err
}
