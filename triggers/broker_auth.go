package triggers

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerUser is a username devices may connect with, its password and the
// topics it may use. Publish and Subscribe are its ACL (see BrokerACL):
// empty lists allow nothing.
type BrokerUser struct {
	Username string `yaml:"username" json:"username"`
	// Password is either plain text or a hash as written by mosquitto_passwd
	// (mosquitto 2.0: "$7$<iterations>$<salt>$<hash>", PBKDF2-SHA512; or
	// mosquitto 1.6: "$6$<salt>$<hash>", salted SHA512), so the line after
	// "alice:" in a mosquitto password file can be pasted as is. A plain
	// password may not itself start with "$6$" or "$7$". Empty means the
	// user connects only with a client certificate (tls.client_ca_file)
	// whose common name is the username.
	Password  string   `yaml:"password" json:"-"`
	Publish   []string `yaml:"publish" json:"publish,omitempty"`
	Subscribe []string `yaml:"subscribe" json:"subscribe,omitempty"`
}

func (u BrokerUser) acl() BrokerACL { return BrokerACL{Publish: u.Publish, Subscribe: u.Subscribe} }

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
		p.kind = 'c' // certificate only: no password matches
	default:
		p.plain = []byte(s)
	}
	return p, nil
}

// check reports whether given matches, in constant time for a given kind.
func (p password) check(given []byte) bool {
	var got []byte
	switch p.kind {
	case 'c':
		return false
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

// brokerUser is a configured user, its password parsed.
type brokerUser struct {
	pw  password
	acl BrokerACL
}

// aclEntry is the ACL of the client that last authenticated with an id.
type aclEntry struct {
	cl  *mqttsrv.Client
	acl *clientACL
	// stopped orders the disconnects of persistent sessions (authHook.stops;
	// 0 while connected): mochi's StopTime has whole seconds only.
	stopped atomic.Uint64
}

// authHook is the embedded broker's mochi hook for connection
// authentication and topic access. It keeps each session's ACL by client
// id, from its authentication until the session ends.
type authHook struct {
	mqttsrv.HookBase
	users          map[string]brokerUser
	anonymous      BrokerACL
	allowAnonymous bool
	localFull      bool
	maxSubs        int
	maxSessions    int
	maxExpiry      uint32          // seconds
	srv            *mqttsrv.Server // for session ownership; nil in unit tests
	stats          *brokerStats

	acls  sync.Map // client id → *aclEntry
	stops atomic.Uint64
}

func (h *authHook) ID() string { return "edgefn-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqttsrv.OnConnectAuthenticate, mqttsrv.OnACLCheck, mqttsrv.OnSubscribe, mqttsrv.OnDisconnect, mqttsrv.OnClientExpired}, []byte{b})
}

// OnSubscribe refuses the filters that would take a client past
// max_subscriptions: it empties them, which mochi answers with "topic
// filter invalid" (0x80 in MQTT 3.1.1) in the SUBACK.
func (h *authHook) OnSubscribe(cl *mqttsrv.Client, pk packets.Packet) packets.Packet {
	n := cl.State.Subscriptions.Len()
	for i, f := range pk.Filters {
		if _, has := cl.State.Subscriptions.Get(f.Filter); has {
			continue
		}
		if n >= h.maxSubs {
			pk.Filters[i].Filter = ""
			h.stats.aclDenied.Add(1)
			if h.stats.aclLog.allow() {
				h.Log.Warn("mqtt subscription refused: max_subscriptions reached", "client", cl.ID, "filter", f.Filter, "max", h.maxSubs)
			}
			continue
		}
		n++
	}
	return pk
}

// OnConnectAuthenticate accepts:
//   - a client with a verified client certificate whose common name is a
//     configured user (and matches the username it sends, if any);
//   - a known user with the right password;
//   - a client without a username if it comes from a loopback address or
//     anonymous access is allowed.
//
// It then refuses a client whose will it may not publish, or that would
// take over a session of another user, and records the client's ACL.
func (h *authHook) OnConnectAuthenticate(cl *mqttsrv.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	local := isLoopback(cl.Net.Remote)
	var acl *clientACL
	why := "bad credentials"
	cn, hasCert := verifiedCommonName(cl)
	switch {
	case hasCert:
		if u, known := h.users[cn]; known && (user == "" || user == cn) {
			user = cn
			cl.Properties.Username = []byte(cn)
			acl = newClientACL(u.acl, user, cl.ID, local)
		} else {
			why = fmt.Sprintf("client certificate for %q does not name a user (or the username differs)", cn)
		}
	case user == "":
		if local || h.allowAnonymous {
			acl = newClientACL(h.anonymous, "", cl.ID, local)
			acl.full = local && h.localFull
		}
	default:
		if u, known := h.users[user]; known && u.pw.check(pk.Connect.Password) {
			acl = newClientACL(u.acl, user, cl.ID, local)
		}
	}
	if acl != nil && pk.Connect.WillFlag && !acl.canPublish(pk.Connect.WillTopic) {
		why, acl = fmt.Sprintf("will topic %q not allowed by its publish ACL", pk.Connect.WillTopic), nil
	}
	if acl != nil && h.srv != nil {
		old, ok := h.srv.Clients.Get(cl.ID)
		switch {
		case ok && old.Net.Inline:
			why, acl = "client id reserved for the agent", nil
		case ok && !bytes.Equal(old.Properties.Username, cl.Properties.Username):
			why, acl = "client id in use by another user's session", nil
		case !ok && h.srv.Clients.Len()-1 >= h.maxSessions: // the agent's inline client is one
			if !h.evictOldestSession() {
				why, acl = fmt.Sprintf("%d sessions already, the maximum is 2 × max_clients", h.maxSessions), nil
			}
		}
	}
	if acl == nil {
		h.stats.refused.Add(1)
		if h.stats.authLog.allow() {
			h.Log.Warn("mqtt connection refused", "reason", why, "client", cl.ID, "remote", cl.Net.Remote, "username", user,
				"refused_total", h.stats.refused.Load())
		}
		return false
	}
	// mochi tells an MQTT 5 client the maximum session expiry but keeps
	// the one it asked for; hold it to the maximum.
	if p := &cl.Properties.Props; p.SessionExpiryIntervalFlag && p.SessionExpiryInterval > h.maxExpiry {
		p.SessionExpiryInterval = h.maxExpiry
	}
	h.acls.Store(cl.ID, &aclEntry{cl: cl, acl: acl})
	return true
}

// evictOldestSession ends the persistent session that has been
// disconnected longest, so that sessions stay bounded without locking
// new devices out; it reports whether there was one.
func (h *authHook) evictOldestSession() bool {
	var oldest *mqttsrv.Client
	var oldestAt uint64
	for _, c := range h.srv.Clients.GetAll() {
		if c.StopTime() == 0 || c.Net.Inline {
			continue
		}
		if at := h.stoppedAt(c); oldest == nil || at < oldestAt {
			oldest, oldestAt = c, at
		}
	}
	if oldest == nil {
		return false
	}
	h.srv.UnsubscribeClient(oldest)
	oldest.ClearInflights()
	h.srv.Clients.Delete(oldest.ID)
	h.forget(oldest)
	h.stats.sessionsEvicted.Add(1)
	if h.stats.authLog.allow() {
		h.Log.Warn("mqtt persistent session ended early: too many sessions (2 × max_clients)", "client", oldest.ID,
			"evicted_total", h.stats.sessionsEvicted.Load())
	}
	return true
}

// OnACLCheck allows what the client's ACL allows: topic is a topic name
// when the client publishes or receives a message, a filter when it
// subscribes. The agent's own (inline) client may do anything.
func (h *authHook) OnACLCheck(cl *mqttsrv.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	e, ok := h.acls.Load(cl.ID)
	allowed := false
	if ok {
		if write {
			allowed = e.(*aclEntry).acl.canPublish(topic)
		} else {
			allowed = e.(*aclEntry).acl.canRead(topic)
		}
	}
	if !allowed {
		h.stats.aclDenied.Add(1)
		if h.stats.aclLog.allow() {
			h.Log.Warn("mqtt access denied", "client", cl.ID, "username", string(cl.Properties.Username), "topic", topic, "publish", write)
		}
	}
	return allowed
}

// OnDisconnect forgets the ACL of a session that ends with its connection.
// A session kept for later is stamped with its place in the order of
// disconnects, for evictOldestSession.
func (h *authHook) OnDisconnect(cl *mqttsrv.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forget(cl)
		return
	}
	if e, ok := h.acls.Load(cl.ID); ok && e.(*aclEntry).cl == cl {
		e.(*aclEntry).stopped.Store(h.stops.Add(1))
	}
}

// stoppedAt returns the disconnect stamp of cl's session; 0 (oldest) for a
// session the hook has no stamp of.
func (h *authHook) stoppedAt(cl *mqttsrv.Client) uint64 {
	if e, ok := h.acls.Load(cl.ID); ok && e.(*aclEntry).cl == cl {
		return e.(*aclEntry).stopped.Load()
	}
	return 0
}

// OnClientExpired forgets the ACL of an expired persistent session.
func (h *authHook) OnClientExpired(cl *mqttsrv.Client) { h.forget(cl) }

func (h *authHook) forget(cl *mqttsrv.Client) {
	if e, ok := h.acls.Load(cl.ID); ok && e.(*aclEntry).cl == cl {
		h.acls.CompareAndDelete(cl.ID, e)
	}
}

// verifiedCommonName returns the common name of the client certificate
// the TLS listener verified, if any.
func verifiedCommonName(cl *mqttsrv.Client) (string, bool) {
	gc, ok := cl.Net.Conn.(*guardConn)
	if !ok {
		return "", false
	}
	tc, ok := gc.Conn.(*tls.Conn)
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	return st.PeerCertificates[0].Subject.CommonName, true
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
