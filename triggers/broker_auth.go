package triggers

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerUser is a username and password devices may connect with.
type BrokerUser struct {
	Username string `yaml:"username" json:"username"`
	// Password is either plain text or a hash as written by mosquitto_passwd
	// (mosquitto 2.0: "$7$<iterations>$<salt>$<hash>", PBKDF2-SHA512; or
	// mosquitto 1.6: "$6$<salt>$<hash>", salted SHA512), so the line after
	// "alice:" in a mosquitto password file can be pasted as is. A plain
	// password may not itself start with "$6$" or "$7$".
	Password string `yaml:"password" json:"-"`
}

// password is a parsed BrokerUser.Password.
type password struct {
	plain []byte
	kind  byte // 0 plain, 6 or 7
	iter  int
	salt  []byte
	hash  []byte
}

// parsePassword parses a plain password or a mosquitto_passwd hash.
func parsePassword(s string) (password, error) {
	var p password
	switch {
	case strings.HasPrefix(s, "$7$"):
		f := strings.Split(s[3:], "$")
		if len(f) != 3 {
			return p, errors.New(`"$7$" hash: want $7$<iterations>$<salt>$<hash>`)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 1 {
			return p, fmt.Errorf(`"$7$" hash: bad iteration count %q`, f[0])
		}
		p.kind, p.iter = 7, n
		f = f[1:]
		if p.salt, err = base64.StdEncoding.DecodeString(f[0]); err != nil {
			return p, fmt.Errorf(`"$7$" hash: salt: %w`, err)
		}
		if p.hash, err = base64.StdEncoding.DecodeString(f[1]); err != nil || len(p.hash) != sha512.Size {
			return p, errors.New(`"$7$" hash: the hash is not 64 bytes of base64`)
		}
	case strings.HasPrefix(s, "$6$"):
		f := strings.Split(s[3:], "$")
		if len(f) != 2 {
			return p, errors.New(`"$6$" hash: want $6$<salt>$<hash>`)
		}
		var err error
		p.kind = 6
		if p.salt, err = base64.StdEncoding.DecodeString(f[0]); err != nil {
			return p, fmt.Errorf(`"$6$" hash: salt: %w`, err)
		}
		if p.hash, err = base64.StdEncoding.DecodeString(f[1]); err != nil || len(p.hash) != sha512.Size {
			return p, errors.New(`"$6$" hash: the hash is not 64 bytes of base64`)
		}
	case s == "":
		return p, errors.New("empty")
	default:
		p.plain = []byte(s)
	}
	return p, nil
}

// check reports whether given matches, in constant time for a given kind.
func (p password) check(given []byte) bool {
	var got []byte
	switch p.kind {
	case 0:
		return subtle.ConstantTimeCompare(p.plain, given) == 1
	case 6:
		h := sha512.New()
		h.Write(given)
		h.Write(p.salt)
		got = h.Sum(nil)
	case 7:
		var err error
		got, err = pbkdf2.Key(sha512.New, string(given), p.salt, p.iter, sha512.Size)
		if err != nil {
			return false
		}
	}
	return subtle.ConstantTimeCompare(got, p.hash) == 1
}

// authHook is the embedded broker's mochi hook for connection
// authentication and topic access.
type authHook struct {
	mqttsrv.HookBase
	users          map[string]password
	allowAnonymous bool
	refused        func()
}

func (h *authHook) ID() string { return "edgefn-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqttsrv.OnConnectAuthenticate, mqttsrv.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate accepts a known user with the right password, and
// a client without a username if anonymous access is allowed or it comes
// from a loopback address. Everything else is refused.
func (h *authHook) OnConnectAuthenticate(cl *mqttsrv.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	ok := false
	if user == "" {
		ok = h.allowAnonymous || isLoopback(cl.Net.Remote)
	} else if p, known := h.users[user]; known {
		ok = p.check(pk.Connect.Password)
	}
	if !ok {
		h.Log.Warn("mqtt connection refused: bad credentials", "client", cl.ID, "remote", cl.Net.Remote, "username", user)
		if h.refused != nil {
			h.refused()
		}
	}
	return ok
}

// OnACLCheck lets every authenticated client read and write every topic.
func (h *authHook) OnACLCheck(*mqttsrv.Client, string, bool) bool { return true }

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
