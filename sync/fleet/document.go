package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/edgefn/edgefn/internal/activation"
)

// DocumentHeader is the first line of a version 1 document's signed bytes.
// It separates the domain from the activation statements
// (activation.Header): neither parses as the other.
const DocumentHeader = "edgefn-fleet-document-v1"

// Document is a desired state: the functions a target (a group or one
// gateway) should run.
type Document struct {
	// Target is the document's topic target, "group/<name>" or
	// "gateway/<id>": a document published under another target is
	// refused.
	Target string `json:"target"`
	// Sequence orders the documents of one target: an agent refuses one
	// not higher than the last it accepted for that target. The CLI uses
	// milliseconds since 1970, like activation statements.
	Sequence  uint64     `json:"sequence"`
	Functions []Function `json:"functions"`
}

// Function is one function a document names.
type Function struct {
	Name string `json:"name"`
	// Manifest is the manifest file's bytes.
	Manifest []byte `json:"manifest"`
	Module   Module `json:"module"`
	// Activation is the signed deploy statement for this manifest and
	// module (internal/activation); the gateway verifies and records it.
	Activation activation.Signed `json:"activation"`
}

// Module says where the module's bytes are: chunked retained blobs on the
// broker under its SHA-256, or URL (fetched and checked against SHA256).
type Module struct {
	SHA256    string `json:"sha256"` // lower-case hex
	Size      int64  `json:"size"`
	ChunkSize int    `json:"chunk_size,omitempty"`
	URL       string `json:"url,omitempty"`
}

// Chunks is how many chunks the blob has.
func (m Module) Chunks() int {
	if m.ChunkSize <= 0 {
		return 0
	}
	return int((m.Size + int64(m.ChunkSize) - 1) / int64(m.ChunkSize))
}

// SignedDocument is the retained payload of a desired-state topic, as JSON.
type SignedDocument struct {
	Document  string `json:"document"`  // DocumentHeader, "\n", the document's JSON
	Key       string `json:"key"`       // ed25519 public key, standard base64
	Signature string `json:"signature"` // over Document, standard base64
}

// Sign signs a document.
func Sign(d Document, priv ed25519.PrivateKey) (SignedDocument, error) {
	js, err := json.Marshal(d)
	if err != nil {
		return SignedDocument{}, err
	}
	body := DocumentHeader + "\n" + string(js)
	return SignedDocument{
		Document:  body,
		Key:       base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(body))),
	}, nil
}

// The errors of Verify, for errors.Is.
var (
	ErrUntrustedKey = activation.ErrUntrustedKey
	ErrBadSignature = activation.ErrBadSignature
	ErrMalformed    = errors.New("not a well-formed edgefn-fleet-document-v1")
	ErrWrongTarget  = errors.New("document signed for another target")
	ErrStale        = errors.New("document sequence not newer than the last accepted")
)

// ParseSigned decodes a retained payload.
func ParseSigned(payload []byte) (SignedDocument, error) {
	var sd SignedDocument
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sd); err != nil {
		return SignedDocument{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return sd, nil
}

// Verify checks the document's signature against the trusted keys, that
// it names target, and that every function entry is consistent: a deploy
// statement signed by a trusted key, for this function name, naming
// exactly this manifest and the module's SHA-256. It does not check
// sequences: the caller compares Document.Sequence with the last accepted
// for the target, and the gateway checks each statement's sequence.
func (sd SignedDocument) Verify(trusted []ed25519.PublicKey, target string) (Document, error) {
	pub, err := base64.StdEncoding.DecodeString(sd.Key)
	if err != nil || len(pub) != ed25519.PublicKeySize || !trustedKey(trusted, pub) {
		return Document{}, ErrUntrustedKey
	}
	sig, err := base64.StdEncoding.DecodeString(sd.Signature)
	if err != nil || !ed25519.Verify(pub, []byte(sd.Document), sig) {
		return Document{}, ErrBadSignature
	}
	js, ok := strings.CutPrefix(sd.Document, DocumentHeader+"\n")
	if !ok {
		return Document{}, fmt.Errorf("%w: first line is not %q", ErrMalformed, DocumentHeader)
	}
	var d Document
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.Target != target {
		return Document{}, fmt.Errorf("%w: it names %q, published as %q", ErrWrongTarget, d.Target, target)
	}
	if d.Sequence == 0 || d.Sequence > activation.MaxSequence {
		return Document{}, fmt.Errorf("%w: sequence %d", ErrMalformed, d.Sequence)
	}
	seen := map[string]bool{}
	for i, f := range d.Functions {
		if seen[f.Name] {
			return Document{}, fmt.Errorf("%w: function %q named twice", ErrMalformed, f.Name)
		}
		seen[f.Name] = true
		if err := f.check(trusted); err != nil {
			return Document{}, fmt.Errorf("function %d %q: %w", i+1, f.Name, err)
		}
	}
	return d, nil
}

// Verify checks one entry as Verify checks each entry of a document: its
// deploy statement signed by a trusted key, naming this function, manifest
// and module. The CLI verifies an entry it is about to sign again.
func (f Function) Verify(trusted []ed25519.PublicKey) (activation.Statement, error) {
	if err := f.check(trusted); err != nil {
		return activation.Statement{}, err
	}
	return f.Activation.Verify(trusted)
}

// Resign returns the entry with a new deploy statement of the same content
// at sequence, signed by priv: how an earlier entry is activated again on
// gateways whose per-function sequence has moved past its statement.
func (f Function) Resign(st activation.Statement, sequence uint64, priv ed25519.PrivateKey) Function {
	st.Sequence = sequence
	f.Activation = activation.Sign(st, priv)
	return f
}

func (f Function) check(trusted []ed25519.PublicKey) error {
	st, err := f.Activation.Verify(trusted)
	if err != nil {
		return fmt.Errorf("activation statement: %w", err)
	}
	mod, err := hex.DecodeString(f.Module.SHA256)
	if err != nil || len(mod) != sha256.Size || f.Module.SHA256 != hex.EncodeToString(mod) {
		return fmt.Errorf("%w: module sha256 %.70q: want 64 lower-case hex digits", ErrMalformed, f.Module.SHA256)
	}
	switch {
	case st.Action != activation.Deploy:
		return fmt.Errorf("%w: activation statement is a %s, want deploy", ErrMalformed, st.Action)
	case st.Function != f.Name:
		return fmt.Errorf("%w: activation statement names function %q", ErrMalformed, st.Function)
	case st.Manifest != sha256.Sum256(f.Manifest):
		return fmt.Errorf("%w: activation statement names another manifest", ErrMalformed)
	case !bytes.Equal(st.Module[:], mod):
		return fmt.Errorf("%w: activation statement names another module", ErrMalformed)
	case f.Module.Size <= 0:
		return fmt.Errorf("%w: module size %d", ErrMalformed, f.Module.Size)
	case f.Module.URL == "" && f.Module.ChunkSize <= 0:
		return fmt.Errorf("%w: module has neither chunk_size nor url", ErrMalformed)
	}
	if f.Module.URL != "" {
		if err := CheckURL(f.Module.URL); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return nil
}

func trustedKey(trusted []ed25519.PublicKey, pub []byte) bool {
	for _, k := range trusted {
		if bytes.Equal(k, pub) {
			return true
		}
	}
	return false
}

// Desired merges verified documents into the desired set: documents in the
// order given (groups in config order, the gateway's own last), a function
// named twice taking the later entry.
func Desired(docs ...Document) []Function {
	idx := map[string]int{}
	var out []Function
	for _, d := range docs {
		for _, f := range d.Functions {
			if i, ok := idx[f.Name]; ok {
				out[i] = f
				continue
			}
			idx[f.Name] = len(out)
			out = append(out, f)
		}
	}
	return out
}

// Peek decodes a signed document's body without verifying it: what the CLI
// reads to extend the current document of a target (the agents verify).
func Peek(payload []byte) (Document, error) {
	sd, err := ParseSigned(payload)
	if err != nil {
		return Document{}, err
	}
	js, ok := strings.CutPrefix(sd.Document, DocumentHeader+"\n")
	if !ok {
		return Document{}, fmt.Errorf("%w: first line is not %q", ErrMalformed, DocumentHeader)
	}
	var d Document
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		return Document{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return d, nil
}
