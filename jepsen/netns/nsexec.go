package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/var/run/netns"

// InControl runs fn on a goroutine locked to an OS thread that joined the
// control namespace, and returns fn's error. Sockets fn creates belong to
// the control namespace for their whole life, whichever goroutine uses
// them later. fn must do its work on the calling goroutine (a goroutine it
// starts runs on some other thread, in the root namespace) and must not
// resolve host names (the resolver may dial from another thread): dial IP
// addresses.
func (c *Cluster) InControl(fn func() error) error {
	return c.In(Control, fn)
}

// In runs fn like InControl, in the namespace of a node (or Control,
// Bridge).
func (c *Cluster) In(node string, fn func() error) error {
	ns, err := c.NS(node)
	if err != nil {
		return err
	}
	return inNS(ns, fn)
}

// inNS runs fn on a fresh OS thread switched into namespace ns. The
// goroutine never unlocks its thread, so the runtime ends the thread with
// it and no other goroutine ever runs in ns.
func inNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			errc <- fmt.Errorf("%w: open namespace %s: %v", ErrNode, ns, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("%w: setns %s: %v", ErrCommand, ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialContext dials addr (an IP address and port, not a host name) from
// the control namespace: the socket is created and connected on a thread
// in that namespace, then returned for use anywhere.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := c.InControl(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Transport returns an HTTP transport whose connections originate in the
// control namespace (DialContext) and that ignores proxy settings: the
// suite's HTTP clients use it to reach the nodes' URLs, which filters
// never cut.
func (c *Cluster) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           c.DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		ExpectContinueTimeout: time.Second,
	}
}
