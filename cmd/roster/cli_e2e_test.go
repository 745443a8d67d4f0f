package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/rostertest"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
)

// hostPort is p's HTTP API address without a scheme, as --addr takes it.
func (p *proc) hostPort() string { return "127.0.0.1:" + strconv.Itoa(p.httpPort) }

// TestStatus: roster status shows the node (name, incarnation, scopes,
// health) and the cluster (nodes by state, members and groups per scope),
// in text and JSON, and follows a node's death.
func TestStatus(t *testing.T) {
	n1 := newProc(t, "s1", "")
	n1.start()
	n2 := newProc(t, "s2", "", n1.gossipAddr())
	n2.start()
	ctx := ctxT(t)
	eventually(t, "both alive and ready", func() bool {
		ns, err := n1.c.Nodes(ctx)
		ok, _ := n1.c.Ready(ctx)
		return err == nil && len(ns) == 2 && ns[0].State == "alive" && ns[1].State == "alive" && ok
	})
	for _, id := range []string{"a", "b", "c"} {
		_, err := n1.c.Join(ctx, "default", "room", id, nil, "")
		require.NoError(t, err)
	}
	_, err := n2.c.Join(ctx, "default", "lobby", "d", nil, "")
	require.NoError(t, err)
	_, err = n1.c.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	eventually(t, "n2's member on n1", func() bool { return membersOn(t, n1, "lobby") == "d@s2" })

	stdout, stderr, code := cli(t, "status", "--addr", n1.hostPort())
	require.Equal(t, 0, code, stderr)
	self, err := n1.c.Nodes(ctx)
	require.NoError(t, err)
	for _, re := range []string{
		`(?m)^node +s1 \(incarnation ` + strconv.FormatUint(self[0].Incarnation, 10) + `\)$`,
		`(?m)^api +http://` + regexp.QuoteMeta(n1.hostPort()) + `$`,
		`(?m)^gossip +` + regexp.QuoteMeta(n1.gossipAddr()) + `$`,
		`(?m)^health +ok, ready$`,
		`(?m)^cluster +2 nodes: 2 alive$`,
		`(?m)^sessions +1 on this node$`,
		`(?m)^SCOPE +NODES +MEMBERS +GROUPS$`,
		`(?m)^chat +2 +0 +0$`,
		`(?m)^default +2 +4 +2$`,
	} {
		require.Regexp(t, re, stdout)
	}

	stdout, stderr, code = cli(t, "status", "--json", "--addr", n1.url())
	require.Equal(t, 0, code, stderr)
	var st struct {
		Node struct {
			Name   string   `json:"name"`
			Scopes []string `json:"scopes"`
			Self   bool     `json:"self"`
		} `json:"node"`
		Healthy, Ready bool
		Nodes          map[string]int `json:"nodes"`
		Scopes         []struct {
			Scope           string
			Nodes           int
			Members, Groups *int
		} `json:"scopes"`
		Sessions *int `json:"sessions"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &st), stdout)
	require.Equal(t, "s1", st.Node.Name)
	require.True(t, st.Node.Self)
	require.Equal(t, []string{"chat", "default"}, st.Node.Scopes)
	require.True(t, st.Healthy)
	require.True(t, st.Ready)
	require.Equal(t, map[string]int{"alive": 2}, st.Nodes)
	require.Len(t, st.Scopes, 2)
	require.Equal(t, "default", st.Scopes[1].Scope)
	require.Equal(t, 4, *st.Scopes[1].Members)
	require.Equal(t, 2, *st.Scopes[1].Groups)
	require.Equal(t, 1, *st.Sessions)

	n2.signal(syscall.SIGKILL)
	eventually(t, "status shows s2 dead", func() bool {
		stdout, _, code := cli(t, "status", "--addr", n1.hostPort())
		return code == 0 && regexp.MustCompile(`(?m)^cluster +2 nodes: 1 alive, 1 dead$`).MatchString(stdout) &&
			regexp.MustCompile(`(?m)^default +1 +3 +1$`).MatchString(stdout)
	})

	n1.signal(syscall.SIGTERM)
	_, stderr, code = cli(t, "status", "--addr", n1.hostPort(), "--timeout", "2s")
	require.Equal(t, 1, code, "a node that cannot be asked fails the command")
	require.Contains(t, stderr, "connection refused")
}

// TestJoinSaysUpdated: roster join says "joined" for a new member and
// "updated" for one the node already owned; --json says created.
func TestJoinSaysUpdated(t *testing.T) {
	p := newProc(t, "j", "")
	p.start()
	stdout, stderr, code := cli(t, "join", "room", "conn-1", "addr=10.0.0.5:4000", "--addr", p.hostPort())
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "joined room/conn-1 on j (durable) addr=10.0.0.5:4000\n", stdout)
	stdout, _, code = cli(t, "join", "room", "conn-1", "addr=10.0.0.6:4000", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	require.Equal(t, "updated room/conn-1 on j (durable) addr=10.0.0.6:4000\n", stdout)
	stdout, _, code = cli(t, "join", "room", "conn-1", "addr=10.0.0.6:4000", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	require.Equal(t, "updated room/conn-1 on j (durable) addr=10.0.0.6:4000\n", stdout, "the same metadata again")

	var answer map[string]any
	stdout, _, _ = cli(t, "join", "room", "conn-1", "--json", "--addr", p.hostPort())
	require.NoError(t, json.Unmarshal([]byte(stdout), &answer), stdout)
	require.Equal(t, false, answer["created"])
	stdout, _, _ = cli(t, "join", "room", "conn-2", "--json", "--addr", p.hostPort())
	require.NoError(t, json.Unmarshal([]byte(stdout), &answer), stdout)
	require.Equal(t, true, answer["created"])
	require.Equal(t, "conn-2", answer["id"])

	_, _, code = cli(t, "leave", "room", "conn-1", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	stdout, _, _ = cli(t, "join", "room", "conn-1", "--addr", p.hostPort())
	require.Equal(t, "joined room/conn-1 on j (durable)\n", stdout, "joined again once left")
}

// TestSessionListGet: roster session list shows the node's sessions by
// fingerprint (never their ids); roster session get shows one.
func TestSessionListGet(t *testing.T) {
	p := newProc(t, "sl", "")
	p.start()
	stdout, _, code := cli(t, "session", "list", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	require.Equal(t, "FINGERPRINT  TTL  EXPIRES\n", stdout)

	var ids []string
	for _, ttl := range []string{"15s", "1m0s"} {
		stdout, stderr, code := cli(t, "session", "create", "--ttl", ttl, "--addr", p.hostPort())
		require.Equal(t, 0, code, stderr)
		ids = append(ids, strings.TrimSpace(stdout))
	}
	s0, err := p.c.GetSession(ctxT(t), ids[0])
	require.NoError(t, err)
	s1, err := p.c.GetSession(ctxT(t), ids[1])
	require.NoError(t, err)

	stdout, _, code = cli(t, "session", "list", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 3, stdout)
	require.Regexp(t, `^`+s0.Fingerprint+` +15s +\S+$`, lines[1+boolInt(s0.Fingerprint > s1.Fingerprint)])
	require.Regexp(t, `^`+s1.Fingerprint+` +1m0s +\S+$`, lines[1+boolInt(s1.Fingerprint > s0.Fingerprint)])
	for _, id := range ids {
		require.NotContains(t, stdout, id, "a session's id is its credential")
	}
	stdout, _, _ = cli(t, "session", "list", "--json", "--addr", p.hostPort())
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &list))
	require.Len(t, list.Sessions, 2)
	require.NotContains(t, list.Sessions[0], "id")

	stdout, _, code = cli(t, "session", "get", ids[1], "--addr", p.hostPort())
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^id +`+ids[1]+`$`, stdout)
	require.Regexp(t, `(?m)^fingerprint +`+s1.Fingerprint+`$`, stdout)
	require.Regexp(t, `(?m)^ttl +1m0s$`, stdout)
	require.Regexp(t, `(?m)^expires +\S+ \(in [0-9ms]+\)$`, stdout)
	stdout, _, _ = cli(t, "session", "get", ids[0], "--json", "--addr", p.hostPort())
	var one map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &one))
	require.Equal(t, ids[0], one["id"])
	require.Equal(t, "15s", one["ttl"])

	_, stderr, code := cli(t, "session", "get", "no-such-session", "--addr", p.hostPort())
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "session_not_found")
	_, stderr, code = cli(t, "session", "get", "--addr", p.hostPort())
	require.Equal(t, 2, code)
	require.Equal(t, "roster: usage: roster session get [flags] ID\n", stderr)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOutputEscapesControlCharacters: metadata and names that hold
// control or invisible characters (a terminal escape, a newline that
// would forge a line, a right-to-left override) are printed quoted and
// escaped by every command that shows them, never raw.
func TestOutputEscapesControlCharacters(t *testing.T) {
	p := newProc(t, "esc", "")
	p.start()
	ctx := ctxT(t)
	const id = "evil\u202etxt.exe"
	meta := map[string]string{"note": "\x1b[31mred\nforged 0 owner"}
	_, err := p.c.Join(ctx, "default", "g\u200b", id, meta, "")
	require.NoError(t, err)
	wantMember := `"evil\u202etxt.exe"`
	wantMeta := `note="\x1b[31mred\nforged 0 owner"`

	raw := func(out string) {
		t.Helper()
		require.NotContains(t, out, "\x1b")
		require.NotContains(t, out, "\u202e")
		require.NotContains(t, out, "\u200b")
	}
	stdout, _, code := cli(t, "members", "g\u200b", "--addr", p.hostPort())
	require.Equal(t, 0, code)
	raw(stdout)
	require.Equal(t, 2, strings.Count(stdout, "\n"), "a header and one member:\n%s", stdout)
	require.Contains(t, stdout, wantMember)
	require.Contains(t, stdout, wantMeta)

	stdout, _, _ = cli(t, "groups", "--addr", p.hostPort())
	raw(stdout)
	require.Equal(t, `"g\u200b"`+"\n", stdout)

	stdout, _, _ = cli(t, "join", "g\u200b", id, "note=\x1b[31mred\nforged 0 owner", "--addr", p.hostPort())
	raw(stdout)
	require.Equal(t, `updated "g\u200b"/`+wantMember+" on esc (durable) "+wantMeta+"\n", stdout)

	// The snapshot of a watch, then an update event.
	w := startCLI(t, "watch", "--addr", p.hostPort())
	eventually(t, "snapshot", func() bool { return strings.Contains(w.stdout.String(), "snapshot: 1 members") })
	_, err = p.c.Join(ctx, "default", "g\u200b", id, map[string]string{"note": "\x07bell"}, "")
	require.NoError(t, err)
	eventually(t, "update", func() bool {
		return strings.Contains(w.stdout.String(), ` update "g\u200b"/`+wantMember+`@esc (updated) note="\abell"`)
	})
	w.stop(t)
	raw(w.stdout.String())
	require.NotContains(t, w.stdout.String(), "\a")
	require.Equal(t, 3, strings.Count(w.stdout.String(), "\n"), w.stdout.String())

	// An error line carries what the node said, escaped, on one line.
	_, stderr, code := cli(t, "leave", "g\u200b", "x\u202e", "--addr", p.hostPort())
	require.Equal(t, 1, code)
	raw(stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
}

// cliProc is a roster client command running in the background.
type cliProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncbuf.Buffer
	exited         chan struct{}
}

func startCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	c := &cliProc{cmd: exec.Command(binary(t), args...), stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	c.cmd.Env = cleanEnv()
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	require.NoError(t, c.cmd.Start())
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// stop interrupts the command and checks that it exits 0.
func (c *cliProc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-c.exited:
	case <-time.After(wait):
		t.Fatal("the command did not exit on SIGINT")
	}
	require.Equal(t, 0, c.cmd.ProcessState.ExitCode(), "stderr: %s", c.stderr)
}

// TestWatchSaysWhenDisconnected: roster watch, its node stopped and
// restarted under it, says on stderr that it is disconnected and
// reconnecting, then that it is back, resuming after the last event it
// printed (Last-Event-ID: the restarted node, another run, answers with a
// resync rather than a new snapshot), and goes on printing events.
func TestWatchSaysWhenDisconnected(t *testing.T) {
	p := newProc(t, "wr", "")
	p.start()
	ctx := ctxT(t)
	w := startCLI(t, "watch", "--group", "room", "--addr", p.hostPort())
	eventually(t, "snapshot", func() bool { return strings.Contains(w.stdout.String(), "snapshot: 0 members") })
	_, err := p.c.Join(ctx, "default", "room", "before", nil, "")
	require.NoError(t, err)
	eventually(t, "join before", func() bool { return strings.Contains(w.stdout.String(), " join room/before@wr (joined)") })
	lastID := strings.Fields(strings.Split(strings.TrimSpace(w.stdout.String()), "\n")[1])[0]
	require.Empty(t, w.stderr.String())

	require.Equal(t, 0, p.signal(syscall.SIGTERM))
	eventually(t, "says disconnected", func() bool {
		return regexp.MustCompile(`(?m)^roster: watch disconnected \(.+\); reconnecting$`).MatchString(w.stderr.String())
	})
	time.Sleep(300 * time.Millisecond) // a few failed reconnections
	require.Equal(t, 1, strings.Count(w.stderr.String(), "\n"), "one line per disconnection:\n%s", w.stderr)
	select {
	case <-w.exited:
		t.Fatalf("watch exited while its node was down: %s", w.stderr)
	default:
	}

	p.start()
	eventually(t, "says reconnected", func() bool {
		return strings.Contains(w.stderr.String(), "roster: watch reconnected, resuming after event "+lastID+"\n")
	})
	eventually(t, "resync from the new run", func() bool { return strings.Contains(w.stdout.String(), " resync: 1 members") })
	_, err = p.c.Join(ctx, "default", "room", "after", nil, "")
	require.NoError(t, err)
	eventually(t, "join after", func() bool { return strings.Contains(w.stdout.String(), " join room/after@wr (joined)") })
	require.Equal(t, 1, strings.Count(w.stdout.String(), "snapshot"), "no second snapshot:\n%s", w.stdout)
	w.stop(t)
	require.Equal(t, 2, strings.Count(w.stderr.String(), "\n"), w.stderr.String())
}

// TestTLSWithoutScheme: against a node serving HTTPS, --addr host:port
// with --tls-ca is reached over https://; without a TLS flag it is plain
// HTTP, which the node refuses.
func TestTLSWithoutScheme(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, caPEM, _ := testCert(t, 1, nil, nil)
	_, _, certPEM, keyPEM := testCert(t, 2, caCert, caKey)
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{ca: caPEM, cert: certPEM, key: keyPEM} {
		require.NoError(t, os.WriteFile(f, b, 0o600))
	}
	p := newProc(t, "tls", "")
	p.extra = []string{"--tls-cert", cert, "--tls-key", key}
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := client.New("https://"+p.hostPort(), client.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(hc.CloseIdleConnections)
	p.c = c
	p.start()

	stdout, stderr, code := cli(t, "wait", "--ready", "--addr", p.hostPort(), "--tls-ca", ca)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "https://"+p.hostPort()+" is ready\n", stdout)
	stdout, stderr, code = cli(t, "status", "--addr", p.hostPort(), "--tls-ca", ca)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^api +https://`+regexp.QuoteMeta(p.hostPort())+`$`, stdout)
	_, stderr, code = cli(t, "nodes", "--addr", p.hostPort(), "--timeout", "2s")
	require.Equal(t, 1, code, "plain HTTP to an HTTPS node")
	require.Contains(t, stderr, `"http://`+p.hostPort()+`/v1/nodes"`)
	_, stderr, code = cli(t, "keyring", "list", "--addr", p.hostPort(), "--tls-ca", filepath.Join(dir, "none.pem"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--tls-ca")
}

// testCert makes a certificate for 127.0.0.1 signed by parent (a CA when
// parent is nil) and returns it, its key and both in PEM.
func testCert(t *testing.T, serial int64, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "roster cli test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestREADMERecipeRuns runs the README's 3-node recipe as written, with
// free ports, this test's binary and a cluster name of its own: roster
// wait --ready returns for each node, and roster nodes and roster status
// then show the three alive.
func TestREADMERecipeRuns(t *testing.T) {
	recipe := readmeRecipe(t)
	var lines []string
	for _, l := range strings.Split(recipe, "\n") {
		if !strings.HasPrefix(l, "go build") {
			lines = append(lines, l)
		}
	}
	script := strings.Join(lines, "\n")
	ports := map[string]string{}
	portRE := regexp.MustCompile(`\b(7946|7947|7948|8081|8082|8083)\b`)
	for _, m := range portRE.FindAllString(script, -1) {
		if ports[m] == "" {
			ports[m] = strconv.Itoa(rostertest.FreePort(t))
		}
	}
	script = portRE.ReplaceAllStringFunc(script, func(m string) string { return ports[m] })
	script = strings.ReplaceAll(script, "./roster serve", "./roster serve --log-level warn --cluster readme-"+strconv.Itoa(os.Getpid()))
	// The nodes the recipe starts in the background are stopped when it
	// ends.
	script = regexp.MustCompile(`(?m) &$`).ReplaceAllLiteralString(script, " &\npids=\"$pids $!\"")
	script = "set -e\npids=\ntrap 'kill $pids 2>/dev/null; wait' EXIT\n" + script
	dir := t.TempDir()
	require.NoError(t, os.Symlink(binary(t), filepath.Join(dir, "roster")))
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var buf syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the shell and its nodes
		<-done
		t.Fatalf("the recipe did not finish:\n%s", buf.String())
	}
	out := buf.String()
	require.NoError(t, err, "%s", out)
	text := string(out)
	for _, p := range []string{ports["8081"], ports["8082"], ports["8083"]} {
		require.Contains(t, text, "http://127.0.0.1:"+p+" is ready\n")
	}
	for _, n := range []string{"n1 ", "n2 ", "n3 (self) "} {
		require.Regexp(t, `(?m)^`+regexp.QuoteMeta(n)+` *alive `, text)
	}
	require.Regexp(t, `(?m)^node +n3 \(incarnation \d+\)$`, text)
	require.Regexp(t, `(?m)^health +ok, ready$`, text)
	require.Regexp(t, `(?m)^cluster +3 nodes: 3 alive$`, text)
	require.Regexp(t, `(?m)^default +3 +0 +0$`, text)
}
