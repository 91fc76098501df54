package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Ledger is the agent's durable record of the last document it accepted
// per target: the sequence is the high-water mark an older document is
// refused against, across restarts; the payload lets the agent apply its
// desired state while the broker is unreachable.
type Ledger struct {
	path string
	mu   sync.Mutex
	m    map[string]LedgerEntry
}

// LedgerEntry is the last accepted document of one target.
type LedgerEntry struct {
	Sequence uint64         `json:"sequence"`
	Signed   SignedDocument `json:"signed"`
}

// OpenLedger reads the ledger at path (a missing file is empty).
func OpenLedger(path string) (*Ledger, error) {
	l := &Ledger{path: path, m: map[string]LedgerEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &l.m); err != nil {
		return nil, fmt.Errorf("fleet ledger %s: %w", path, err)
	}
	return l, nil
}

// Get returns the last accepted entry of target.
func (l *Ledger) Get(target string) (LedgerEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[target]
	return e, ok
}

// Check refuses a sequence not higher than the last accepted for target.
func (l *Ledger) Check(target string, seq uint64) error {
	if e, ok := l.Get(target); ok && seq <= e.Sequence {
		return fmt.Errorf("%w: %s sequence %d, last accepted %d (a replayed or stale document)", ErrStale, target, seq, e.Sequence)
	}
	return nil
}

// Record makes e the last accepted entry of target, durably (write to a
// temporary file, fsync, rename).
func (l *Ledger) Record(target string, e LedgerEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[target] = e
	b, err := json.Marshal(l.m)
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err == nil {
		if d, derr := os.Open(filepath.Dir(l.path)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("fleet ledger %s: %w", l.path, err)
	}
	return nil
}
