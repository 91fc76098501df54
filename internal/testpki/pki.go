package testpki

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
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI holds the paths of the generated PEM files.
type PKI struct {
	CAFile                string
	ServerCert, ServerKey string // for 127.0.0.1 and localhost
	ClientCert, ClientKey string // CN "edgefn-test-client"
	// Other* is a server pair signed by a different CA, for "unknown
	// authority" tests.
	OtherCert, OtherKey string

	dir   string
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// New generates the CA and certificates into t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{CAFile: filepath.Join(dir, "ca.pem"), dir: dir}
	ca, caKey := authority(t, "edgefn test CA")
	p.ca, p.caKey = ca, caKey
	write(t, p.CAFile, "CERTIFICATE", ca.Raw)
	p.ServerCert, p.ServerKey = leaf(t, dir, "server", ca, caKey, true)
	p.ClientCert, p.ClientKey = leaf(t, dir, "client", ca, caKey, false)
	other, otherKey := authority(t, "some other CA")
	p.OtherCert, p.OtherKey = leaf(t, dir, "other", other, otherKey, true)
	return p
}

// ClientFor issues a client certificate signed by the CA with common name
// cn and returns its certificate and key files.
func (p *PKI) ClientFor(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	return leafCN(t, p.dir, "client-"+cn, cn, p.ca, p.caKey, false)
}

// ServerTLS returns a server config with the server certificate; with
// clientAuth it requires a client certificate signed by the CA.
func (p *PKI) ServerTLS(t testing.TB, clientAuth bool) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(p.CAFile)
		if err != nil {
			t.Fatalf("testpki: %v", err)
		}
		pool.AppendCertsFromPEM(b)
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

func authority(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tpl := template(t, cn)
	tpl.IsCA, tpl.BasicConstraintsValid = true, true
	tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testpki: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return cert, key
}

func leaf(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) (certFile, keyFile string) {
	t.Helper()
	return leafCN(t, dir, name, "edgefn-test-"+name, ca, caKey, server)
}

func leafCN(t testing.TB, dir, name, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tpl := template(t, cn)
	tpl.KeyUsage = x509.KeyUsageDigitalSignature
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tpl.DNSNames = []string{"localhost"}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testpki: create %s certificate: %v", name, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	write(t, certFile, "CERTIFICATE", der)
	write(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

// template is a certificate for cn valid from an hour ago for a day.
func template(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return n
}

func write(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testpki: %v", err)
	}
}
