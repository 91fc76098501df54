package triggers

import (
	"strings"
	"testing"
)

func TestFilterCovers(t *testing.T) {
	for _, tc := range []struct {
		p, f string
		want bool
	}{
		{"actuators/sensor1/#", "actuators/sensor1/#", true},
		{"actuators/sensor1/#", "actuators/sensor1", true},
		{"actuators/sensor1/#", "actuators/sensor1/led/+", true},
		{"actuators/sensor1/#", "actuators/#", false},
		{"actuators/sensor1/#", "actuators/+/led", false},
		{"actuators/sensor1/#", "#", false},
		{"actuators/+/led", "actuators/sensor1/led", true},
		{"actuators/+/led", "actuators/+/led", true},
		{"actuators/+/led", "actuators/#", false},
		{"actuators/+/led", "actuators/a/led/x", false},
		{"a/+", "a", false},
		{"a", "a/#", false},
		{"#", "#", true},
		{"#", "a/b", true},
		{"#", "$SYS/broker/version", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/version", true},
	} {
		if got := filterCovers(tc.p, tc.f); got != tc.want {
			t.Errorf("filterCovers(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.want)
		}
	}
}

func TestClientACL(t *testing.T) {
	a := BrokerACL{Publish: []string{"sensors/%u/#", "dev/%c/status"}, Subscribe: []string{"actuators/%u/#", "$SYS/#"}}
	remote := newClientACL(a, "sensor1", "c1", false)
	for _, tc := range []struct {
		topic      string
		write, ok  bool
		aclAllowed *clientACL
	}{
		{"sensors/sensor1/temp", true, true, remote},
		{"sensors/sensor2/temp", true, false, remote},
		{"actuators/fan/kitchen", true, false, remote},
		{"dev/c1/status", true, true, remote},
		{"$SYS/x", true, false, remote},
		{"actuators/sensor1/led", false, true, remote},
		{"$share/g/actuators/sensor1/#", false, true, remote},
		{"$share/g/#", false, false, remote},
		{"#", false, false, remote},
		{"$SYS/broker/version", false, false, remote}, // granted, but not local
		{"$SYS/broker/version", false, true, newClientACL(a, "sensor1", "c1", true)},
		{"$SYS/broker/version", false, true, &clientACL{full: true, local: true}},
		{"$SYS/broker/version", true, false, &clientACL{full: true, local: true}},
	} {
		var got bool
		if tc.write {
			got = tc.aclAllowed.canPublish(tc.topic)
		} else {
			got = tc.aclAllowed.canRead(tc.topic)
		}
		if got != tc.ok {
			t.Errorf("%+v: write=%v %q = %v, want %v", tc.aclAllowed, tc.write, tc.topic, got, tc.ok)
		}
	}
	// A username or client id that would change a pattern's structure
	// grants nothing through that pattern.
	for _, bad := range []string{"", "a/b", "+", "#"} {
		acl := newClientACL(a, bad, bad, false)
		if len(acl.pub) != 0 || len(acl.sub) != 1 || acl.sub[0] != "$SYS/#" {
			t.Errorf("user %q: pub %q sub %q, want only $SYS/#", bad, acl.pub, acl.sub)
		}
	}
}

func TestBrokerConfigValidateLimits(t *testing.T) {
	err := BrokerConfig{
		Users:          []BrokerUser{{Username: "a", Password: "p", Publish: []string{"x/#/y"}}},
		Anonymous:      BrokerACL{Subscribe: []string{"a+"}},
		MaxPacketSize:  -1,
		MaxConnectSize: 10,
		MaxClients:     -1,
		TLS:            BrokerTLS{CertFile: "c", ClientCerts: "always"},
	}.Validate()
	for _, w := range []string{"users[0].publish[0]", "anonymous.subscribe[0]", "max_packet_size", "max_connect_size", "max_clients", "set cert_file and key_file", "client_certs: \"always\"", "no tls.listen"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %q", err, w)
		}
	}
	if err := (BrokerConfig{Users: []BrokerUser{{Username: "c"}}, TLS: BrokerTLS{Listen: ":0", ClientCAFile: "ca.pem"}}).Validate(); err != nil {
		t.Errorf("certificate-only user: %v", err)
	}
}
