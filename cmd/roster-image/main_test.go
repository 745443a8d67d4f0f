package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/require"
)

// TestImage builds the image as `go run ./cmd/roster-image` does (the
// binary included), then reads the OCI archive back through
// go-containerregistry: it validates the image, checks its config,
// extracts its filesystem, and runs the extracted binary as the image's
// user: `roster version`, then `roster serve` answering /healthz and
// /metrics on loopback.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds roster and runs it; skipped with -short")
	}
	// The version is given; the commit is the checkout's.
	const version = "v0.0.0-imagetest"
	commit := gitCommit(t)
	out := filepath.Join(t.TempDir(), "roster.oci.tar")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-o", out, "-version", version}, &stdout, &stderr), stderr.String())
	require.Contains(t, stdout.String(), "roster:"+version+" sha256:")
	t.Log(strings.TrimSpace(stdout.String()))

	img := readArchive(t, out, "roster:"+version)
	require.NoError(t, validate.Image(img), "digests, sizes and config agree")
	mt, err := img.MediaType()
	require.NoError(t, err)
	require.Equal(t, types.OCIManifestSchema1, mt)
	m, err := img.Manifest()
	require.NoError(t, err)
	require.Equal(t, types.OCIConfigJSON, m.Config.MediaType)
	require.Len(t, m.Layers, 1)
	require.Equal(t, types.OCILayer, m.Layers[0].MediaType)

	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "linux", cf.OS)
	require.Equal(t, runtime.GOARCH, cf.Architecture)
	c := cf.Config
	require.Equal(t, "65532:65532", c.User, "a numeric non-root user (runAsNonRoot can check it)")
	require.Equal(t, []string{"/usr/local/bin/roster"}, c.Entrypoint)
	require.Equal(t, []string{"serve"}, c.Cmd)
	require.Equal(t, map[string]struct{}{"7946/tcp": {}, "7946/udp": {}, "8080/tcp": {}}, c.ExposedPorts)
	require.Equal(t, map[string]struct{}{"/data": {}}, c.Volumes)
	require.Contains(t, c.Env, "ROSTER_HTTP_ADDR=0.0.0.0:8080")
	require.Contains(t, c.Env, "ROSTER_DATA_DIR=/data")
	require.Equal(t, version, c.Labels["org.opencontainers.image.version"])
	require.Equal(t, commit, c.Labels["org.opencontainers.image.revision"])
	require.Equal(t, "Apache-2.0", c.Labels["org.opencontainers.image.licenses"])
	require.Equal(t, time.Unix(0, 0).UTC(), cf.Created.Time.UTC(), "no build time in the image")

	root := extract(t, img)
	bin := filepath.Join(root.dir, "usr/local/bin/roster")
	require.Equal(t, int64(0o755), root.hdrs["usr/local/bin/roster"].Mode&0o7777)
	require.Equal(t, 0, root.hdrs["usr/local/bin/roster"].Uid, "the binary is root's: the user cannot replace it")
	require.Equal(t, 65532, root.hdrs["data"].Uid)
	require.Equal(t, int64(0o700), root.hdrs["data"].Mode&0o7777)
	require.Equal(t, int64(0o1777), root.hdrs["tmp"].Mode&0o7777)
	passwd, err := os.ReadFile(filepath.Join(root.dir, "etc/passwd"))
	require.NoError(t, err)
	require.Contains(t, string(passwd), "roster:x:65532:65532:")
	license, err := os.ReadFile(filepath.Join(root.dir, "usr/share/doc/roster/LICENSE"))
	require.NoError(t, err)
	repoLicense, err := os.ReadFile("../../LICENSE")
	require.NoError(t, err)
	require.Equal(t, repoLicense, license)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "static: no program interpreter")
	}
	libs, _ := f.ImportedLibraries()
	require.Empty(t, libs)
	require.NoError(t, f.Close())

	// Run it as the image's user where the test may (as root), else as
	// whoever runs the test.
	cred := root.credential(t)
	cmd := exec.Command(bin, "version")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", got)
	require.Regexp(t, `^roster `+regexp.QuoteMeta(version)+` \(commit `+regexp.QuoteMeta(commit)+`, go[0-9.]+ linux/`+runtime.GOARCH+`\)\n$`, string(got))

	serve := exec.Command(bin, "serve", "--name", "image-test", "--http-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(root.dir, "data"), "--profile", "local", "--cluster", "image-test")
	serve.Env = imageEnv(c.Env)
	serve.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	stdoutPipe, err := serve.StdoutPipe()
	require.NoError(t, err)
	var serveErr bytes.Buffer
	serve.Stderr = &serveErr
	require.NoError(t, serve.Start())
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Kill()
			<-exited
		}
	}()
	base := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdoutPipe)
		for sc.Scan() {
			if m := regexp.MustCompile(`HTTP API: (http://127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(sc.Text()); m != nil {
				base <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdoutPipe)
	}()
	var url string
	select {
	case url = <-base:
	case err := <-exited:
		t.Fatalf("serve exited: %v\n%s", err, serveErr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve printed no address\n%s", serveErr.String())
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	require.Eventually(t, func() bool {
		resp, err := hc.Get(url + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Status string }
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Status == "ok"
	}, 15*time.Second, 20*time.Millisecond, "/healthz answers ok\n%s", &serveErr)
	resp, err := hc.Get(url + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `roster_build_info\{commit="`+regexp.QuoteMeta(commit)+`",goversion="go[0-9.]+",version="`+regexp.QuoteMeta(version)+`"\} 1`, string(metrics))

	require.NoError(t, serve.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "a clean exit on SIGTERM\n%s", &serveErr)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	entries, err := os.ReadDir(filepath.Join(root.dir, "data"))
	require.NoError(t, err)
	require.NotEmpty(t, entries, "the node kept its data in the image's /data")
}

// gitCommit is this checkout's commit as git tells it, "-dirty" when git
// status shows anything; "unknown" without git.
func gitCommit(t *testing.T) string {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Log("no git: the image's commit is unknown")
		return "unknown"
	}
	commit := strings.TrimSpace(string(rev))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "-dirty"
	}
	return commit
}

// imageEnv is the image's environment for a process run outside it: its
// ROSTER_ variables (the flags given still win), the host's PATH.
func imageEnv(env []string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for _, kv := range env {
		if strings.HasPrefix(kv, "ROSTER_") {
			out = append(out, kv)
		}
	}
	return out
}

// readArchive opens an OCI archive the way an OCI tool would: untar the
// layout, find the image its index names ref, and return it.
func readArchive(t *testing.T, archive, ref string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.True(t, filepath.IsLocal(h.Name), "%q stays inside the layout", h.Name)
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, data, 0o644))
		default:
			t.Fatalf("unexpected entry %q (%c)", h.Name, h.Typeflag)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	d := im.Manifests[0]
	require.Equal(t, ref, d.Annotations["org.opencontainers.image.ref.name"])
	img, err := idx.Image(d.Digest)
	require.NoError(t, err)
	return img
}

// fsRoot is an image's filesystem extracted to dir, with each entry's
// header by its name in the layer (without a trailing slash).
type fsRoot struct {
	dir  string
	hdrs map[string]*tar.Header
}

// extract unpacks img's flattened filesystem (mutate.Extract) into a
// fresh directory. As root it applies the owners of the layer, and makes
// the directory reachable to them.
func extract(t *testing.T, img v1.Image) fsRoot {
	t.Helper()
	dir, err := os.MkdirTemp("", "roster-image-root-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	asRoot := os.Geteuid() == 0
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	r := fsRoot{dir: dir, hdrs: map[string]*tar.Header{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.True(t, filepath.IsLocal(h.Name), "%q stays inside the root", h.Name)
		r.hdrs[strings.TrimSuffix(h.Name, "/")] = h
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, data, 0o600))
		default:
			t.Fatalf("unexpected entry %q (%c)", h.Name, h.Typeflag)
		}
		require.NoError(t, os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)))
		if asRoot {
			require.NoError(t, os.Lchown(p, h.Uid, h.Gid))
		}
	}
	return r
}

// modeBits maps a tar mode's setuid, setgid and sticky bits.
func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// credential is the image's user when the test runs as root (it can
// switch to it), else nil: the process runs as the test does.
func (r fsRoot) credential(t *testing.T) *syscall.Credential {
	if os.Geteuid() != 0 {
		t.Log("not root: the binary runs as the test's user, not the image's")
		return nil
	}
	return &syscall.Credential{Uid: uid, Gid: gid}
}

// TestImageReproducible: the same inputs give the same image, byte for
// byte; another version gives another image.
func TestImageReproducible(t *testing.T) {
	bin := []byte("\x7fELF not really a binary")
	a, err := buildImage(bin, []byte("license"), "amd64", "v1", "c1")
	require.NoError(t, err)
	b, err := buildImage(bin, []byte("license"), "amd64", "v1", "c1")
	require.NoError(t, err)
	c, err := buildImage(bin, []byte("license"), "amd64", "v2", "c1")
	require.NoError(t, err)
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	require.Equal(t, da, db)
	require.NotEqual(t, da, dc)
}

// TestCheckStatic: what cannot run on an empty base is refused before
// any image is written.
func TestCheckStatic(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	require.NoError(t, os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755))
	require.ErrorIs(t, checkStatic(notELF, runtime.GOARCH), ErrImage)
	require.ErrorContains(t, checkStatic(notELF, runtime.GOARCH), "not an ELF")

	self, err := os.Executable()
	require.NoError(t, err)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	require.ErrorContains(t, checkStatic(self, other), "not "+other, "a binary of another architecture")

	// A dynamically linked program of the host, when there is one.
	for _, name := range []string{"git", "tar", "ls"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if dynamic {
			require.ErrorContains(t, checkStatic(p, runtime.GOARCH), "dynamically linked", name)
			return
		}
	}
	t.Log("no dynamically linked program found on PATH: that case is not checked")
}

func TestRunRejectsArguments(t *testing.T) {
	err := run([]string{"extra"}, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrImage)
}
