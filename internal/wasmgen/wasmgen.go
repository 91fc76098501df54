package wasmgen

// Reactor returns a valid ABI v1 reactor (memory of one page, edgefn_handle
// returning 0) with funcs more functions of the same type, globals immutable
// i32 globals and elemSegments passive element segments of one reference
// each. Every function is edgefn_handle's body: local.get 0; drop;
// i32.const 0.
func Reactor(funcs, globals, elemSegments int) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = section(m, 1, vec(1, []byte{0x60, 1, 0x7f, 1, 0x7f})) // (i32) -> i32
	m = section(m, 3, vec(funcs+1, make([]byte, funcs+1)))    // all of type 0
	m = section(m, 5, vec(1, []byte{0, 1}))                   // memory 1
	if globals > 0 {
		var g []byte
		for i := 0; i < globals; i++ {
			g = append(g, 0x7f, 0, 0x41, 0, 0x0b) // i32 const = i32.const 0
		}
		m = section(m, 6, vec(globals, g))
	}
	var ex []byte
	ex = append(append(uleb(ex, 6), "memory"...), 2, 0)
	ex = uleb(append(append(uleb(ex, 13), "edgefn_handle"...), 0), uint32(funcs))
	m = section(m, 7, vec(2, ex))
	if elemSegments > 0 {
		var e []byte
		for i := 0; i < elemSegments; i++ {
			e = append(e, 1, 0, 1, 0) // passive, funcref, [function 0]
		}
		m = section(m, 9, vec(elemSegments, e))
	}
	code := make([]byte, 0, 8*(funcs+1))
	for i := 0; i <= funcs; i++ {
		code = append(code, 7, 0, 0x20, 0, 0x1a, 0x41, 0, 0x0b)
	}
	return section(m, 10, vec(funcs+1, code))
}

func vec(n int, entries []byte) []byte { return append(uleb(nil, uint32(n)), entries...) }

func section(m []byte, id byte, payload []byte) []byte {
	return append(uleb(append(m, id), uint32(len(payload))), payload...)
}

func uleb(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
