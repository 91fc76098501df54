package activation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// Header is the first line of a version 1 statement. It separates the
// domain: no other message edgefn signs starts with it, so a signature
// over a statement means nothing anywhere else, and a later format gets a
// new header.
const Header = "edgefn-activation-v1"

// Action is what a statement authorizes.
type Action string

// The actions of version 1.
const (
	Deploy   Action = "deploy"
	Rollback Action = "rollback"
)

// Statement authorizes one activation. Its canonical bytes (Marshal) are
// what is signed:
//
//	edgefn-activation-v1
//	action: deploy
//	function: temp-alert
//	manifest-sha256: <64 lower-case hex digits>
//	module-sha256: <64 lower-case hex digits>
//	sequence: <decimal, 1 to 2^63-1, no leading zero>
//
// each line ending in "\n", in this order, nothing else: Parse accepts
// exactly the bytes Marshal produces.
type Statement struct {
	Action   Action
	Function string
	Manifest [sha256.Size]byte // SHA-256 of the manifest file's bytes
	Module   [sha256.Size]byte // SHA-256 of the module's bytes
	Sequence uint64
}

// New makes a statement for the given manifest and module bytes.
func New(action Action, function string, manifest, module []byte, sequence uint64) Statement {
	return Statement{Action: action, Function: function, Manifest: sha256.Sum256(manifest), Module: sha256.Sum256(module), Sequence: sequence}
}

// Names reports whether the statement names exactly this manifest and
// module.
func (s Statement) Names(manifest, module []byte) bool {
	return s.Manifest == sha256.Sum256(manifest) && s.Module == sha256.Sum256(module)
}

// Marshal returns the canonical bytes.
func (s Statement) Marshal() []byte {
	return fmt.Appendf(nil, "%s\naction: %s\nfunction: %s\nmanifest-sha256: %x\nmodule-sha256: %x\nsequence: %d\n",
		Header, s.Action, s.Function, s.Manifest, s.Module, s.Sequence)
}

func (s Statement) String() string {
	return fmt.Sprintf("%s %s (manifest %x, module %x) sequence %d", s.Action, s.Function, s.Manifest[:6], s.Module[:6], s.Sequence)
}

// The same rule as edgefn.ValidName; this package imports nothing of ours.
var functionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// MaxSequence is the highest sequence number (it fits an int64).
const MaxSequence = 1<<63 - 1

// ErrMalformed says the bytes are not a canonical version 1 statement.
var ErrMalformed = errors.New("not a canonical edgefn-activation-v1 statement")

// Parse reads canonical statement bytes. Anything else — another header,
// a missing, extra or reordered line, upper-case hex, a leading zero,
// trailing bytes — is refused with an error wrapping ErrMalformed.
func Parse(b []byte) (Statement, error) {
	var s Statement
	fail := func(why string) (Statement, error) { return Statement{}, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(b) > 1024 {
		return fail("over 1 KiB")
	}
	lines := bytes.Split(b, []byte("\n"))
	keys := []string{"", "action: ", "function: ", "manifest-sha256: ", "module-sha256: ", "sequence: "}
	if len(lines) != len(keys)+1 || len(lines[len(keys)]) != 0 {
		return fail(fmt.Sprintf("want %d lines each ending in a newline", len(keys)))
	}
	if string(lines[0]) != Header {
		return fail(fmt.Sprintf("first line %.40q, want %q", lines[0], Header))
	}
	vals := make([]string, len(keys))
	for i := 1; i < len(keys); i++ {
		v, ok := bytes.CutPrefix(lines[i], []byte(keys[i]))
		if !ok {
			return fail(fmt.Sprintf("line %d: want %q", i+1, keys[i]))
		}
		vals[i] = string(v)
	}
	switch a := Action(vals[1]); a {
	case Deploy, Rollback:
		s.Action = a
	default:
		return fail(fmt.Sprintf("action %.20q: want deploy or rollback", vals[1]))
	}
	if !functionRE.MatchString(vals[2]) {
		return fail(fmt.Sprintf("function %.70q: not a function name", vals[2]))
	}
	s.Function = vals[2]
	for i, dst := range []*[sha256.Size]byte{&s.Manifest, &s.Module} {
		v := vals[3+i]
		// The length first: hex.Decode writes past dst for a longer input
		// (FuzzParse's crasher).
		ok := len(v) == 2*sha256.Size
		if ok {
			_, err := hex.Decode(dst[:], []byte(v))
			ok = err == nil && v == hex.EncodeToString(dst[:])
		}
		if !ok {
			return fail(fmt.Sprintf("%s: want %d lower-case hex digits", keys[3+i][:len(keys[3+i])-2], 2*sha256.Size))
		}
	}
	n, err := strconv.ParseUint(vals[5], 10, 63)
	if err != nil || n == 0 || vals[5] != strconv.FormatUint(n, 10) {
		return fail(fmt.Sprintf("sequence %.30q: want a decimal number from 1 to %d", vals[5], uint64(MaxSequence)))
	}
	s.Sequence = n
	return s, nil
}

// Signed is a statement with its signature: the envelope any transport
// carries, as JSON.
type Signed struct {
	Statement string `json:"statement"` // the canonical bytes, as they were signed
	Key       string `json:"key"`       // ed25519 public key, standard base64
	Signature string `json:"signature"` // ed25519 signature of Statement, standard base64
}

// Sign signs a statement.
func Sign(s Statement, priv ed25519.PrivateKey) Signed {
	b := s.Marshal()
	return Signed{
		Statement: string(b),
		Key:       base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, b)),
	}
}

// The errors of Verify, for errors.Is.
var (
	ErrUntrustedKey = errors.New("signed by a key this agent does not trust")
	ErrBadSignature = errors.New("signature does not verify")
)

// Verify checks that the envelope is signed by one of the trusted keys
// and returns its statement. It says nothing about whether the statement
// fits what is being activated or is newer than the last one: the caller
// checks Function, Action, Names and Sequence.
func (sg Signed) Verify(trusted []ed25519.PublicKey) (Statement, error) {
	pub, err := base64.StdEncoding.DecodeString(sg.Key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Statement{}, fmt.Errorf("%w: key is not a base64 ed25519 public key", ErrUntrustedKey)
	}
	ok := false
	for _, k := range trusted {
		if bytes.Equal(k, pub) {
			ok = true
			break
		}
	}
	if !ok {
		return Statement{}, ErrUntrustedKey
	}
	sig, err := base64.StdEncoding.DecodeString(sg.Signature)
	if err != nil || !ed25519.Verify(pub, []byte(sg.Statement), sig) {
		return Statement{}, ErrBadSignature
	}
	return Parse([]byte(sg.Statement))
}

// ParseKeys decodes base64 ed25519 public keys (as keygen prints them and
// admin.trusted_keys lists them), naming every one that is not.
func ParseKeys(b64 []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	var errs []error
	for i, k := range b64 {
		pub, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			errs = append(errs, fmt.Errorf("key %d %.20q...: not a base64 ed25519 public key (edgefn keygen prints one)", i+1, k))
			continue
		}
		out = append(out, pub)
	}
	return out, errors.Join(errs...)
}
