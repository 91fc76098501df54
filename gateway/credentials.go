package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefn/edgefn/gateway/api"
)

// File names of the admin API credentials in the data dir.
const (
	tokenFile = "api.token"
	certFile  = "admin.crt"
	keyFile   = "admin.key"
)

// ensureToken returns the admin API token, creating a random one (mode
// 0600) at first start.
func ensureToken(dataDir string) (token, path string, err error) {
	path = filepath.Join(dataDir, tokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 16 {
			return "", path, fmt.Errorf("%s: token too short (delete the file to make a new one)", path)
		}
		return t, path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", path, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", path, err
	}
	token = "efn_" + base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", path, err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, err
	}
	return token, path, f.Close()
}

// ensureCert returns the admin API's TLS certificate, creating a
// self-signed one (ECDSA P-256, ten years) at first start, and its
// fingerprint: the SHA-256 of the DER certificate, as the CLI pins it.
func ensureCert(dataDir string, hosts []string) (tls.Certificate, string, error) {
	return ensureCertFiles(dataDir, "admin", certFile, keyFile, hosts)
}

// ensureCertFiles is ensureCert for the certificate of part (admin,
// broker) kept in the data dir as crtName and keyName.
func ensureCertFiles(dataDir, part, crtName, keyName string, hosts []string) (tls.Certificate, string, error) {
	cp, kp := filepath.Join(dataDir, crtName), filepath.Join(dataDir, keyName)
	if _, err := os.Stat(cp); errors.Is(err, fs.ErrNotExist) {
		if err := makeSelfSigned(cp, kp, hosts); err != nil {
			return tls.Certificate{}, "", fmt.Errorf("create %s TLS certificate: %w", part, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("%s TLS certificate %s: %w", part, cp, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

// Fingerprint formats the SHA-256 of a DER certificate as the CLI shows and
// pins it: "sha256:" and lower-case hex.
func Fingerprint(der []byte) string { return api.Fingerprint(der) }

func makeSelfSigned(certPath, keyPath string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "edgefn agent"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", kb, 0o600); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o600) // public, but the data dir is all private
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tokenOK compares a presented bearer token in constant time.
func tokenOK(presented, want string) bool {
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
