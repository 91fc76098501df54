package wasmbin

import "fmt"

// Opcodes the rewriter and the structural checks care about.
const (
	opUnreachable   = 0x00
	opBlock         = 0x02
	opLoop          = 0x03
	opIf            = 0x04
	opElse          = 0x05
	opEnd           = 0x0b
	opBr            = 0x0c
	opBrIf          = 0x0d
	opBrTable       = 0x0e
	opReturn        = 0x0f
	opCall          = 0x10
	opReturnCall    = 0x12
	opReturnCallIn  = 0x13
	opLocalGet      = 0x20
	opLocalSet      = 0x21
	opLocalTee      = 0x22
	opGlobalGet     = 0x23
	opGlobalSet     = 0x24
	opMemorySize    = 0x3f
	opMemoryGrow    = 0x40
	opI32Const      = 0x41
	opI32Eqz        = 0x45
	opI32Eq         = 0x46
	opI32Add        = 0x6a
	opI32Sub        = 0x6b
	opI32Ne         = 0x47
	opI32Or         = 0x72
	opI64Const      = 0x42
	opI64GtU        = 0x56
	opI64Add        = 0x7c
	opI64Shl        = 0x86
	opI64ExtendI32U = 0xad
	opRefFunc       = 0xd2
	opPrefixFC      = 0xfc
	opPrefixFD      = 0xfd

	fcMemoryInit = 8
	fcDataDrop   = 9
	fcTableGrow  = 15
)

// instr is one decoded instruction: its opcode (sub is the second opcode of 0xfc/0xfd
// prefixed instructions) and, for the control instructions, the immediate that matters.
type instr struct {
	op  byte
	sub uint32
	// imm: the label of br/br_if; the block type (s33) of block/loop/if; the function index of
	// call, return_call and ref.func; the index of local.* and global.*; the first immediate of
	// 0xfc-prefixed instructions (the table of table.grow).
	imm int64
}

// errOpcode is returned for opcodes the decoder does not know; msg names them.
type errOpcode struct{ msg string }

func (e *errOpcode) Error() string { return e.msg }

// simdUnassigned lists the opcodes below 0x100 that the SIMD proposal leaves unassigned.
var simdUnassigned = [...]uint32{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2,
	0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee}

// next decodes one instruction and its immediates. ntypes bounds type indices in block types.
func next(r *reader, ntypes int) (instr, error) {
	var in instr
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	in.op = op
	switch {
	case op == 0x00, op == 0x01, op == opElse, op == opEnd, op == opReturn, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1:
		return in, nil
	case op == opBlock, op == opLoop, op == opIf:
		bt, err := r.sleb(33)
		if err != nil {
			return in, err
		}
		if bt < 0 {
			if bt != -64 && !validValType(byte(bt&0x7f)) {
				return in, fmt.Errorf("invalid block type 0x%02x", byte(bt&0x7f))
			}
		} else if bt >= int64(ntypes) {
			return in, fmt.Errorf("block type index %d out of range (%d types)", bt, ntypes)
		}
		in.imm = bt
		return in, nil
	case op == opBr, op == opBrIf:
		l, err := r.u32()
		in.imm = int64(l)
		return in, err
	case op == opBrTable:
		n, err := r.u32()
		if err != nil {
			return in, err
		}
		if int(n) > r.left() {
			return in, errEOF
		}
		for i := uint32(0); i <= n; i++ {
			if _, err := r.u32(); err != nil {
				return in, err
			}
		}
		return in, nil
	case op == opCall, op == opReturnCall, op == opRefFunc:
		f, err := r.u32()
		in.imm = int64(f)
		return in, err
	case op >= 0x20 && op <= 0x26, // local.*, global.*, table.get/set
		op == 0x3f, op == opMemoryGrow: // memory.size/grow: memory index
		v, err := r.u32()
		in.imm = int64(v)
		return in, err
	case op == 0x11, op == opReturnCallIn: // call_indirect: type, table
		if _, err := r.u32(); err != nil {
			return in, err
		}
		_, err := r.u32()
		return in, err
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return in, err
		}
		if n != 1 {
			return in, fmt.Errorf("typed select with %d types (want 1)", n)
		}
		b, err := r.byte()
		if err != nil {
			return in, err
		}
		if !validValType(b) {
			return in, fmt.Errorf("invalid value type 0x%02x in select", b)
		}
		return in, nil
	case op >= 0x28 && op <= 0x3e:
		return in, memarg(r)
	case op == opI32Const:
		_, err := r.sleb(32)
		return in, err
	case op == 0x42:
		_, err := r.sleb(64)
		return in, err
	case op == 0x43:
		_, err := r.bytes(4)
		return in, err
	case op == 0x44:
		_, err := r.bytes(8)
		return in, err
	case op == 0xd0: // ref.null
		b, err := r.byte()
		if err != nil {
			return in, err
		}
		if ValType(b) != FuncRef && ValType(b) != ExternRef {
			return in, fmt.Errorf("invalid reference type 0x%02x in ref.null", b)
		}
		return in, nil
	case op == opPrefixFC, op == opPrefixFD:
		sub, err := r.u32()
		if err != nil {
			return in, err
		}
		in.sub = sub
		if op == opPrefixFD {
			return in, fdImmediates(r, sub)
		}
		in.imm, err = fcImmediates(r, sub)
		return in, err
	case op == 0xfe: // threads (atomics): named in the error, not supported
		sub, err := r.u32()
		if err != nil {
			return in, err
		}
		return in, &errOpcode{fmt.Sprintf("unknown opcode 0xfe 0x%02x (atomics are not supported)", sub)}
	}
	return in, &errOpcode{fmt.Sprintf("unknown opcode 0x%02x", op)}
}

func memarg(r *reader) error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: a memory index follows
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.u32()
	return err
}

// fcImmediates reads the immediates of the 0xfc-prefixed instruction sub and returns the
// first one.
func fcImmediates(r *reader, sub uint32) (int64, error) {
	n := 0
	switch {
	case sub <= 7: // trunc_sat
	case sub == fcMemoryInit, sub == 12, sub == 10, sub == 14: // memory.init, table.init, memory.copy, table.copy
		n = 2
	case sub == fcDataDrop, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		n = 1
	default:
		return 0, &errOpcode{fmt.Sprintf("unknown opcode 0xfc 0x%02x", sub)}
	}
	var first int64
	for i := 0; i < n; i++ {
		v, err := r.u32()
		if err != nil {
			return 0, err
		}
		if i == 0 {
			first = int64(v)
		}
	}
	return first, nil
}

func fdImmediates(r *reader, sub uint32) error {
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads, store, load32_zero, load64_zero
		return memarg(r)
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 21 && sub <= 34: // extract_lane/replace_lane
		_, err := r.byte()
		return err
	case sub >= 84 && sub <= 91: // load/store lane
		if err := memarg(r); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0xff:
		for _, u := range simdUnassigned {
			if sub == u {
				return &errOpcode{fmt.Sprintf("unknown opcode 0xfd 0x%02x", sub)}
			}
		}
		return nil
	}
	return &errOpcode{fmt.Sprintf("unknown opcode 0xfd 0x%x", sub)}
}
