package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionOrder is the position a non-custom section must take (the tag section of the
// exception-handling proposal sits between memory and global).
func sectionOrder(id byte) int {
	switch id {
	case secTag:
		return 6
	case secGlobal, secExport, secStart, secElement:
		return int(id) + 1
	case secDataCount:
		return 11
	case secCode:
		return 12
	case secData:
		return 13
	}
	return int(id)
}

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type section struct {
	id      byte
	offset  int // of payload in the module
	payload []byte
	name    string // custom sections only
}

// memInfo locates memory 0 and its limits so Rewrite can re-encode them.
type memInfo struct {
	imported bool
	flags    byte
	min, max uint32
	hasMax   bool
	secIdx   int // index in module.sections of the import or memory section
	limStart int // limits' byte range in that section's payload
	limEnd   int
}

// tableInfo is one table (imported first) and where its limits are, so Rewrite can re-encode
// them.
type tableInfo struct {
	Table
	flags    byte
	secIdx   int // index in module.sections of the import or table section
	limStart int // limits' byte range in that section's payload
	limEnd   int
}

type codeBody struct {
	offset    int    // of body in the module
	body      []byte // locals and instructions, without the size
	codeStart int    // where the instructions start in body
	nlocals   uint64 // declared locals
}

type dataSeg struct {
	flags      uint32
	mem        uint32
	offsetExpr []byte
	constOff   uint32 // valid when constOK
	constOK    bool
	init       []byte
}

type module struct {
	sections           []section
	types              []funcType
	imports            []Import
	funcTypes          []uint32 // type index of every function, imports first
	numImportedFuncs   int
	numImportedGlobals int
	numGlobals         int // defined
	mem                *memInfo
	tables             []tableInfo
	elemSegments       int
	elements           uint64 // references in every element segment
	codeBytes          int
	bounds             Bounds
	exports            []Export
	hasStart           bool
	hasDataCount       bool
	dataCount          uint32
	code               []codeBody
	data               []dataSeg
	usesDataInstr      bool // memory.init or data.drop somewhere
}

func (m *module) sectionIndex(id byte) int {
	for i, s := range m.sections {
		if s.id == id {
			return i
		}
	}
	return -1
}

// sectionDecoder decodes one section and turns failures into *FormatError.
type sectionDecoder struct {
	r  reader
	id byte
}

func (d *sectionDecoder) fail(at int, err error) error {
	return formatErr(int(d.id), -1, at, err)
}

func formatErr(sec, fn, at int, err error) error {
	var fe *FormatError
	var be *BoundError
	if errors.As(err, &fe) || errors.As(err, &be) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, errEOF) {
		msg = "unexpected end of data"
	}
	return &FormatError{Section: sec, Func: fn, Offset: at, Msg: msg}
}

// parse decodes and structurally checks the whole module, including every function body.
func parse(wasm []byte) (*module, error) {
	return parseWithin(wasm, Bounds{})
}

// parseWithin is parse, refusing a module over b as soon as a count passes it, before
// anything is allocated for the entries past it.
func parseWithin(wasm []byte, b Bounds) (*module, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic[:4]) {
		return nil, &FormatError{Section: -1, Func: -1, Offset: 0, Msg: "not a WebAssembly binary (bad magic number)"}
	}
	if !bytes.Equal(wasm[4:8], wasmMagic[4:]) {
		return nil, &FormatError{Section: -1, Func: -1, Offset: 4, Msg: fmt.Sprintf("unsupported binary version % x (want 01 00 00 00)", wasm[4:8])}
	}
	m := &module{bounds: b}
	r := &reader{buf: wasm, pos: 8}
	last := 0
	for !r.done() {
		at := r.off()
		id, _ := r.byte()
		if id > secTag {
			return nil, &FormatError{Section: -1, Func: -1, Offset: at, Msg: fmt.Sprintf("unknown section id %d", id)}
		}
		size, err := r.u32()
		if err != nil {
			return nil, formatErr(int(id), -1, at, fmt.Errorf("section size: %w", err))
		}
		if int(size) > r.left() {
			return nil, &FormatError{Section: int(id), Func: -1, Offset: at, Msg: fmt.Sprintf("section size %d exceeds the %d bytes left", size, r.left())}
		}
		payload, _ := r.bytes(int(size))
		s := section{id: id, offset: r.off() - int(size), payload: payload}
		if id != secCustom {
			o := sectionOrder(id)
			if o <= last {
				return nil, &FormatError{Section: int(id), Func: -1, Offset: at, Msg: "section out of order or repeated"}
			}
			last = o
		}
		m.sections = append(m.sections, s)
	}
	nfuncDecls := -1
	for i := range m.sections {
		s := &m.sections[i]
		d := &sectionDecoder{r: reader{buf: s.payload, base: s.offset}, id: s.id}
		var err error
		switch s.id {
		case secCustom:
			s.name, err = d.r.name()
			if err != nil {
				return nil, d.fail(s.offset, fmt.Errorf("custom section name: %w", err))
			}
			d.r.pos = len(d.r.buf)
		case secType:
			err = m.decodeTypes(d)
		case secImport:
			err = m.decodeImports(d, i)
		case secFunction:
			err = m.decodeFunctions(d)
			nfuncDecls = len(m.funcTypes) - m.numImportedFuncs
		case secTable:
			err = d.boundedVec("tables", len(m.tables), m.bounds.Tables, func() error { return m.decodeTable(d, i, false) })
		case secMemory:
			err = m.decodeMemories(d, i)
		case secGlobal:
			err = d.boundedVec("globals", 0, m.bounds.Globals, func() error {
				m.numGlobals++
				if err := d.globalType(); err != nil {
					return err
				}
				_, err := d.constExpr(len(m.types))
				return err
			})
		case secExport:
			err = m.decodeExports(d)
		case secStart:
			at := d.r.off()
			var f uint32
			if f, err = d.r.u32(); err == nil && int(f) >= len(m.funcTypes) {
				err = d.fail(at, fmt.Errorf("start function %d out of range (%d functions)", f, len(m.funcTypes)))
			}
			m.hasStart = true
		case secElement:
			err = d.boundedVec("element segments", 0, m.bounds.ElementSegments, func() error {
				m.elemSegments++
				n, err := d.element(len(m.types))
				m.elements += uint64(n)
				if err == nil && m.bounds.Elements > 0 && m.elements > uint64(m.bounds.Elements) {
					err = &BoundError{What: "element references", Count: int(min(m.elements, math.MaxInt32)), Max: m.bounds.Elements}
				}
				return err
			})
		case secDataCount:
			m.hasDataCount = true
			m.dataCount, err = d.r.u32()
		case secCode:
			m.codeBytes = len(s.payload)
			if err := m.bounds.check("bytes of code", m.codeBytes, m.bounds.CodeBytes); err != nil {
				return nil, err
			}
			err = m.decodeCode(d)
		case secData:
			err = m.decodeData(d)
		case secTag:
			err = d.fail(s.offset, errors.New("exception handling (tag section) is not supported"))
		}
		if err != nil {
			return nil, d.fail(d.r.off(), err)
		}
		if !d.r.done() {
			return nil, d.fail(d.r.off(), fmt.Errorf("%d unused bytes at the end of the section", d.r.left()))
		}
	}
	if nfuncDecls < 0 {
		nfuncDecls = 0
	}
	if nfuncDecls != len(m.code) {
		return nil, &FormatError{Section: secCode, Func: -1, Offset: len(wasm),
			Msg: fmt.Sprintf("%d function declarations but %d function bodies", nfuncDecls, len(m.code))}
	}
	if m.hasDataCount && int(m.dataCount) != len(m.data) {
		return nil, &FormatError{Section: secDataCount, Func: -1, Offset: len(wasm),
			Msg: fmt.Sprintf("data count %d but %d data segments", m.dataCount, len(m.data))}
	}
	if m.usesDataInstr && !m.hasDataCount {
		return nil, &FormatError{Section: secCode, Func: -1, Offset: len(wasm), Msg: "memory.init or data.drop without a data count section"}
	}
	for _, e := range m.exports {
		if e.Kind == ExternFunc && int(e.Index) >= len(m.funcTypes) {
			return nil, &FormatError{Section: secExport, Func: -1, Offset: len(wasm),
				Msg: fmt.Sprintf("export %q: function %d out of range (%d functions)", e.Name, e.Index, len(m.funcTypes))}
		}
	}
	return m, nil
}

// vec reads a count then calls each that many times.
func (d *sectionDecoder) vec(each func() error) error {
	var n uint32
	return d.vecN(&n, each)
}

// boundedVec is vec for a vector whose count, plus base, may not pass max (zero: no bound).
func (d *sectionDecoder) boundedVec(what string, base, max int, each func() error) error {
	save := d.r.pos
	n, err := d.r.u32()
	if err != nil {
		return err
	}
	if err := (Bounds{}).check(what, base+int(n), max); err != nil {
		return err
	}
	d.r.pos = save
	return d.vec(each)
}

// vecN is vec, storing the count in *n.
func (d *sectionDecoder) vecN(n *uint32, each func() error) error {
	var err error
	if *n, err = d.r.u32(); err != nil {
		return err
	}
	if int(*n) > d.r.left() { // every entry takes at least one byte
		return fmt.Errorf("count %d exceeds the %d bytes left", *n, d.r.left())
	}
	for i := uint32(0); i < *n; i++ {
		if err := each(); err != nil {
			return err
		}
	}
	return nil
}

func (d *sectionDecoder) valType() (ValType, error) {
	at := d.r.off()
	b, err := d.r.byte()
	if err != nil {
		return 0, err
	}
	if !validValType(b) {
		return 0, d.fail(at, fmt.Errorf("invalid value type 0x%02x", b))
	}
	return ValType(b), nil
}

func (d *sectionDecoder) limits() (flags byte, min, max uint32, hasMax bool, err error) {
	at := d.r.off()
	if flags, err = d.r.byte(); err != nil {
		return
	}
	if flags > 3 {
		err = d.fail(at, fmt.Errorf("unsupported limits flags 0x%02x (64-bit memories are not supported)", flags))
		return
	}
	if min, err = d.r.u32(); err != nil {
		return
	}
	if flags&1 != 0 {
		hasMax = true
		if max, err = d.r.u32(); err != nil {
			return
		}
		if max < min {
			err = d.fail(at, fmt.Errorf("limits maximum %d below minimum %d", max, min))
		}
	}
	return
}

// decodeTable reads a table type (of an import or of the table section at secIdx).
func (m *module) decodeTable(d *sectionDecoder, secIdx int, imported bool) error {
	at := d.r.off()
	b, err := d.r.byte()
	if err != nil {
		return err
	}
	if ValType(b) != FuncRef && ValType(b) != ExternRef {
		return d.fail(at, fmt.Errorf("invalid table element type 0x%02x", b))
	}
	start := d.r.pos
	flags, min, max, hasMax, err := d.limits()
	if err != nil {
		return err
	}
	if imported {
		if err := m.bounds.check("tables", len(m.tables)+1, m.bounds.Tables); err != nil {
			return err
		}
	}
	m.tables = append(m.tables, tableInfo{
		Table: Table{Elem: ValType(b), Min: min, Max: max, HasMax: hasMax, Imported: imported},
		flags: flags, secIdx: secIdx, limStart: start, limEnd: d.r.pos})
	return nil
}

func (d *sectionDecoder) globalType() error {
	if _, err := d.valType(); err != nil {
		return err
	}
	at := d.r.off()
	mut, err := d.r.byte()
	if err != nil {
		return err
	}
	if mut > 1 {
		return d.fail(at, fmt.Errorf("invalid global mutability 0x%02x", mut))
	}
	return nil
}

// constExpr reads a constant expression up to and including its end.
func (d *sectionDecoder) constExpr(ntypes int) ([]byte, error) {
	start := d.r.pos
	for {
		at := d.r.off()
		in, err := next(&d.r, ntypes)
		if err != nil {
			return nil, d.fail(at, fmt.Errorf("constant expression: %w", err))
		}
		switch in.op {
		case opEnd:
			return d.r.buf[start:d.r.pos], nil
		case opBlock, opLoop, opIf, opElse:
			return nil, d.fail(at, fmt.Errorf("constant expression: control instruction 0x%02x", in.op))
		}
	}
}

func (m *module) decodeTypes(d *sectionDecoder) error {
	return d.boundedVec("types", 0, m.bounds.Types, func() error {
		at := d.r.off()
		form, err := d.r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return d.fail(at, fmt.Errorf("unsupported type form 0x%02x (want func 0x60)", form))
		}
		var ft funcType
		for _, dst := range []*[]ValType{&ft.params, &ft.results} {
			if err := d.vec(func() error {
				v, err := d.valType()
				*dst = append(*dst, v)
				return err
			}); err != nil {
				return err
			}
		}
		m.types = append(m.types, ft)
		return nil
	})
}

func (d *sectionDecoder) typeIndex(ntypes int) (uint32, error) {
	at := d.r.off()
	t, err := d.r.u32()
	if err == nil && int(t) >= ntypes {
		err = d.fail(at, fmt.Errorf("type index %d out of range (%d types)", t, ntypes))
	}
	return t, err
}

func (m *module) decodeImports(d *sectionDecoder, secIdx int) error {
	return d.boundedVec("imports", 0, m.bounds.Imports, func() error {
		var im Import
		var err error
		if im.Module, err = d.r.name(); err != nil {
			return err
		}
		if im.Name, err = d.r.name(); err != nil {
			return err
		}
		at := d.r.off()
		k, err := d.r.byte()
		if err != nil {
			return err
		}
		im.Kind = ExternKind(k)
		switch im.Kind {
		case ExternFunc:
			t, err := d.typeIndex(len(m.types))
			if err != nil {
				return err
			}
			m.funcTypes = append(m.funcTypes, t)
			m.numImportedFuncs++
		case ExternTable:
			err = m.decodeTable(d, secIdx, true)
		case ExternMemory:
			start := d.r.pos
			flags, min, max, hasMax, err := d.limits()
			if err != nil {
				return err
			}
			if m.mem == nil {
				m.mem = &memInfo{imported: true, flags: flags, min: min, max: max, hasMax: hasMax,
					secIdx: secIdx, limStart: start, limEnd: d.r.pos}
			}
		case ExternGlobal:
			err = d.globalType()
			m.numImportedGlobals++
		default:
			return d.fail(at, fmt.Errorf("import %q %q: unsupported kind 0x%02x", im.Module, im.Name, k))
		}
		m.imports = append(m.imports, im)
		return err
	})
}

func (m *module) decodeFunctions(d *sectionDecoder) error {
	return d.boundedVec("functions", 0, m.bounds.Functions, func() error {
		t, err := d.typeIndex(len(m.types))
		m.funcTypes = append(m.funcTypes, t)
		return err
	})
}

func (m *module) decodeMemories(d *sectionDecoder, secIdx int) error {
	return d.vec(func() error {
		start := d.r.pos
		flags, min, max, hasMax, err := d.limits()
		if err != nil {
			return err
		}
		if m.mem == nil {
			m.mem = &memInfo{flags: flags, min: min, max: max, hasMax: hasMax,
				secIdx: secIdx, limStart: start, limEnd: d.r.pos}
		}
		return nil
	})
}

func (m *module) decodeExports(d *sectionDecoder) error {
	seen := map[string]bool{}
	return d.boundedVec("exports", 0, m.bounds.Exports, func() error {
		at := d.r.off()
		var e Export
		var err error
		if e.Name, err = d.r.name(); err != nil {
			return err
		}
		if seen[e.Name] {
			return d.fail(at, fmt.Errorf("duplicate export %q", e.Name))
		}
		seen[e.Name] = true
		k, err := d.r.byte()
		if err != nil {
			return err
		}
		if k > 3 {
			return d.fail(at, fmt.Errorf("export %q: unsupported kind 0x%02x", e.Name, k))
		}
		e.Kind = ExternKind(k)
		if e.Index, err = d.r.u32(); err != nil {
			return err
		}
		m.exports = append(m.exports, e)
		return nil
	})
}

// element reads one element segment and returns how many references it holds.
func (d *sectionDecoder) element(ntypes int) (uint32, error) {
	at := d.r.off()
	flags, err := d.r.u32()
	if err != nil {
		return 0, err
	}
	if flags > 7 {
		return 0, d.fail(at, fmt.Errorf("invalid element segment flags %d", flags))
	}
	if flags&2 != 0 && flags&1 == 0 { // explicit table index
		if _, err := d.r.u32(); err != nil {
			return 0, err
		}
	}
	if flags&1 == 0 { // active: offset
		if _, err := d.constExpr(ntypes); err != nil {
			return 0, err
		}
	}
	if flags&3 != 0 { // elemkind or reftype
		at := d.r.off()
		b, err := d.r.byte()
		if err != nil {
			return 0, err
		}
		if flags&4 == 0 && b != 0 {
			return 0, d.fail(at, fmt.Errorf("invalid element kind 0x%02x", b))
		}
		if flags&4 != 0 && ValType(b) != FuncRef && ValType(b) != ExternRef {
			return 0, d.fail(at, fmt.Errorf("invalid element reference type 0x%02x", b))
		}
	}
	var n uint32
	err = d.vecN(&n, func() error {
		if flags&4 != 0 {
			_, err := d.constExpr(ntypes)
			return err
		}
		_, err := d.r.u32()
		return err
	})
	return n, err
}

func (m *module) decodeCode(d *sectionDecoder) error {
	return d.vec(func() error {
		at := d.r.off()
		size, err := d.r.u32()
		if err != nil {
			return err
		}
		body, err := d.r.bytes(int(size))
		if err != nil {
			return d.fail(at, fmt.Errorf("function body size %d exceeds the %d bytes left", size, d.r.left()))
		}
		cb := codeBody{offset: d.r.off() - int(size), body: body}
		fn := m.numImportedFuncs + len(m.code)
		if fn >= len(m.funcTypes) {
			return d.fail(at, fmt.Errorf("function body %d without a declaration (%d declared)", len(m.code), len(m.funcTypes)-m.numImportedFuncs))
		}
		if err := m.scanBody(&cb, fn); err != nil {
			return err
		}
		m.code = append(m.code, cb)
		return nil
	})
}

// scanBody decodes a function body's locals and checks its instructions decode and nest.
func (m *module) scanBody(cb *codeBody, fn int) error {
	r := reader{buf: cb.body, base: cb.offset}
	fail := func(at int, err error) error { return formatErr(secCode, fn, at, err) }
	n, err := r.u32()
	if err != nil {
		return fail(r.off(), fmt.Errorf("locals: %w", err))
	}
	for i := uint32(0); i < n; i++ {
		at := r.off()
		c, err := r.u32()
		if err != nil {
			return fail(at, fmt.Errorf("locals: %w", err))
		}
		b, err := r.byte()
		if err != nil {
			return fail(at, fmt.Errorf("locals: %w", err))
		}
		if !validValType(b) {
			return fail(at, fmt.Errorf("locals: invalid value type 0x%02x", b))
		}
		cb.nlocals += uint64(c)
		if cb.nlocals > 50000 {
			return fail(at, fmt.Errorf("locals: %d locals is above the limit of 50000", cb.nlocals))
		}
	}
	cb.codeStart = r.pos
	nlocals := uint64(len(m.types[m.funcTypes[fn]].params)) + cb.nlocals
	depth := 0
	for {
		if r.done() {
			return fail(r.off(), errors.New("function body has no final end"))
		}
		at := r.off()
		in, err := next(&r, len(m.types))
		if err != nil {
			if errors.Is(err, errEOF) {
				return fail(at, fmt.Errorf("instruction 0x%02x truncated", in.op))
			}
			return fail(at, err)
		}
		switch in.op {
		case opBlock, opLoop, opIf:
			depth++
		case opEnd:
			if depth == 0 {
				if !r.done() {
					return fail(r.off(), fmt.Errorf("%d bytes after the function's final end", r.left()))
				}
				return nil
			}
			depth--
		case opBr, opBrIf:
			if in.imm > int64(depth) {
				return fail(at, fmt.Errorf("branch depth %d exceeds the %d enclosing blocks", in.imm, depth+1))
			}
		case opLocalGet, opLocalSet, opLocalTee:
			// Rewrite adds locals after the declared ones: an index past them is checked here,
			// since in the rewritten module it would be valid and name a local of the
			// instrumentation.
			if uint64(in.imm) >= nlocals {
				return fail(at, fmt.Errorf("local %d out of range (%d locals)", in.imm, nlocals))
			}
		case opGlobalGet, opGlobalSet:
			// Likewise for the globals Rewrite adds (the stop flag, the depth budget...).
			if n := m.numImportedGlobals + m.numGlobals; in.imm >= int64(n) {
				return fail(at, fmt.Errorf("global %d out of range (%d globals)", in.imm, n))
			}
		case opPrefixFC:
			if in.sub == fcMemoryInit || in.sub == fcDataDrop {
				m.usesDataInstr = true
			}
		}
	}
}

func (m *module) decodeData(d *sectionDecoder) error {
	return d.boundedVec("data segments", 0, m.bounds.DataSegments, func() error {
		at := d.r.off()
		var s dataSeg
		var err error
		if s.flags, err = d.r.u32(); err != nil {
			return err
		}
		if s.flags > 2 {
			return d.fail(at, fmt.Errorf("invalid data segment flags %d", s.flags))
		}
		if s.flags == 2 {
			if s.mem, err = d.r.u32(); err != nil {
				return err
			}
		}
		if s.flags != 1 {
			if s.offsetExpr, err = d.constExpr(len(m.types)); err != nil {
				return err
			}
			// i32.const N; end
			er := reader{buf: s.offsetExpr}
			if op, _ := er.byte(); op == opI32Const {
				if v, err := er.sleb(32); err == nil {
					if end, _ := er.byte(); end == opEnd && er.done() {
						s.constOff, s.constOK = uint32(v), true
					}
				}
			}
		}
		n, err := d.r.u32()
		if err != nil {
			return err
		}
		if s.init, err = d.r.bytes(int(n)); err != nil {
			return d.fail(at, fmt.Errorf("data segment size %d exceeds the %d bytes left", n, d.r.left()))
		}
		m.data = append(m.data, s)
		return nil
	})
}

// Inspect parses and structurally checks the module: every section and every instruction of
// every function body is decoded (it does not type-check; wazero's compiler does). Errors are
// *FormatError values naming the section, function, problem and byte offset. Inspect never
// panics, whatever the input.
func Inspect(wasm []byte) (*Info, error) {
	return InspectWithin(wasm, Bounds{})
}

// InspectWithin is Inspect for a module that must stay within b: it returns a *BoundError as
// soon as one of its counts passes a bound, before decoding (and allocating for) the rest.
func InspectWithin(wasm []byte, b Bounds) (*Info, error) {
	m, err := parseWithin(wasm, b)
	if err != nil {
		return nil, err
	}
	info := &Info{
		Imports:         m.imports,
		Exports:         m.exports,
		Functions:       len(m.funcTypes) - m.numImportedFuncs,
		CodeBytes:       m.codeBytes,
		Globals:         m.numGlobals,
		ElementSegments: m.elemSegments,
		Elements:        m.elements,
		DataSegments:    len(m.data),
		HasStart:        m.hasStart,
		exportTypes:     map[string]funcType{},
	}
	for _, t := range m.tables {
		info.Tables = append(info.Tables, t.Table)
	}
	if m.mem != nil {
		info.HasMemory = true
		info.MemoryImported = m.mem.imported
		info.MemoryMin = m.mem.min
		info.MemoryMax = m.mem.max
		info.HasMemoryMax = m.mem.hasMax
	}
	for _, e := range m.exports {
		if e.Kind == ExternFunc {
			info.exportTypes[e.Name] = m.types[m.funcTypes[e.Index]]
		}
	}
	return info, nil
}
