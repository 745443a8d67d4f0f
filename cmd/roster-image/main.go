// Command roster-image builds roster's container image without Docker and
// without an image registry: it builds cmd/roster as a static Linux
// binary, lays it out as the Dockerfile does (same user, paths,
// environment, ports and labels; its test checks the two agree) and
// writes the image as an OCI archive, a tar of an OCI image layout, with
// go-containerregistry.
//
//	go run ./cmd/roster-image                         # roster.oci.tar, tagged roster:dev
//	go run ./cmd/roster-image -version v1.2.3 -o roster-v1.2.3.oci.tar
//
// Load the archive with any OCI tool: `podman load -i roster.oci.tar`,
// `skopeo copy oci-archive:roster.oci.tar ...`, `docker load` (Docker 25
// and later), `kind load image-archive`, or containerd's
// `ctr images import`. The image holds one layer: /usr/local/bin/roster,
// /etc/passwd and /etc/group naming the user roster (65532:65532), /data
// owned by it, /tmp, and the LICENSE under /usr/share/doc/roster. Files
// and the config carry no build time, so one commit gives one image.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrImage prefixes every failure of this command.
var ErrImage = errors.New("roster-image")

// The image's layout, the same as the Dockerfile's.
const (
	binaryPath  = "/usr/local/bin/roster"
	licensePath = "/usr/share/doc/roster/LICENSE"
	dataDir     = "/data"
	uid, gid    = 65532, 65532
	user        = "65532:65532"
	// defaultVersion is the version (and tag, roster:dev) of an image
	// built without -version; the Kubernetes example runs that tag.
	defaultVersion = "dev"
	buildinfoX     = "github.com/roster-io/roster/internal/buildinfo"
	rosterPkg      = "github.com/roster-io/roster/cmd/roster"
)

var (
	entrypoint = []string{binaryPath}
	command    = []string{"serve"}
	// env makes `roster serve` listen on every interface of the container
	// and keep its data on the volume; flags given to serve still win. The
	// gossip key (ROSTER_GOSSIP_KEY or --gossip-key-file) is the
	// operator's: without one, serve refuses to gossip off loopback.
	env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"ROSTER_HTTP_ADDR=0.0.0.0:8080",
		"ROSTER_GOSSIP_ADDR=0.0.0.0:7946",
		"ROSTER_DATA_DIR=" + dataDir,
	}
	exposed = []string{"7946/tcp", "7946/udp", "8080/tcp"}
	passwd  = "root:x:0:0:root:/root:/sbin/nologin\nroster:x:65532:65532:roster:/data:/sbin/nologin\n"
	group   = "root:x:0:\nroster:x:65532:\n"
)

// labels are the image's OCI annotations-as-labels.
func labels(version, commit string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "roster",
		"org.opencontainers.image.description": "An eventually consistent process-group registry (roster serve)",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    commit,
	}
}

type options struct {
	out, tag, version, commit, bin, arch string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("roster-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "o", "roster.oci.tar", "output `file`: an OCI archive (a tar of an OCI image layout)")
	fs.StringVar(&o.tag, "tag", "", "image `reference` recorded in the archive (default roster:<version>)")
	fs.StringVar(&o.version, "version", defaultVersion, "`version` linked into the binary and labelled")
	fs.StringVar(&o.commit, "commit", "", "`commit` linked into the binary and labelled (default: the checkout's, from git, with -dirty for changes; else unknown)")
	fs.StringVar(&o.bin, "bin", "", "use this static Linux roster `binary` instead of building one")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: no arguments expected, got %q", ErrImage, fs.Args())
	}
	if o.tag == "" {
		o.tag = "roster:" + o.version
	}
	ctx := context.Background()
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if o.commit == "" {
		o.commit = checkoutCommit(ctx, root)
	}
	bin := o.bin
	if bin == "" {
		tmp, err := os.MkdirTemp("", "roster-image-")
		if err != nil {
			return fmt.Errorf("%w: %v", ErrImage, err)
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "roster")
		if err := buildBinary(ctx, root, bin, o.arch, o.version, o.commit); err != nil {
			return err
		}
	}
	if err := checkStatic(bin, o.arch); err != nil {
		return err
	}
	version, commit := o.version, o.commit
	binData, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		return fmt.Errorf("%w: the LICENSE goes into the image: %v", ErrImage, err)
	}
	img, err := buildImage(binData, license, o.arch, version, commit)
	if err != nil {
		return err
	}
	if err := writeArchive(img, o.tag, o.out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	size, _ := os.Stat(o.out)
	fmt.Fprintf(stdout, "%s: %s %s (linux/%s, version %s, commit %s, %.1f MB)\n",
		o.out, o.tag, digest, o.arch, version, commit, float64(size.Size())/1e6)
	return nil
}

// moduleRoot is the directory of roster's go.mod (the build runs there).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%w: run it inside the roster module (go env GOMOD: %q, %v)", ErrImage, gomod, err)
	}
	return filepath.Dir(gomod), nil
}

// buildBinary builds cmd/roster as a static Linux binary with the version
// and commit linked in, as the Dockerfile does.
func buildBinary(ctx context.Context, root, out, arch, version, commit string) error {
	ldflags := "-s -w -X " + buildinfoX + ".version=" + version + " -X " + buildinfoX + ".commit=" + commit
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, rosterPkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: go build: %v\n%s", ErrImage, err, msg)
	}
	return nil
}

// elfMachines maps GOARCH to the ELF machine of its binaries.
var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV, "loong64": elf.EM_LOONGARCH,
}

// checkStatic makes sure bin runs on an empty base: a Linux ELF of arch
// with no program interpreter and no shared libraries.
func checkStatic(bin, arch string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("%w: %s is not an ELF binary: %v", ErrImage, bin, err)
	}
	defer f.Close()
	if want, ok := elfMachines[arch]; ok && f.Machine != want {
		return fmt.Errorf("%w: %s is for %v, not %s", ErrImage, bin, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (it has a program interpreter): build it with CGO_ENABLED=0", ErrImage, bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("%w: %s needs shared libraries %v: build it with CGO_ENABLED=0", ErrImage, bin, libs)
	}
	return nil
}

// checkoutCommit is the commit of the checkout at root, with "-dirty"
// when git status shows changes, or "unknown" without git. (go build's
// own -buildvcs stamp is not used: it misses git worktrees.)
func checkoutCommit(ctx context.Context, root string) string {
	rev, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "-dirty"
	}
	return commit
}

// epoch is every timestamp in the image: none depends on when it was built.
var epoch = time.Unix(0, 0).UTC()

// buildImage assembles the image: one gzip layer on an empty base, an OCI
// manifest and config.
func buildImage(bin, license []byte, arch, version, commit string) (v1.Image, error) {
	layerTar, err := rootfs(bin, license)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching) // gzipped once, for the digest and the archive
	if err != nil {
		return nil, fmt.Errorf("%w: layer: %v", ErrImage, err)
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "roster-image: static roster binary, user roster, /data", Comment: "roster " + version},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	ports := map[string]struct{}{}
	for _, p := range exposed {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   slices.Clone(entrypoint),
		Cmd:          slices.Clone(command),
		Env:          slices.Clone(env),
		ExposedPorts: ports,
		Volumes:      map[string]struct{}{dataDir: {}},
		WorkingDir:   "/",
		Labels:       labels(version, commit),
		StopSignal:   "SIGTERM",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	return img, nil
}

// rootfs is the layer's tar: directories, the user files, the binary and
// the license, owned by root but for /data.
func rootfs(bin, license []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("data", 0o700, uid) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(binaryPath, "/"), 0o755, bin) },
		func() error { return dir("usr/share", 0o755, 0) },
		func() error { return dir("usr/share/doc", 0o755, 0) },
		func() error { return dir("usr/share/doc/roster", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(licensePath, "/"), 0o644, license) },
		tw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("%w: layer tar: %v", ErrImage, err)
		}
	}
	return buf.Bytes(), nil
}

// writeArchive writes img as an OCI image layout whose index names it
// tag, and tars that layout into out (written whole, then renamed).
func writeArchive(img v1.Image, tag, out string) error {
	dir, err := os.MkdirTemp("", "roster-oci-")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("%w: OCI layout: %v", ErrImage, err)
	}
	// ref.name is the OCI layout's name of an image; containerd's
	// import reads its own annotation.
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          tag,
	})); err != nil {
		return fmt.Errorf("%w: OCI layout: %v", ErrImage, err)
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	defer os.Remove(tmp)
	if err := tarDir(f, dir); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("%w: %v", ErrImage, err)
	}
	return nil
}

// tarDir writes the tree under dir to w, in lexical order, with fixed
// times and owners.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch})
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: archive: %v", ErrImage, err)
	}
	return nil
}
