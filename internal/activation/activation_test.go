package activation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestMarshalParseRoundTrip(t *testing.T) {
	s := New(Deploy, "temp-alert", []byte("name: temp-alert\n"), []byte("\x00asm"), 1733150000000)
	b := s.Marshal()
	want := "edgefn-activation-v1\naction: deploy\nfunction: temp-alert\nmanifest-sha256: "
	if !strings.HasPrefix(string(b), want) || !strings.HasSuffix(string(b), "\nsequence: 1733150000000\n") {
		t.Fatalf("canonical bytes:\n%s", b)
	}
	got, err := Parse(b)
	if err != nil || got != s {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
	if !got.Names([]byte("name: temp-alert\n"), []byte("\x00asm")) || got.Names([]byte("x"), []byte("\x00asm")) {
		t.Error("Names")
	}
}

// Only the canonical bytes parse: two encodings of one statement would let
// a signature stand for something its signer did not write.
func TestParseRefusesNonCanonical(t *testing.T) {
	good := string(New(Rollback, "f", []byte("m"), []byte("w"), 7).Marshal())
	cases := map[string]string{
		"other header":   strings.Replace(good, Header, "edgefn-activation-v2", 1),
		"old deploy msg": strings.Replace(good, Header, "edgefn-deploy-v1", 1),
		"no final nl":    strings.TrimSuffix(good, "\n"),
		"extra line":     good + "x: y\n",
		"crlf":           strings.ReplaceAll(good, "\n", "\r\n"),
		"action":         strings.Replace(good, "action: rollback", "action: delete", 1),
		"name":           strings.Replace(good, "function: f", "function: ../f", 1),
		"upper hex":      upperFirstHex(good),
		"short hex":      strings.Replace(good, "module-sha256: ", "module-sha256: 0", 1),
		"leading zero":   strings.Replace(good, "sequence: 7", "sequence: 07", 1),
		"zero":           strings.Replace(good, "sequence: 7", "sequence: 0", 1),
		"plus":           strings.Replace(good, "sequence: 7", "sequence: +7", 1),
		"too big":        strings.Replace(good, "sequence: 7", "sequence: 9223372036854775808", 1),
		"space":          strings.Replace(good, "action: ", "action:  ", 1),
		"reordered":      strings.Replace(strings.Replace(good, "action: rollback\n", "", 1), "function: f\n", "function: f\naction: rollback\n", 1),
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
	if s, err := Parse([]byte(strings.Replace(good, "sequence: 7", "sequence: 9223372036854775807", 1))); err != nil || s.Sequence != MaxSequence {
		t.Errorf("max sequence: %v %v", s, err)
	}
}

func upperFirstHex(s string) string {
	i := strings.Index(s, "manifest-sha256: ") + len("manifest-sha256: ")
	for j := i; j < len(s); j++ {
		if s[j] >= 'a' && s[j] <= 'f' {
			return s[:j] + strings.ToUpper(s[j:j+1]) + s[j+1:]
		}
	}
	panic("no hex letter")
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	s := New(Deploy, "f", []byte("m"), []byte("w"), 42)
	sg := Sign(s, priv)
	if got, err := sg.Verify([]ed25519.PublicKey{pub2, pub}); err != nil || got != s {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if _, err := sg.Verify([]ed25519.PublicKey{pub2}); !errors.Is(err, ErrUntrustedKey) {
		t.Errorf("untrusted: %v", err)
	}
	forged := sg
	forged.Statement = strings.Replace(sg.Statement, "sequence: 42", "sequence: 43", 1)
	if _, err := forged.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed statement: %v", err)
	}
	other := Sign(s, priv2)
	other.Key = sg.Key
	if _, err := other.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature of another key: %v", err)
	}
	keys, err := ParseKeys([]string{sg.Key, "nope", ""})
	if len(keys) != 1 || !bytes.Equal(keys[0], pub) || err == nil || !strings.Contains(err.Error(), "key 2") || !strings.Contains(err.Error(), "key 3") {
		t.Errorf("ParseKeys = %v, %v", keys, err)
	}
}

// Whatever bytes parse are the canonical bytes of what they parse to.
func FuzzParse(f *testing.F) {
	f.Add(New(Deploy, "f", []byte("m"), []byte("w"), 7).Marshal())
	f.Add(New(Rollback, "temp-alert", nil, nil, MaxSequence).Marshal())
	f.Add([]byte("edgefn-activation-v1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("%q parsed to %+v, which marshals to %q", b, s, s.Marshal())
		}
	})
}
