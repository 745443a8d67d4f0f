package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/rostertest"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/roster-io/roster/client"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/internal/jsonkeys"
	"github.com/stretchr/testify/require"
)

// TestLogKeysUnique derives loggers that repeat a key (as an embedding
// program might: the layers name their own component) and checks that
// roster serve's handler writes each key of a JSON record once, the
// innermost value winning.
func TestLogKeysUnique(t *testing.T) {
	var buf bytes.Buffer
	lg, err := newLogger("debug", "json", &buf)
	require.NoError(t, err)
	lg.With("component", "registry").With("component", "storage", "dir", "/d").Info("x", "dir", "/e", "err", "boom")
	lg.With("component", "registry").WithGroup("g").With("component", "inner").Info("y", "component", "call")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	for _, l := range lines {
		dups, err := jsonkeys.Duplicates([]byte(l))
		require.NoError(t, err)
		require.Empty(t, dups, l)
	}
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "storage", rec["component"])
	require.Equal(t, "/e", rec["dir"])
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, "registry", rec["component"], "a group's keys do not replace outer ones")
	require.Equal(t, map[string]any{"component": "call"}, rec["g"])
}

// TestServeJSONLogs runs two roster serve --log-format json at debug
// level, the second joining the first and leaving again, and decodes
// every record with a decoder that detects repeated keys: the registry,
// gossip, memberlist, storage and Pebble each name their component once
// (serve used to set component=registry on the logger they all added
// theirs to), and the first node logs the peer joining and leaving at
// info level.
func TestServeJSONLogs(t *testing.T) {
	p := newProc(t, "jl", "")
	p.extra = []string{"--log-format", "json", "--log-level", "debug"}
	p.start()
	q := newProc(t, "jl2", "", p.gossipAddr())
	q.start()
	_, err := p.c.Join(ctxT(t), "default", "g", "m", nil, "")
	require.NoError(t, err)
	eventually(t, "m replicated", func() bool { return membersOn(t, q, "g") == "m@jl" })
	require.Equal(t, 0, q.signal(syscall.SIGTERM))
	eventually(t, "jl2's leave logged", func() bool { return strings.Contains(p.out.String(), `"msg":"peer left"`) })
	require.Equal(t, 0, p.signal(syscall.SIGTERM))
	components := map[string]int{}
	var peerLines []string
	for _, line := range strings.Split(p.out.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // the startup banner on stdout
		}
		dups, err := jsonkeys.Duplicates([]byte(line))
		require.NoError(t, err, line)
		require.Empty(t, dups, "duplicate keys in %s", line)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if c, ok := rec["component"].(string); ok {
			components[c]++
		}
		if msg := rec["msg"]; msg == "peer joined" || msg == "peer left" {
			require.Equal(t, "INFO", rec["level"], line)
			require.Equal(t, "jl2", rec["peer"], line)
			peerLines = append(peerLines, msg.(string))
		}
	}
	for _, c := range []string{"registry", "gossip", "memberlist", "pebble", "http"} {
		require.Positive(t, components[c], "component %s logged: %v", c, components)
	}
	require.Equal(t, []string{"peer joined", "peer left"}, peerLines)
}

// TestServeChecksBeforeJoining starts a node whose HTTP port is taken, or
// whose TLS files are missing, with a live seed: it used to join the
// cluster first and fail after, leaving a node the seed listed and
// retried. Now it fails before joining: the seed never sees it.
func TestServeChecksBeforeJoining(t *testing.T) {
	seed := newProc(t, "seed", "")
	seed.start()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	dir := t.TempDir()
	base := []string{"serve", "--name", "ghost", "--profile", "local", "--join", seed.gossipAddr(),
		"--cluster", "e2e-" + strconv.Itoa(os.Getpid()), "--log-level", "error"}
	for name, extra := range map[string][]string{
		"http port taken":       {"--http-addr", taken.Addr().String()},
		"missing TLS":           {"--http-addr", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "no.pem"), "--tls-key", filepath.Join(dir, "no.key")},
		"client CA without TLS": {"--http-addr", "127.0.0.1:0", "--tls-client-ca", filepath.Join(dir, "ca.pem")},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(append(base[:len(base):len(base)], extra...),
				"--data-dir", filepath.Join(dir, strings.ReplaceAll(name, " ", "-")),
				"--gossip-addr", "127.0.0.1:"+strconv.Itoa(rostertest.FreePort(t)))
			var out bytes.Buffer
			err := run(args, &out, &out)
			require.Error(t, err, "serve must fail")
			for range 10 { // the seed never lists it
				ns, err := seed.c.Nodes(ctxT(t))
				require.NoError(t, err)
				require.Len(t, ns, 1, "the seed sees a ghost: %+v", ns)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestKeepAliveSurvivesRestart runs roster session keepalive --every
// while the session's node restarts: it used to exit at the first failed
// request; now it retries until the node is back and keeps the session
// alive, and exits non-zero with a clear message once the session is
// really gone.
func TestKeepAliveSurvivesRestart(t *testing.T) {
	p := newProc(t, "ka", "")
	p.start()
	ctx := ctxT(t)
	s, err := p.c.CreateSession(ctx, 15*time.Second)
	require.NoError(t, err)

	var out, errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"session", "keepalive", s.ID, "--every", "200ms", "--timeout", "1s", "--addr", p.url()}, &out, &errOut)
	}()
	eventually(t, "first keep-alive", func() bool { return strings.Contains(out.String(), s.ID+" expires") })
	require.Equal(t, 0, p.signal(syscall.SIGTERM))
	eventually(t, "a failed keep-alive is retried", func() bool { return strings.Contains(errOut.String(), "retrying") })
	select {
	case err := <-done:
		t.Fatalf("keepalive exited while the node restarted: %v", err)
	default:
	}
	n := strings.Count(out.String(), " expires ")
	p.start()
	eventually(t, "keep-alives resume after the restart", func() bool { return strings.Count(out.String(), " expires ") > n+1 })

	require.NoError(t, p.c.CloseSession(ctx, s.ID))
	select {
	case err := <-done:
		require.Error(t, err)
		require.ErrorIs(t, err, client.ErrSessionNotFound)
		require.Contains(t, err.Error(), "is gone")
	case <-time.After(wait):
		t.Fatal("keepalive did not end once the session was gone")
	}
}

// TestWaitReady: roster wait --ready fails after its timeout on a node
// that is not up, and returns once a starting node is ready (the README's
// recipe ran roster nodes while nodes were still starting).
func TestWaitReady(t *testing.T) {
	p := newProc(t, "w", "")
	var out bytes.Buffer
	err := run([]string{"wait", "--ready", "--timeout", "300ms", "--addr", p.url()}, &out, &out)
	require.Error(t, err)
	require.Contains(t, err.Error(), "not ready after 300ms")
	var ee *exitError
	require.ErrorAs(t, run([]string{"wait", "--addr", p.url()}, &out, &out), &ee, "--ready is required")
	require.Equal(t, 2, ee.code)

	done := make(chan error, 1)
	var wout syncbuf.Buffer
	go func() { done <- run([]string{"wait", "--ready", "--timeout", "20s", "--addr", p.url()}, &wout, &wout) }()
	p.start()
	select {
	case err := <-done:
		require.NoError(t, err)
		require.Contains(t, wout.String(), "is ready")
	case <-time.After(wait + 5*time.Second):
		t.Fatal("wait --ready did not return")
	}
	ok, err := p.c.Ready(ctxT(t))
	require.NoError(t, err)
	require.True(t, ok)
}

// writeKeys writes base64 keys, one per line, to a file only its owner
// can read.
func writeKeys(t *testing.T, keys ...[]byte) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	f := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o600))
	return f
}

func randKey(t *testing.T) []byte {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// TestSecretsFromFilesAndKeyRotation starts two nodes with their API
// token and gossip keys in files (nothing secret in their command lines,
// which ps shows), rotates the gossip key with roster keyring on both
// (install, use, remove), and checks that the cluster still replicates
// and that a node holding only the retired key is not let in.
func TestSecretsFromFilesAndKeyRotation(t *testing.T) {
	const token = "file-t0ken"
	tokFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokFile, []byte(token+"\n"), 0o600))
	k1, k2, k3 := randKey(t), randKey(t), randKey(t)
	n1 := newProc(t, "k1", token)
	n1.extra = []string{"--api-token-file", tokFile, "--gossip-key-file", writeKeys(t, k1, k2)}
	n1.start()
	n2 := newProc(t, "k2", token, n1.gossipAddr())
	n2.extra = []string{"--api-token-file", tokFile, "--gossip-key-file", writeKeys(t, k1)}
	n2.start()
	ps := []*proc{n1, n2}
	for _, p := range ps {
		eventually(t, p.name+" sees 2 alive", func() bool {
			ns, err := p.c.Nodes(ctxT(t))
			return err == nil && len(ns) == 2 && ns[0].State == "alive" && ns[1].State == "alive"
		})
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
		if err == nil {
			require.NotContains(t, string(cmdline), token)
			require.NotContains(t, string(cmdline), base64.StdEncoding.EncodeToString(k1))
		}
	}

	keyring := func(p *proc, stdin string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		args = append(args, "--addr", p.url(), "--token", token)
		require.NoError(t, runKeyring(args, strings.NewReader(stdin), &out, &out))
		return out.String()
	}
	fp := gossip.Fingerprint
	list := keyring(n1, "", "list")
	require.Regexp(t, fp(k1)+`\s+true`, list)
	require.Regexp(t, fp(k2)+`\s+false`, list)
	require.NotContains(t, list, base64.StdEncoding.EncodeToString(k1))

	k3File := writeKeys(t, k3)
	for _, p := range ps {
		keyring(p, base64.StdEncoding.EncodeToString(k3)+"\n", "install", "--key-file", "-")
	}
	for _, p := range ps {
		require.Regexp(t, fp(k3)+`\s+true`, keyring(p, "", "use", "--key-file", k3File))
	}
	for _, p := range ps {
		out := keyring(p, "", "remove", fp(k1))
		require.NotContains(t, out, fp(k1))
	}
	var out bytes.Buffer
	err := runKeyring([]string{"remove", fp(k3), "--addr", n1.url(), "--token", token}, strings.NewReader(""), &out, &out)
	require.ErrorContains(t, err, "primary_key")
	err = runKeyring([]string{"install", base64.StdEncoding.EncodeToString(k1), "--addr", n1.url(), "--token", token}, strings.NewReader(""), &out, &out)
	require.Error(t, err, "keys are never taken from the command line")

	_, err = n1.c.Join(ctxT(t), "default", "rot", "after", nil, "")
	require.NoError(t, err)
	eventually(t, "replicated under the new key", func() bool { return membersOn(t, n2, "rot") == "after@k1" })

	// A node that holds only the retired key k1 is not let in.
	old := newProc(t, "old", "", n1.gossipAddr())
	old.extra = []string{"--gossip-key-file", writeKeys(t, k1)}
	old.start()
	for range 20 {
		ns, err := n1.c.Nodes(ctxT(t))
		require.NoError(t, err)
		require.Len(t, ns, 2, "a node with the retired key joined: %+v", ns)
		time.Sleep(50 * time.Millisecond)
	}
}
