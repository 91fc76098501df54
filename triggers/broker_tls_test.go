package triggers

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/testpki"
)

// mosqTLS runs mosquitto_pub against the broker's TLS listener with the
// test CA and args; it returns mosquitto_pub's error and output.
func mosqTLS(t *testing.T, b *Broker, pki *testpki.PKI, args ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(b.TLSAddr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	base := []string{"-h", host, "-p", port, "--cafile", pki.CAFile, "-q", "1", "-V", "mqttv311"}
	out, err := exec.CommandContext(ctx, "mosquitto_pub", append(base, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestBrokerTLSListener: the TLS listener takes password users and, with a
// client CA, certificate users named by the certificate's common name
// under their ACL; certificates of strangers or other CAs are refused.
func TestBrokerTLSListener(t *testing.T) {
	pki := testpki.New(t)
	users := append([]BrokerUser{{Username: "certonly", Publish: []string{"sensors/%u/#"}}}, deviceUsers...)
	sink := newRecSink(nil)
	b := startBroker(t, BrokerConfig{Users: users, TLS: BrokerTLS{Listen: "127.0.0.1:0", CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}}, sink)
	subscribe(t, b, []Subscription{{"#", 1}})
	s1Cert, s1Key := pki.ClientFor(t, "sensor1")
	strangerCert, strangerKey := pki.ClientFor(t, "stranger")
	coCert, coKey := pki.ClientFor(t, "certonly")
	for _, tc := range []struct {
		name  string
		args  []string
		topic string // delivered to the sink if ok
		ok    bool
	}{
		{"password over TLS", []string{"-u", "sensor1", "-P", "change-me"}, "sensors/sensor1/pw", true},
		{"wrong password over TLS", []string{"-u", "sensor1", "-P", "nope"}, "sensors/sensor1/nope", false},
		{"client certificate, no username", []string{"--cert", s1Cert, "--key", s1Key}, "sensors/sensor1/cert", true},
		{"client certificate, same username", []string{"--cert", s1Cert, "--key", s1Key, "-u", "sensor1"}, "sensors/sensor1/cert2", true},
		{"client certificate, other username", []string{"--cert", s1Cert, "--key", s1Key, "-u", "sensor2", "-P", "pw2"}, "sensors/sensor2/x", false},
		{"certificate of no user", []string{"--cert", strangerCert, "--key", strangerKey}, "sensors/stranger/x", false},
		{"certificate from another CA", []string{"--cert", pki.OtherCert, "--key", pki.OtherKey}, "sensors/x/other", false},
		{"certificate-only user with a certificate", []string{"--cert", coCert, "--key", coKey}, "sensors/certonly/x", true},
		{"certificate-only user with an empty password", []string{"-u", "certonly", "-P", ""}, "sensors/certonly/y", false},
	} {
		out, err := mosqTLS(t, b, pki, append(tc.args, "-t", tc.topic, "-m", tc.name)...)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v %s, want ok=%v", tc.name, err, out, tc.ok)
		}
	}
	// The certificate user's ACL applies: publish refused (QoS 1 → disconnected).
	_, _ = mosqTLS(t, b, pki, "--cert", s1Cert, "--key", s1Key, "-t", "actuators/fan/kitchen", "-m", "x")
	mosqPub(t, b.Addr(), "end", "plain listener still open", 1)
	got := map[string]bool{}
	for _, ev := range sink.until(t, "end") {
		got[ev.Subject] = true
	}
	for _, want := range []string{"sensors/sensor1/pw", "sensors/sensor1/cert", "sensors/sensor1/cert2", "sensors/certonly/x"} {
		if !got[want] {
			t.Errorf("sink did not get %s (got %v)", want, keys(got))
		}
	}
	for _, not := range []string{"sensors/sensor2/x", "sensors/stranger/x", "sensors/x/other", "actuators/fan/kitchen", "sensors/certonly/y"} {
		if got[not] {
			t.Errorf("sink got %s from a refused client", not)
		}
	}
}

// TestBrokerTLSRequireClientCert: with client_certs: require, a TLS client
// without a certificate fails the handshake even with a good password.
func TestBrokerTLSRequireClientCert(t *testing.T) {
	pki := testpki.New(t)
	b := startBroker(t, BrokerConfig{Users: deviceUsers, TLS: BrokerTLS{Listen: "127.0.0.1:0", CertFile: pki.ServerCert, KeyFile: pki.ServerKey,
		ClientCAFile: pki.CAFile, ClientCerts: "require"}}, newRecSink(nil))
	if out, err := mosqTLS(t, b, pki, "-u", "sensor1", "-P", "change-me", "-t", "sensors/sensor1/x", "-m", "x"); err == nil {
		t.Errorf("password without certificate accepted: %s", out)
	}
	cert, key := pki.ClientFor(t, "sensor1")
	if out, err := mosqTLS(t, b, pki, "--cert", cert, "--key", key, "-t", "sensors/sensor1/x", "-m", "x"); err != nil {
		t.Errorf("with certificate: %v %s", err, out)
	}
}
