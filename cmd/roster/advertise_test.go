package main

import (
	"net"
	"testing"

	"github.com/hashicorp/go-sockaddr"
	"github.com/stretchr/testify/require"
)

func TestAdvertiseHTTP(t *testing.T) {
	lnAt := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 8080} }
	private, _ := sockaddr.GetPrivateIP()
	for _, tc := range []struct {
		name   string
		o      serveOptions
		ln     net.Addr
		scheme string
		want   string
	}{
		{"the listener's own host", serveOptions{gossipAddr: "127.0.0.1:7946"}, lnAt("127.0.0.1"), "http", "http://127.0.0.1:8080"},
		{"https with TLS", serveOptions{}, lnAt("10.0.0.5"), "https", "https://10.0.0.5:8080"},
		{"all interfaces: the gossip advertise host", serveOptions{advertiseAddr: "10.1.2.3:7946", gossipAddr: "0.0.0.0:7946"}, lnAt("0.0.0.0"), "http", "http://10.1.2.3:8080"},
		{"all interfaces: the gossip bind host", serveOptions{gossipAddr: "10.9.9.9:7946"}, lnAt("::"), "http", "http://10.9.9.9:8080"},
		{"IPv6 in brackets", serveOptions{advertiseAddr: "[fd00::5]:7946"}, lnAt("::"), "http", "http://[fd00::5]:8080"},
		{"given as a URL", serveOptions{advertiseHTTP: "https://roster-0.roster.svc:443/"}, lnAt("0.0.0.0"), "http", "https://roster-0.roster.svc:443"},
		{"given as host:port", serveOptions{advertiseHTTP: "10.0.0.7:9000"}, lnAt("0.0.0.0"), "https", "https://10.0.0.7:9000"},
	} {
		got, err := advertiseHTTP(tc.o, tc.ln, tc.scheme)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}

	got, err := advertiseHTTP(serveOptions{gossipAddr: "0.0.0.0:7946"}, lnAt("0.0.0.0"), "http")
	require.NoError(t, err)
	if private == "" {
		require.Empty(t, got, "nothing names a host")
	} else {
		require.Equal(t, "http://"+net.JoinHostPort(private, "8080"), got, "the private IP gossip would advertise")
	}

	for _, bad := range []string{"ftp://h:1", "http://h", "http://h:1/path", "h", "http://u@h:1"} {
		_, err := advertiseHTTP(serveOptions{advertiseHTTP: bad}, lnAt("0.0.0.0"), "http")
		var ee *exitError
		require.ErrorAs(t, err, &ee, "%q", bad)
		require.Equal(t, 2, ee.code, "%q is a usage error", bad)
		require.ErrorContains(t, err, "--advertise-http", "%q", bad)
	}
}
