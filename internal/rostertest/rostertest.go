// Package rostertest holds what tests that run real `roster serve`
// processes share: a build of cmd/roster made once per test binary, and
// a port free for both TCP and UDP. It owns nothing else and is meant
// for tests.
package rostertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// Binary is a build of cmd/roster, made on first use. Declare one per
// test package and call Remove from TestMain after m.Run.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds cmd/roster the first time and returns the executable's path;
// it fails t if the build failed.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "roster-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "roster")
		out, err := exec.Command("go", "build", "-o", b.path, "github.com/roster-io/roster/cmd/roster").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build ./cmd/roster: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the build, if one was made.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// FreePort returns a port free for both TCP and UDP on 127.0.0.1 (a
// node's HTTP and gossip ports may then share it).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = pc.Close()
		return port
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}
