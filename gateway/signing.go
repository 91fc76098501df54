package gateway

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/edgefn/edgefn/internal/activation"
)

// Signed activations. With admin.trusted_keys set, every activation — a
// deploy, a rollback, and each function loaded at start — needs a statement
// (internal/activation) signed by a trusted key that names the function,
// the manifest and module hashes, and a sequence number higher than the
// last one accepted for that function. The last accepted statement is
// recorded durably (registry.recordActivation) before the active pointer
// moves, so its sequence is the high-water mark across restarts.

// ActivationError says a deploy or rollback was refused for want of a valid
// signed statement; the admin API answers it with 403.
type ActivationError struct {
	Action   activation.Action
	Function string
	Reason   string
}

func (e *ActivationError) Error() string {
	return fmt.Sprintf("%s %q refused: %s", e.Action, e.Function, e.Reason)
}

// trustedKeys decodes admin.trusted_keys.
func trustedKeys(b64 []string) ([]ed25519.PublicKey, error) {
	trimmed := make([]string, len(b64))
	for i, k := range b64 {
		trimmed[i] = strings.TrimSpace(k)
	}
	keys, err := activation.ParseKeys(trimmed)
	if err != nil {
		return nil, fmt.Errorf("admin.trusted_keys: %w", err)
	}
	return keys, nil
}

// signing reports whether activations need signed statements.
func (g *Host) signing() bool { return len(g.trusted) > 0 }

// lastSequence is the sequence of the last statement accepted for name, 0
// if none.
func (g *Host) lastSequence(name string) (uint64, error) {
	sg, err := g.reg.lastActivation(name)
	if err != nil || sg == nil {
		return 0, err
	}
	st, err := activation.Parse([]byte(sg.Statement))
	if err != nil {
		return 0, fmt.Errorf("function %q: last accepted statement: %w", name, err)
	}
	return st.Sequence, nil
}

// authorize checks, when signing is on, that sg is a statement signed by a
// trusted key for this action, function and content, newer than the last
// one accepted. The caller holds deployMu, records sg with
// reg.recordActivation once the activation is certain, then activates.
func (g *Host) authorize(sg *activation.Signed, action activation.Action, name string, manifest, wasm []byte) error {
	if !g.signing() {
		return nil
	}
	refuse := func(format string, args ...any) error {
		err := &ActivationError{Action: action, Function: name, Reason: fmt.Sprintf(format, args...)}
		g.log.Warn("activation refused", "function", name, "action", action, "reason", err.Reason)
		return err
	}
	if sg == nil {
		return refuse("unsigned %s refused: this agent only activates a function with a statement signed by a trusted key (edgefn %s --key KEYFILE)", action, action)
	}
	st, err := sg.Verify(g.trusted)
	switch {
	case errors.Is(err, activation.ErrUntrustedKey):
		return refuse("statement signed by a key this agent does not trust (add its public key to admin.trusted_keys)")
	case errors.Is(err, activation.ErrBadSignature):
		return refuse("statement signature does not verify: the statement changed after signing, or another key signed it")
	case err != nil:
		return refuse("%v", err)
	}
	switch {
	case st.Action != action:
		return refuse("the statement authorizes a %s, not a %s", st.Action, action)
	case st.Function != name:
		return refuse("the statement names function %q", st.Function)
	case !st.Names(manifest, wasm):
		return refuse("the statement names other content (manifest sha256 %x..., module sha256 %x...): manifest or module changed after signing", st.Manifest[:6], st.Module[:6])
	}
	last, err := g.lastSequence(name)
	if err != nil {
		return err
	}
	if st.Sequence <= last {
		return refuse("statement sequence %d is not newer than %d, the last accepted for this function: a replayed or stale statement (sign a new one)", st.Sequence, last)
	}
	return nil
}

// record makes sg the last accepted statement of name, when signing is on.
func (g *Host) record(name string, sg *activation.Signed) error {
	if !g.signing() {
		return nil
	}
	if err := g.reg.recordActivation(name, *sg); err != nil {
		return fmt.Errorf("record signed statement of %q: %w", name, err)
	}
	return nil
}

// startVersion is the stored version of name to load at start. When signing
// is on, it is the version whose content the last accepted statement names,
// if that statement still verifies with the trusted keys: normally the
// active one; another stored one if the agent stopped between recording a
// statement and moving the active pointer (the pointer is then moved).
// Without such a statement the function is not loaded.
func (g *Host) startVersion(name string, act int) (*storedVersion, error) {
	if !g.signing() {
		return g.reg.load(name, act)
	}
	sg, err := g.reg.lastActivation(name)
	if err != nil {
		return nil, err
	}
	if sg == nil {
		return nil, fmt.Errorf("not loaded: no signed activation statement (deployed before admin.trusted_keys was set, or unsigned): activate it with edgefn deploy --key or edgefn rollback --key")
	}
	st, err := sg.Verify(g.trusted)
	if err != nil {
		return nil, fmt.Errorf("not loaded: its last activation statement no longer verifies with admin.trusted_keys: %w", err)
	}
	if st.Function != name {
		return nil, fmt.Errorf("not loaded: its last activation statement names function %q", st.Function)
	}
	vs, err := g.reg.versions(name)
	if err != nil {
		return nil, err
	}
	order := []int{act}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] != act {
			order = append(order, vs[i])
		}
	}
	for _, v := range order {
		sv, err := g.reg.load(name, v)
		if err != nil || !st.Names(sv.Manifest, sv.Wasm) {
			continue
		}
		if v != act {
			if err := g.reg.activate(name, v); err != nil {
				return nil, err
			}
			g.log.Warn("active version set to the one its last signed statement names", "function", name, "version", v, "was", act)
		}
		return sv, nil
	}
	return nil, fmt.Errorf("not loaded: no stored version has the content its last signed statement names (manifest sha256 %x..., module sha256 %x...)", st.Manifest[:6], st.Module[:6])
}
