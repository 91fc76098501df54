package wasmbin

import "fmt"

// rewriteCode re-encodes every function body with the instrumentation opt asks for.
func (rw *rewriter) rewriteCode() error {
	m := rw.m
	ci := m.sectionIndex(secCode)
	if ci < 0 {
		return nil
	}
	out := appendU32(make([]byte, 0, len(m.sections[ci].payload)*5/4+64), uint32(len(m.code)))
	for i, cb := range m.code {
		fn := m.numImportedFuncs + i
		b, err := rw.rewriteBody(cb, fn, m.types[m.funcTypes[fn]])
		if err != nil {
			return err
		}
		out = appendU32(out, uint32(len(b)))
		out = append(out, b...)
	}
	rw.newPayload[ci] = out
	return nil
}

// restoreDepth gives back the frame's unit of depth budget: it stores the value the function
// saw at entry (in local d), which is the current value plus one, since every call it made
// returned its unit (or trapped, and then nothing runs after).
func (rw *rewriter) restoreDepth(b []byte, d uint32) []byte {
	b = append(b, opLocalGet)
	b = appendU32(b, d)
	b = append(b, opGlobalSet)
	return appendU32(b, rw.gDepth)
}

// rewriteBody instruments one function body. Added locals go after every existing one, so no
// local index changes: cnt (loop countdown), g (memory.grow result) and d (depth at entry).
func (rw *rewriter) rewriteBody(cb codeBody, fn int, ft funcType) ([]byte, error) {
	inst, track := rw.opt.Instrument, rw.opt.TrackGrow
	cnt := uint32(uint64(len(ft.params)) + cb.nlocals)
	g, d := cnt+1, cnt+2
	code := make([]byte, 0, len(cb.body)+len(cb.body)/4+64)
	r := reader{buf: cb.body, pos: cb.codeStart, base: cb.offset}
	depth := 0
	// With Yield, loops without params get an outer loop $Y (see yieldLoop); wrapped[i] is the
	// number of $Y labels among the first i+1 open blocks, to fix up branch depths.
	wrapped := rw.wrapped[:0]
	hasLoop, hasGrow, hasTableGrow := false, false, false
	for {
		start := r.pos
		in, err := next(&r, len(rw.m.types))
		if err != nil { // parse decoded this body already; kept for safety
			return nil, formatErr(secCode, fn, r.base+start, err)
		}
		raw := cb.body[start:r.pos]
		if rw.opt.Yield && (in.op == opCall || in.op == opReturnCall || in.op == opRefFunc) {
			raw = appendU32(append(rw.scratch[:0], in.op), rw.fn(uint32(in.imm)))
			rw.scratch = raw
		}
		if n := len(wrapped); n > 0 && wrapped[n-1] > 0 && (in.op == opBr || in.op == opBrIf || in.op == opBrTable) {
			raw = rw.relabel(raw, wrapped)
		}
		switch {
		case in.op == opEnd && depth == 0:
			if inst {
				code = append(code, opEnd) // closes the wrapper block
				code = rw.restoreDepth(code, d)
			}
			code = append(code, opEnd)
			rw.wrapped = wrapped
			return rw.assembleBody(cb, code, inst, hasLoop, inst || hasGrow || hasTableGrow, hasTableGrow, cnt, ft), nil
		case in.op == opEnd:
			depth--
			code = append(code, raw...)
			if n := len(wrapped); n > 0 {
				if outer(wrapped[:n-1]) < wrapped[n-1] {
					code = append(code, opEnd) // closes $Y
				}
				wrapped = wrapped[:n-1]
			}
		case in.op == opBlock, in.op == opIf:
			depth++
			code = append(code, raw...)
			wrapped = append(wrapped, outer(wrapped))
		case in.op == opLoop && rw.opt.Yield && rw.noParams(in.imm):
			depth++
			hasLoop = true
			wrapped = append(wrapped, outer(wrapped)+1)
			code = rw.yieldLoop(code, raw, cnt)
		case in.op == opLoop:
			depth++
			code = append(code, raw...)
			wrapped = append(wrapped, outer(wrapped))
			if inst {
				hasLoop = true
				code = append(code, opLocalGet)
				code = appendU32(code, cnt)
				code = append(code, opI32Const, 1, opI32Sub, opLocalTee)
				code = appendU32(code, cnt)
				code = append(code, opI32Eqz, opIf, 0x40, opI32Const)
				code = appendS64(code, int64(rw.opt.CheckInterval))
				code = append(code, opLocalSet)
				code = appendU32(code, cnt)
				if rw.opt.Yield {
					code = append(code, opCall)
					code = appendU32(code, rw.yieldFunc)
				}
				code = append(code, opGlobalGet)
				code = appendU32(code, rw.gStop)
				if rw.opt.Yield {
					code = append(code, opI32Or)
				}
				code = append(code, opIf, 0x40, opUnreachable, opEnd, opEnd)
			}
		case in.op == opReturn && inst:
			code = append(code, opBr)
			code = appendU32(code, uint32(depth+outer(wrapped)))
		case (in.op == opReturnCall || in.op == opReturnCallIn) && inst:
			code = rw.restoreDepth(code, d)
			code = append(code, raw...)
		case in.op == opMemoryGrow && track:
			hasGrow = true
			code = append(code, raw...)
			code = append(code, opLocalTee)
			code = appendU32(code, g)
			code = append(code, opI32Const, 0x7f, opI32Eq, opIf, 0x40, opI32Const, 1, opGlobalSet)
			code = appendU32(code, rw.gGrow)
			code = append(code, opEnd, opLocalGet)
			code = appendU32(code, g)
		case in.op == opPrefixFC && in.sub == fcTableGrow && rw.opt.MemoryBudget != 0:
			if in.imm >= int64(len(rw.m.tables)) {
				return nil, formatErr(secCode, fn, r.base+start, fmt.Errorf("table.grow: table %d out of range (%d tables)", in.imm, len(rw.m.tables)))
			}
			hasTableGrow = true
			code = rw.tableGrow(code, raw, uint32(in.imm), cnt)
		default:
			code = append(code, raw...)
		}
	}
}

// tableGrow appends table.grow t (raw) guarded by Options.MemoryBudget, with the locals
// assembleBody adds for it (tdelta i32, and one local per reference type):
//
//	local.set tdelta; local.set tref
//	global.get elems; i64.extend_i32_u; local.get tdelta; i64.extend_i32_u; i64.add
//	i64.const 3; i64.shl                                           ;; bytes of the tables after
//	memory.size; i64.extend_i32_u; i64.const 16; i64.shl; i64.add  ;; with a memory
//	i64.const budget; i64.gt_u
//	if (result i32)
//	  i32.const 2; global.set grow_failed; i32.const -1
//	else
//	  local.get tref; local.get tdelta; table.grow t; local.tee g
//	  i32.const -1; i32.ne
//	  if global.get elems; local.get tdelta; i32.add; global.set elems end
//	  local.get g
//	end
func (rw *rewriter) tableGrow(code, raw []byte, t, cnt uint32) []byte {
	g, tdelta, tref := cnt+1, cnt+3, cnt+4
	if rw.m.tables[t].Elem == ExternRef {
		tref = cnt + 5
	}
	code = append(code, opLocalSet)
	code = appendU32(code, tdelta)
	code = append(code, opLocalSet)
	code = appendU32(code, tref)
	code = append(code, opGlobalGet)
	code = appendU32(code, rw.gTables)
	code = append(code, opI64ExtendI32U, opLocalGet)
	code = appendU32(code, tdelta)
	code = append(code, opI64ExtendI32U, opI64Add, opI64Const, 3, opI64Shl)
	if rw.m.mem != nil {
		code = append(code, opMemorySize, 0, opI64ExtendI32U, opI64Const, 16, opI64Shl, opI64Add)
	}
	code = append(code, opI64Const)
	code = appendS64(code, int64(rw.opt.MemoryBudget))
	code = append(code, opI64GtU, opIf, byte(I32), opI32Const, 2, opGlobalSet)
	code = appendU32(code, rw.gGrow)
	code = append(code, opI32Const, 0x7f, opElse, opLocalGet)
	code = appendU32(code, tref)
	code = append(code, opLocalGet)
	code = appendU32(code, tdelta)
	code = append(code, raw...)
	code = append(code, opLocalTee)
	code = appendU32(code, g)
	code = append(code, opI32Const, 0x7f, opI32Ne, opIf, 0x40, opGlobalGet)
	code = appendU32(code, rw.gTables)
	code = append(code, opLocalGet)
	code = appendU32(code, tdelta)
	code = append(code, opI32Add, opGlobalSet)
	code = appendU32(code, rw.gTables)
	code = append(code, opEnd, opLocalGet)
	code = appendU32(code, g)
	return append(code, opEnd)
}

func (rw *rewriter) assembleBody(cb codeBody, code []byte, inst, hasLoop, addLocals, tableLocals bool, cnt uint32, ft funcType) []byte {
	b := make([]byte, 0, cb.codeStart+len(code)+48)
	locals := cb.body[:cb.codeStart]
	if addLocals {
		r := reader{buf: locals}
		n, _ := r.u32()
		if tableLocals {
			n += 3
		}
		b = appendU32(b, n+1)
		b = append(b, locals[r.pos:]...)
		b = append(b, 3, byte(I32))
		if tableLocals { // tdelta, then a local of each reference type (tableGrow)
			b = append(b, 1, byte(I32), 1, byte(FuncRef), 1, byte(ExternRef))
		}
	} else {
		b = append(b, locals...)
	}
	if inst {
		if rw.opt.Yield {
			b = rw.entryYield(b, cnt)
		} else {
			b = rw.entry(b, cnt)
		}
		if hasLoop {
			b = append(b, opI32Const)
			b = appendS64(b, int64(rw.opt.CheckInterval))
			b = append(b, opLocalSet)
			b = appendU32(b, cnt)
		}
		b = append(b, opBlock)
		b = append(b, rw.blockTypeFor(ft.results)...)
	}
	return append(b, code...)
}

// entry appends the function entry check: one branch for both checks, trap if stopped or if the
// depth budget is spent (before touching it, so the host finds 0 after a depth trap), then take
// one unit of depth.
//
//	global.get depth; local.tee d; i32.eqz; global.get stop; i32.or
//	if unreachable end
//	local.get d; i32.const 1; i32.sub; global.set depth
func (rw *rewriter) entry(b []byte, cnt uint32) []byte {
	d := cnt + 2
	b = rw.spentOrStopped(b, d)
	b = append(b, opIf, 0x40, opUnreachable, opEnd)
	return rw.takeDepth(b, d)
}

// spentOrStopped appends the test both entry checks start with, leaving
// the depth in local d:
//
//	global.get depth; local.tee d; i32.eqz; global.get stop; i32.or
func (rw *rewriter) spentOrStopped(b []byte, d uint32) []byte {
	b = append(b, opGlobalGet)
	b = appendU32(b, rw.gDepth)
	b = append(b, opLocalTee)
	b = appendU32(b, d)
	b = append(b, opI32Eqz, opGlobalGet)
	b = appendU32(b, rw.gStop)
	return append(b, opI32Or)
}

func (rw *rewriter) takeDepth(b []byte, d uint32) []byte {
	b = append(b, opLocalGet)
	b = appendU32(b, d)
	b = append(b, opI32Const, 1, opI32Sub, opGlobalSet)
	return appendU32(b, rw.gDepth)
}

// entryYield appends the function entry check of Options.Yield: entry's checks plus the call
// countdown, still one branch on the common path. The countdown goes through local cnt (the
// loop countdown, set after this).
//
//	global.get depth; local.tee d; i32.eqz; global.get stop; i32.or
//	global.get calls; local.tee cnt; i32.eqz; i32.or
//	if
//	  local.get d; i32.eqz; global.get stop; i32.or; if unreachable end
//	  call yield; if unreachable end
//	  i32.const CheckInterval; local.set cnt
//	end
//	local.get cnt; i32.const 1; i32.sub; global.set calls
//	local.get d; i32.const 1; i32.sub; global.set depth
func (rw *rewriter) entryYield(b []byte, cnt uint32) []byte {
	d := cnt + 2
	b = rw.spentOrStopped(b, d)
	b = append(b, opGlobalGet)
	b = appendU32(b, rw.gCalls)
	b = append(b, opLocalTee)
	b = appendU32(b, cnt)
	b = append(b, opI32Eqz, opI32Or, opIf, 0x40)
	{
		b = append(b, opLocalGet)
		b = appendU32(b, d)
		b = append(b, opI32Eqz, opGlobalGet)
		b = appendU32(b, rw.gStop)
		b = append(b, opI32Or, opIf, 0x40, opUnreachable, opEnd, opCall)
		b = appendU32(b, rw.yieldFunc)
		b = append(b, opIf, 0x40, opUnreachable, opEnd, opI32Const)
		b = appendS64(b, int64(rw.opt.CheckInterval))
		b = append(b, opLocalSet)
		b = appendU32(b, cnt)
	}
	b = append(b, opEnd, opLocalGet)
	b = appendU32(b, cnt)
	b = append(b, opI32Const, 1, opI32Sub, opGlobalSet)
	b = appendU32(b, rw.gCalls)
	return rw.takeDepth(b, d)
}

// outer returns the number of $Y labels open (the last entry of wrapped).
func outer(wrapped []int) int {
	if len(wrapped) == 0 {
		return 0
	}
	return wrapped[len(wrapped)-1]
}

// noParams reports whether block type bt takes no parameters.
func (rw *rewriter) noParams(bt int64) bool {
	return bt < 0 || len(rw.m.types[bt].params) == 0
}

// relabel re-encodes the branch instruction raw (br, br_if or br_table) with each label depth
// increased by the number of $Y labels (see yieldLoop) between the branch and its target.
// wrapped is as in rewriteBody; a label past the open blocks is the function's.
func (rw *rewriter) relabel(raw []byte, wrapped []int) []byte {
	n := len(wrapped)
	fix := func(l uint32) uint32 {
		t := n - 1 - int(l) // index of the target in wrapped, -1 for the function
		if t < 0 {
			return l + uint32(wrapped[n-1])
		}
		return l + uint32(wrapped[n-1]-wrapped[t])
	}
	r := reader{buf: raw, pos: 1}
	out := append(rw.relabeled[:0], raw[0])
	count := uint32(0)
	if raw[0] == opBrTable {
		count, _ = r.u32() // next decoded it already
		out = appendU32(out, count)
	}
	for i := uint32(0); i <= count; i++ {
		l, _ := r.u32()
		out = appendU32(out, fix(l))
	}
	rw.relabeled = out
	return out
}

// yieldLoop appends a loop without params (raw, opcode and block type) as two loops, so that
// the call to yield is outside the loop the guest spins in (wazero's compiler keeps values live
// across a call in stack slots, and a call in the loop body, even one rarely taken, costs loads
// and stores on every iteration):
//
//	loop $Y (bt)
//	  block
//	    local.get cnt; br_if 0               ;; call only when $L's countdown ran out
//	    call yield; global.get stop; i32.or; if unreachable end
//	    i32.const CheckInterval+1; local.set cnt
//	  end
//	  loop $L (bt)
//	    local.get cnt; i32.const 1; i32.sub; local.tee cnt; i32.eqz
//	    if br $Y end                         ;; an if: wazero fuses the test and the branch
//	    BODY                                 ;; branches past $L skip $Y too (relabel)
//	  end
//	end
//
// cnt is never 0 outside these checks (entry sets it to CheckInterval), so entering $Y from
// outside does not call yield; re-entering $L after a yield decrements once more, hence
// CheckInterval+1 (an i32 wrapping above MaxInt32 is fine for an unsigned countdown). $L has no
// params, so the operand stack is empty at br $Y, and its results are $Y's.
func (rw *rewriter) yieldLoop(code, raw []byte, cnt uint32) []byte {
	code = append(code, raw...) // $Y
	code = append(code, opBlock, 0x40, opLocalGet)
	code = appendU32(code, cnt)
	code = append(code, opBrIf, 0, opCall)
	code = appendU32(code, rw.yieldFunc)
	code = append(code, opGlobalGet)
	code = appendU32(code, rw.gStop)
	code = append(code, opI32Or, opIf, 0x40, opUnreachable, opEnd, opI32Const)
	code = appendS64(code, int64(int32(rw.opt.CheckInterval+1)))
	code = append(code, opLocalSet)
	code = appendU32(code, cnt)
	code = append(code, opEnd)
	code = append(code, raw...) // $L
	code = append(code, opLocalGet)
	code = appendU32(code, cnt)
	code = append(code, opI32Const, 1, opI32Sub, opLocalTee)
	code = appendU32(code, cnt)
	return append(code, opI32Eqz, opIf, 0x40, opBr, 2, opEnd)
}
