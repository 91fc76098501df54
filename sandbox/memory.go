package sandbox

import (
	"fmt"
	"sync"

	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// memPool keeps zeroed linear-memory buffers of closed instances for the
// next instance, so a fresh instance does not pay for a large allocation
// and the garbage it leaves. Buffers in the pool are all-zero up to their
// capacity.
type memPool struct {
	mu    sync.Mutex
	free  [][]byte
	bytes int // total capacity held in free
	// maxBytes bounds what the pool holds; maxBuf is the largest buffer it
	// keeps.
	maxBytes, maxBuf int
}

func newMemPool(maxBytes, maxBuf int) *memPool {
	return &memPool{maxBytes: maxBytes, maxBuf: maxBuf}
}

// get returns a zeroed buffer of length n and capacity at least capHint
// (and n).
func (p *memPool) get(n, capHint uint64) []byte {
	if capHint < n {
		capHint = n
	}
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		c := uint64(cap(b))
		// Take a buffer that fits without wasting more than 4x.
		if c >= capHint && c <= 4*capHint+64<<10 && (best < 0 || c < uint64(cap(p.free[best]))) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		last := len(p.free) - 1
		p.free[best] = p.free[last]
		p.free[last] = nil
		p.free = p.free[:last]
		p.bytes -= cap(b)
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	return make([]byte, n, capHint)
}

// put zeroes the used part of b (its length) and keeps it if there is room.
func (p *memPool) put(b []byte) {
	if cap(b) == 0 || cap(b) > p.maxBuf {
		return
	}
	clear(b)
	p.mu.Lock()
	if p.bytes+cap(b) <= p.maxBytes {
		p.free = append(p.free, b[:0])
		p.bytes += cap(b)
	}
	p.mu.Unlock()
}

// linearMemory is one instance's memory, backed by a pooled buffer. It
// enforces the function's memory cap itself (a grow past it fails, and
// growFailed records it) so the cap holds even for a module whose declared
// maximum is larger. The instance's tables count against the same cap: the
// instrumented table.grow refuses to pass it (wasmbin.Options.MemoryBudget)
// and a memory grow leaves room for the tables' elements.
type linearMemory struct {
	pool       *memPool
	buf        []byte
	limit      uint64
	growFailed bool
	// tables is the instance's wasmbin.GlobalTableElems, nil until the
	// instance exists (its minimums were checked at load).
	tables api.Global
}

// tableBytes is what the instance's tables count against the cap.
func (m *linearMemory) tableBytes() uint64 {
	if m == nil || m.tables == nil {
		return 0
	}
	return uint64(uint32(m.tables.Get())) * wasmbin.TableElemBytes
}

// tableNote says what the tables take of the cap, for a failure message.
func (m *linearMemory) tableNote() string {
	if n := m.tableBytes(); n > 0 {
		return fmt.Sprintf(" (tables take %s of it)", humanBytes(n))
	}
	return ""
}

var _ experimental.LinearMemory = (*linearMemory)(nil)

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size+m.tableBytes() > m.limit {
		m.growFailed = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Bytes past the old length are zero: pooled buffers are zeroed up
		// to their capacity and memory never shrinks.
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := 2 * uint64(cap(m.buf))
	if newCap < size {
		newCap = size
	}
	if newCap > m.limit {
		newCap = m.limit
	}
	nb := m.pool.get(size, newCap)
	copy(nb, m.buf)
	m.pool.put(m.buf)
	m.buf = nb
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	b := m.buf
	m.buf = nil
	m.pool.put(b)
}
