package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

// issue makes a certificate (a CA when parent is nil) and its key.
func issue(t *testing.T, serial int64, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, client bool) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "roster test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	switch {
	case parent == nil:
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	case client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestTLSClientCertsAndReload: with TLSClientCAFile a client without a
// certificate from that CA is refused at the handshake; a renewed server
// certificate written over the files is served without a restart.
func TestTLSClientCertsAndReload(t *testing.T) {
	nd := startCluster(t, 1, nil)[0]
	dir := t.TempDir()
	ca, caKey, caPEM, _ := issue(t, 1, nil, nil, false)
	_, _, certA, keyA := issue(t, 100, ca, caKey, false)
	_, _, certB, keyB := issue(t, 200, ca, caKey, false)
	_, _, clientCert, clientKey := issue(t, 300, ca, caKey, true)
	otherCA, otherKey, _, _ := issue(t, 2, nil, nil, false)
	_, _, strangerCert, strangerKey := issue(t, 400, otherCA, otherKey, true)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	certFile, keyFile, caFile := write("cert.pem", certA), write("key.pem", keyA), write("ca.pem", caPEM)
	_, addr := serve(t, nd, func(c *server.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = certFile, keyFile, caFile
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	get := func(certPEM, keyPEM []byte) (*http.Response, error) {
		cfg := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err)
			cfg.Certificates = []tls.Certificate{pair}
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
		resp, err := hc.Get("https://" + addr + "/v1/nodes")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(clientCert, clientKey)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 100, resp.TLS.PeerCertificates[0].SerialNumber.Int64())
	_, err = get(nil, nil)
	require.Error(t, err, "no client certificate")
	_, err = get(strangerCert, strangerKey)
	require.Error(t, err, "a client certificate of another CA")

	// Renew: the new pair is served without a restart.
	write("cert.pem", certB)
	write("key.pem", keyB)
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, later, later))
	require.NoError(t, os.Chtimes(keyFile, later, later))
	require.Eventually(t, func() bool {
		resp, err := get(clientCert, clientKey)
		return err == nil && resp.TLS.PeerCertificates[0].SerialNumber.Int64() == 200
	}, wait, 50*time.Millisecond)
	// A broken pair keeps the last good one in use.
	write("cert.pem", []byte("garbage"))
	later = later.Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, later, later))
	time.Sleep(1100 * time.Millisecond) // past the reload check interval
	resp, err = get(clientCert, clientKey)
	require.NoError(t, err)
	require.EqualValues(t, 200, resp.TLS.PeerCertificates[0].SerialNumber.Int64())

	cfg := server.DefaultConfig()
	cfg.TLSClientCAFile = caFile
	_, err = server.New(nd.reg, cfg)
	require.ErrorIs(t, err, server.ErrConfig, "a client CA without TLS")
}
