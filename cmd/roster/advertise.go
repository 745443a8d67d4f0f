package main

import (
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/go-sockaddr"
	"github.com/roster-io/roster/registry"
)

// advertiseHTTP returns the base URL of this node's HTTP API that it
// advertises to the cluster (registry.Config.HTTPAddr): --advertise-http
// as given (a URL, or host:port taking the listener's scheme), else the
// listener's address ln with, for a listener on all interfaces, the host
// of --advertise-addr, else of --gossip-addr, else the private IP gossip
// itself would advertise. It returns "" only when none of these names a
// host; the node then advertises no address.
func advertiseHTTP(o serveOptions, ln net.Addr, scheme string) (string, error) {
	if v := strings.TrimSuffix(o.advertiseHTTP, "/"); v != "" {
		if !strings.Contains(v, "://") {
			host, port, err := net.SplitHostPort(v)
			if err != nil {
				return "", usageErr("--advertise-http %q: want a URL (http://host:port) or host:port: %v", o.advertiseHTTP, err)
			}
			v = scheme + "://" + net.JoinHostPort(host, port)
		}
		if err := registry.ValidHTTPAddr(v); err != nil {
			return "", usageErr("--advertise-http: %v", err)
		}
		return v, nil
	}
	tcp, ok := ln.(*net.TCPAddr)
	if !ok {
		return "", nil
	}
	host := ""
	if !tcp.IP.IsUnspecified() {
		host = tcp.IP.String()
	}
	for _, addr := range []string{o.advertiseAddr, o.gossipAddr} {
		if host != "" {
			break
		}
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				host = h
			}
		}
	}
	if host == "" {
		host, _ = sockaddr.GetPrivateIP()
	}
	if host == "" {
		return "", nil
	}
	u := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
	if registry.ValidHTTPAddr(u) != nil {
		return "", nil
	}
	return u, nil
}
