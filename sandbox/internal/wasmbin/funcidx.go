package wasmbin

import "fmt"

// The yield import (Options.Yield) goes after every existing function import, so it takes
// function index numImportedFuncs and every defined function moves up by one. This file rewrites
// every place that names a function: exports, the start section, element segments, constant
// expressions (ref.func) and the "name" section (code is rewritten in code.go).

// yieldType is the signature of the yield import: () -> i32.
var yieldType = funcType{results: []ValType{I32}}

// fn maps a function index of the input to the output's.
func (rw *rewriter) fn(f uint32) uint32 {
	if rw.opt.Yield && f >= uint32(rw.m.numImportedFuncs) {
		return f + 1
	}
	return f
}

// typeIndex returns the index of a type equal to ft, appending one to newTypes if needed.
func (rw *rewriter) typeIndex(ft funcType) uint32 {
	for i, t := range rw.m.types {
		if t.equal(ft) {
			return uint32(i)
		}
	}
	for i, t := range rw.newTypes {
		if t.equal(ft) {
			return uint32(len(rw.m.types) + i)
		}
	}
	rw.newTypes = append(rw.newTypes, ft)
	return uint32(len(rw.m.types) + len(rw.newTypes) - 1)
}

// addYield adds the yield import and renumbers every function reference outside the code.
func (rw *rewriter) addYield() error {
	m := rw.m
	for _, im := range m.imports {
		if im.Module == YieldModule {
			return &FormatError{Section: secImport, Func: -1, Offset: 0,
				Msg: fmt.Sprintf("the module imports %q %q: module %q is reserved for the host (instrumented twice?)", im.Module, im.Name, YieldModule)}
		}
	}
	rw.yieldFunc = uint32(m.numImportedFuncs)
	var e []byte
	e = appendName(e, YieldModule)
	e = appendName(e, YieldName)
	e = append(e, byte(ExternFunc))
	e = appendU32(e, rw.typeIndex(yieldType))
	rw.extendSection(secImport, 1, e)

	for i, s := range m.sections {
		var p []byte
		var err error
		switch s.id {
		case secGlobal:
			p, err = rw.shiftGlobals(s.payload)
		case secExport:
			p, err = rw.shiftExports(s.payload)
		case secStart:
			r := reader{buf: s.payload}
			var f uint32
			if f, err = r.u32(); err == nil {
				p = appendU32(nil, rw.fn(f))
			}
		case secElement:
			p, err = rw.shiftElements(s.payload)
		default:
			continue
		}
		if err != nil { // parse decoded these sections already; kept for safety
			return formatErr(int(s.id), -1, s.offset, err)
		}
		rw.newPayload[i] = p
	}
	return nil
}

// appendConstExpr appends a constant expression (up to and including its end) from r with
// ref.func renumbered.
func (rw *rewriter) appendConstExpr(out []byte, r *reader) ([]byte, error) {
	for {
		start := r.pos
		in, err := next(r, len(rw.m.types))
		if err != nil {
			return nil, err
		}
		if in.op == opRefFunc {
			out = append(out, opRefFunc)
			out = appendU32(out, rw.fn(uint32(in.imm)))
		} else {
			out = append(out, r.buf[start:r.pos]...)
		}
		if in.op == opEnd {
			return out, nil
		}
	}
}

// copyVec reads a vector count from r, appends it to out and calls each that many times.
func copyVec(out []byte, r *reader, each func([]byte) ([]byte, error)) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, n)
	for i := uint32(0); i < n; i++ {
		if out, err = each(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (rw *rewriter) shiftGlobals(payload []byte) ([]byte, error) {
	r := reader{buf: payload}
	return copyVec(make([]byte, 0, len(payload)+8), &r, func(out []byte) ([]byte, error) {
		t, err := r.bytes(2) // value type, mutability
		if err != nil {
			return nil, err
		}
		return rw.appendConstExpr(append(out, t...), &r)
	})
}

func (rw *rewriter) shiftExports(payload []byte) ([]byte, error) {
	r := reader{buf: payload}
	return copyVec(make([]byte, 0, len(payload)+8), &r, func(out []byte) ([]byte, error) {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		k, err := r.byte()
		if err != nil {
			return nil, err
		}
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if ExternKind(k) == ExternFunc {
			idx = rw.fn(idx)
		}
		out = append(appendName(out, name), k)
		return appendU32(out, idx), nil
	})
}

func (rw *rewriter) shiftElements(payload []byte) ([]byte, error) {
	r := reader{buf: payload}
	return copyVec(make([]byte, 0, len(payload)+16), &r, func(out []byte) ([]byte, error) {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, flags)
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, t)
		}
		if flags&1 == 0 { // active: offset
			if out, err = rw.appendConstExpr(out, &r); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			b, err := r.byte()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return copyVec(out, &r, func(out []byte) ([]byte, error) {
			if flags&4 != 0 {
				return rw.appendConstExpr(out, &r)
			}
			f, err := r.u32()
			if err != nil {
				return nil, err
			}
			return appendU32(out, rw.fn(f)), nil
		})
	})
}

// Subsections of the "name" section that change.
const (
	nameModule    = 0 // the module's name (only checked)
	nameFunctions = 1 // name map keyed by function index
	nameLocals    = 2 // indirect name map keyed by function index
	nameLabels    = 3 // indirect name map keyed by function index (extended name section)
	nameData      = 9 // data segment names
)

// rewriteNames renumbers the functions in the "name" section (Options.Yield) and drops the data
// segment names when mergeData renumbered the segments. A name section it cannot decode is
// dropped: its function indices could be wrong, and wazero, which reads the module name, function
// names and local names subsections past their declared sizes, accepts a malformed one only at
// the very end of the module, where the sections Rewrite adds no longer let it be.
func (rw *rewriter) rewriteNames() {
	for i, s := range rw.m.sections {
		if s.id != secCustom || s.name != "name" || rw.drop[i] {
			continue
		}
		out, err := rw.names(s.payload, rw.opt.Yield)
		if err != nil {
			rw.drop[i] = true
			continue
		}
		if rw.opt.Yield || rw.dataMerged {
			rw.newPayload[i] = out
		}
	}
}

func (rw *rewriter) names(payload []byte, shift bool) ([]byte, error) {
	r := reader{buf: payload}
	if _, err := r.name(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(payload)+16)
	out = append(out, payload[:r.pos]...)
	for !r.done() {
		at := r.pos
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		switch {
		case id == nameData && rw.dataMerged:
		case id == nameModule:
			sr := reader{buf: sub}
			if _, err := sr.name(); err != nil || !sr.done() {
				return nil, fmt.Errorf("name subsection %d: not one name", id)
			}
			out = append(out, payload[at:r.pos]...)
		case id == nameFunctions || id == nameLocals || shift && id == nameLabels:
			sr := reader{buf: sub}
			p, err := copyVec(make([]byte, 0, len(sub)+8), &sr, func(p []byte) ([]byte, error) {
				f, err := sr.u32()
				if err != nil {
					return nil, err
				}
				p = appendU32(p, rw.fn(f))
				if id == nameFunctions {
					name, err := sr.name()
					return appendName(p, name), err
				}
				return copyVec(p, &sr, func(p []byte) ([]byte, error) {
					l, err := sr.u32()
					if err != nil {
						return nil, err
					}
					name, err := sr.name()
					return appendName(appendU32(p, l), name), err
				})
			})
			if err != nil {
				return nil, err
			}
			if !sr.done() {
				return nil, fmt.Errorf("name subsection %d: %d unused bytes", id, sr.left())
			}
			out = append(out, id)
			out = appendU32(out, uint32(len(p)))
			out = append(out, p...)
		default:
			out = append(out, payload[at:r.pos]...)
		}
	}
	return out, nil
}
