package wasmbin

import (
	"fmt"
	"math"
	"sort"
)

// Options selects what Rewrite does. The zero value copies the module (re-encoded).
type Options struct {
	// Instrument adds the stop-flag check at every defined function's entry and at every loop
	// header (loop headers count down a per-function local so the global is read once every
	// CheckInterval iterations), and the call-depth budget (decrement at entry, increment at
	// every exit). It adds and exports GlobalStop, GlobalDepth and GlobalGrowFailed.
	Instrument bool
	// CheckInterval is how many loop iterations pass between reads of GlobalStop; default 1024.
	CheckInterval uint32
	// InitialDepth is GlobalDepth's value at instantiation, the budget of the start function
	// and _initialize; default 10000. Values above math.MaxInt32 are clamped.
	InitialDepth uint32
	// TrackGrow makes every memory.grow that returns -1 set GlobalGrowFailed to 1 (the value
	// memory.grow returns is unchanged). It adds and exports the three globals too.
	TrackGrow bool
	// MaxMemoryPages, when non-zero, clamps memory 0's maximum to this many 64 KiB pages (adding
	// a maximum if the module declares none). If the module's minimum is above it, Rewrite
	// returns a *LimitError.
	MaxMemoryPages uint32
	// MergeData merges active data segments with constant i32 offsets into few large segments
	// (runs of more than 1 KiB of zeros split segments), preserving the initial memory image
	// exactly. It is skipped, without error, if the module has passive segments, a data count
	// section, non-constant offsets, an imported memory, or a segment out of the initial memory.
	MergeData bool
	// StripDebug drops custom sections other than "name" (DWARF, producers...).
	StripDebug bool
	// MemoryBudget, when non-zero, makes tables count against memory: memory 0 and every table
	// together may take at most this many bytes, a table element counting TableElemBytes.
	// Rewrite clamps every table's maximum to MemoryBudget/TableElemBytes elements, makes every
	// table.grow return -1 (setting GlobalGrowFailed to 2) when it would take
	// memory.size×64 KiB + TableElemBytes × (the elements of every table) past the budget, and
	// adds and exports GlobalTableElems (and the three other globals). The host enforces the
	// other half: a memory grow must leave room for TableElemBytes × GlobalTableElems. Rewrite
	// returns a *LimitError when the declared minimums of memory and tables are over the
	// budget.
	MemoryBudget uint64
	// Yield (which implies Instrument) makes the guest call the host regularly, so that a host
	// can stop it even when no other goroutine can run: wazero's compiled code cannot be
	// preempted by Go, so a guest that never calls the host blocks a stop-the-world (a garbage
	// collection) and with it every goroutine, the one that would set GlobalStop included.
	// Rewrite adds the function import YieldModule.YieldName of type () -> i32, after the
	// other function imports (every defined function's index grows by one; Rewrite renumbers
	// every reference, the "name" section included). Instrumented code calls it every
	// CheckInterval loop iterations (in each function frame) and every CheckInterval function
	// entries (counted in a per-instance global), and traps with "unreachable" when it returns
	// non-zero. Rewrite fails with a *FormatError if the module imports from YieldModule
	// itself.
	Yield bool
}

// The import Options.Yield adds. The host instantiates a module YieldModule exporting a
// function YieldName () -> i32 that returns 1 to stop the guest (setting GlobalStop too, so the
// trap reads as a stop) and 0 to let it run.
const (
	YieldModule = "edgefn_internal"
	YieldName   = "yield"
)

// maxBudget bounds Options.MemoryBudget: 4 GiB of memory and as much again of tables.
const maxBudget = 8 << 30

// TableElemBytes is what one table element counts against Options.MemoryBudget: a reference
// in wazero's tables is one machine word.
const TableElemBytes = 8

// Defaults for Options.
const (
	DefaultCheckInterval = 1024
	DefaultInitialDepth  = 10000
)

// Rewrite returns a new module with opt applied; wasm is not modified. It fails with a
// *FormatError if wasm is malformed or already exports one of the edgefn globals (or, with
// opt.Yield, imports from YieldModule), and with a *LimitError if the memory minimum is above
// opt.MaxMemoryPages. The result keeps every global, table and memory index of the input, and
// every function index unless opt.Yield adds its import (see Options.Yield).
func Rewrite(wasm []byte, opt Options) ([]byte, error) {
	m, err := parse(wasm)
	if err != nil {
		return nil, err
	}
	if opt.CheckInterval == 0 {
		opt.CheckInterval = DefaultCheckInterval
	}
	if opt.InitialDepth == 0 {
		opt.InitialDepth = DefaultInitialDepth
	}
	if opt.InitialDepth > math.MaxInt32 {
		opt.InitialDepth = math.MaxInt32
	}
	if opt.CheckInterval > math.MaxInt32 {
		opt.CheckInterval = math.MaxInt32
	}
	if opt.MemoryBudget > maxBudget {
		opt.MemoryBudget = maxBudget // keeps GlobalTableElems within an i32
	}
	if opt.Yield {
		opt.Instrument = true
	}
	rw := &rewriter{m: m, opt: opt, newPayload: map[int][]byte{}}
	return rw.run()
}

type rewriter struct {
	m          *module
	opt        Options
	newPayload map[int][]byte // section index -> replaced payload
	added      []section      // new sections (id, payload), placed by order
	newTypes   []funcType     // appended to the type section
	drop       map[int]bool
	dataMerged bool // mergeData renumbered the data segments

	gStop, gDepth, gGrow uint32
	gCalls               uint32 // Yield: entries left before the next yield (not exported)
	gTables              uint32 // MemoryBudget: elements of every table (GlobalTableElems)
	patches              []patch
	yieldFunc            uint32 // Yield: the function index of the import
	scratch              []byte // re-encoded instruction
	relabeled            []byte // re-encoded branch (relabel)
	wrapped              []int  // rewriteBody's block stack, kept to reuse its memory
}

func (rw *rewriter) run() ([]byte, error) {
	m := rw.m
	rw.drop = map[int]bool{}
	if rw.opt.MaxMemoryPages != 0 && m.mem != nil {
		if err := rw.clampMemory(); err != nil {
			return nil, err
		}
	}
	if rw.opt.MemoryBudget != 0 {
		if err := rw.clampTables(); err != nil {
			return nil, err
		}
	}
	rw.applyPatches()
	globals := rw.opt.Instrument || rw.opt.TrackGrow || rw.opt.MemoryBudget != 0
	if globals {
		for _, e := range m.exports {
			if e.Name == GlobalStop || e.Name == GlobalDepth || e.Name == GlobalGrowFailed {
				return nil, &FormatError{Section: secExport, Func: -1, Offset: 0,
					Msg: fmt.Sprintf("the module already exports %q (instrumented twice?)", e.Name)}
			}
		}
		if rw.opt.Yield {
			if err := rw.addYield(); err != nil {
				return nil, err
			}
		}
		base := uint32(m.numImportedGlobals + m.numGlobals)
		rw.gStop, rw.gDepth, rw.gGrow, rw.gCalls, rw.gTables = base, base+1, base+2, base+3, base+3
		if rw.opt.Yield {
			rw.gTables++
		}
		rw.addGlobals()
		if err := rw.rewriteCode(); err != nil {
			return nil, err
		}
		rw.addTypes()
	}
	if rw.opt.MergeData {
		rw.mergeData()
	}
	if rw.opt.StripDebug {
		for i, s := range m.sections {
			if s.id == secCustom && s.name != "name" {
				rw.drop[i] = true
			}
		}
	}
	rw.rewriteNames()
	return rw.assemble(), nil
}

// assemble writes the header and every section, replaced and added ones included.
func (rw *rewriter) assemble() []byte {
	size := 8 + 16*len(rw.added)
	for i, s := range rw.m.sections {
		if p, ok := rw.newPayload[i]; ok {
			size += len(p) + 6
		} else {
			size += len(s.payload) + 6
		}
	}
	out := make([]byte, 0, size)
	out = append(out, wasmMagic...)
	emit := func(id byte, p []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(p)))
		out = append(out, p...)
	}
	added := rw.added
	flush := func(before int) {
		for len(added) > 0 && sectionOrder(added[0].id) < before {
			emit(added[0].id, added[0].payload)
			added = added[1:]
		}
	}
	for i, s := range rw.m.sections {
		if s.id != secCustom {
			flush(sectionOrder(s.id))
		}
		if rw.drop[i] {
			continue
		}
		p, ok := rw.newPayload[i]
		if !ok {
			p = s.payload
		}
		emit(s.id, p)
	}
	flush(math.MaxInt)
	return out
}

// addSection records a new section; added stays sorted by section order.
func (rw *rewriter) addSection(id byte, payload []byte) {
	i := len(rw.added)
	for i > 0 && sectionOrder(rw.added[i-1].id) > sectionOrder(id) {
		i--
	}
	rw.added = append(rw.added, section{})
	copy(rw.added[i+1:], rw.added[i:])
	rw.added[i] = section{id: id, payload: payload}
}

// appendToVec returns a section payload (a vector) with n more entries encoded in extra.
func appendToVec(payload []byte, n int, extra []byte) []byte {
	r := reader{buf: payload}
	count, _ := r.u32() // parse already checked it
	out := appendU32(make([]byte, 0, len(payload)+len(extra)+5), count+uint32(n))
	out = append(out, payload[r.pos:]...)
	return append(out, extra...)
}

// extendSection appends n entries to the vector section id, creating it if absent.
func (rw *rewriter) extendSection(id byte, n int, extra []byte) {
	if i := rw.m.sectionIndex(id); i >= 0 {
		p, ok := rw.newPayload[i]
		if !ok {
			p = rw.m.sections[i].payload
		}
		rw.newPayload[i] = appendToVec(p, n, extra)
		return
	}
	rw.addSection(id, appendToVec([]byte{0}, n, extra))
}

func (rw *rewriter) addGlobals() {
	inits := []uint32{0, rw.opt.InitialDepth, 0}
	if rw.opt.Yield {
		inits = append(inits, rw.opt.CheckInterval)
	}
	exports := []string{GlobalStop, GlobalDepth, GlobalGrowFailed}
	idx := []uint32{rw.gStop, rw.gDepth, rw.gGrow}
	if rw.opt.MemoryBudget != 0 {
		inits = append(inits, uint32(rw.tableMinimums()))
		exports = append(exports, GlobalTableElems)
		idx = append(idx, rw.gTables)
	}
	var g []byte
	for _, init := range inits {
		g = append(g, byte(I32), 1, opI32Const)
		g = appendS64(g, int64(int32(init)))
		g = append(g, opEnd)
	}
	rw.extendSection(secGlobal, len(inits), g)
	var e []byte
	for i, name := range exports {
		e = appendName(e, name)
		e = append(e, byte(ExternGlobal))
		e = appendU32(e, idx[i])
	}
	rw.extendSection(secExport, len(exports), e)
}

// blockTypeFor returns the block type encoding for a block producing results: empty, a single
// value type, or the index of a (possibly new) type [] -> results.
func (rw *rewriter) blockTypeFor(results []ValType) []byte {
	switch len(results) {
	case 0:
		return []byte{0x40}
	case 1:
		return []byte{byte(results[0])}
	}
	want := funcType{results: results}
	for i, t := range rw.m.types {
		if t.equal(want) {
			return appendS64(nil, int64(i))
		}
	}
	for i, t := range rw.newTypes {
		if t.equal(want) {
			return appendS64(nil, int64(len(rw.m.types)+i))
		}
	}
	rw.newTypes = append(rw.newTypes, want)
	return appendS64(nil, int64(len(rw.m.types)+len(rw.newTypes)-1))
}

func (rw *rewriter) addTypes() {
	if len(rw.newTypes) == 0 {
		return
	}
	var p []byte
	for _, t := range rw.newTypes {
		p = append(p, 0x60)
		p = appendU32(p, uint32(len(t.params)))
		for _, v := range t.params {
			p = append(p, byte(v))
		}
		p = appendU32(p, uint32(len(t.results)))
		for _, v := range t.results {
			p = append(p, byte(v))
		}
	}
	rw.extendSection(secType, len(rw.newTypes), p)
}

func (rw *rewriter) clampMemory() error {
	mem, max := rw.m.mem, rw.opt.MaxMemoryPages
	if max > 65536 {
		max = 65536
	}
	if mem.min > max {
		return &LimitError{MinPages: mem.min, MaxPages: max}
	}
	if mem.hasMax && mem.max <= max {
		return nil
	}
	rw.patchLimits(mem.secIdx, mem.limStart, mem.limEnd, mem.flags, mem.min, max)
	return nil
}

// tableMinimums returns the sum of every table's minimum, in elements.
func (rw *rewriter) tableMinimums() uint64 {
	var n uint64
	for _, t := range rw.m.tables {
		n += uint64(t.Min)
	}
	return n
}

// clampTables checks the declared minimums against Options.MemoryBudget and clamps every
// table's maximum to the budget.
func (rw *rewriter) clampTables() error {
	budget := rw.opt.MemoryBudget
	var memMin uint64
	if rw.m.mem != nil {
		memMin = uint64(rw.m.mem.min)
	}
	elems := rw.tableMinimums()
	if memMin*65536+elems*TableElemBytes > budget {
		return &LimitError{MinPages: uint32(memMin), TableElems: elems, Budget: budget}
	}
	max := budget / TableElemBytes
	if max > math.MaxUint32 {
		max = math.MaxUint32
	}
	for _, t := range rw.m.tables {
		if t.HasMax && uint64(t.Max) <= max {
			continue
		}
		rw.patchLimits(t.secIdx, t.limStart, t.limEnd, t.flags, t.Min, uint32(max))
	}
	return nil
}

// patch replaces payload[start:end] of section secIdx.
type patch struct {
	secIdx, start, end int
	b                  []byte
}

// patchLimits records new limits (min, max; flags get a maximum) for the limits at
// [start, end) of section secIdx.
func (rw *rewriter) patchLimits(secIdx, start, end int, flags byte, min, max uint32) {
	lim := []byte{flags | 1}
	lim = appendU32(lim, min)
	lim = appendU32(lim, max)
	rw.patches = append(rw.patches, patch{secIdx: secIdx, start: start, end: end, b: lim})
}

// applyPatches applies the recorded patches to the original payloads (several tables, or a
// memory and tables, may share a section). It runs before anything else replaces a payload.
func (rw *rewriter) applyPatches() {
	sort.Slice(rw.patches, func(i, j int) bool {
		a, b := rw.patches[i], rw.patches[j]
		return a.secIdx < b.secIdx || a.secIdx == b.secIdx && a.start < b.start
	})
	for i := 0; i < len(rw.patches); {
		sec := rw.patches[i].secIdx
		old := rw.m.sections[sec].payload
		p := make([]byte, 0, len(old)+16)
		at := 0
		for ; i < len(rw.patches) && rw.patches[i].secIdx == sec; i++ {
			pt := rw.patches[i]
			p = append(p, old[at:pt.start]...)
			p = append(p, pt.b...)
			at = pt.end
		}
		rw.newPayload[sec] = append(p, old[at:]...)
	}
}
