package wasmbin

// mergeGap is the shortest run of zero bytes that splits a merged data segment: a longer run
// costs less as a gap (fresh memory is zeroed) than as bytes to copy.
const mergeGap = 1024

// maxMergeSpan bounds the memory image mergeData builds.
const maxMergeSpan = 256 << 20

// mergeData replaces the data section with segments cut from the final initial-memory image,
// or leaves it alone when merging could change behaviour.
func (rw *rewriter) mergeData() {
	m := rw.m
	di := m.sectionIndex(secData)
	if di < 0 || len(m.data) < 2 || m.hasDataCount || m.usesDataInstr || m.mem == nil || m.mem.imported {
		return
	}
	lo, hi := uint64(1<<63), uint64(0)
	for _, s := range m.data {
		if s.flags == 1 || s.mem != 0 || !s.constOK {
			return
		}
		end := uint64(s.constOff) + uint64(len(s.init))
		if len(s.init) > 0 && uint64(s.constOff) < lo {
			lo = uint64(s.constOff)
		}
		if end > hi {
			hi = end
		}
	}
	// A segment past the initial memory makes instantiation fail; keep that failure as it is.
	if hi > uint64(m.mem.min)*65536 {
		return
	}
	if lo >= hi {
		return
	}
	if hi-lo > maxMergeSpan {
		return
	}
	img := make([]byte, hi-lo)
	for _, s := range m.data {
		copy(img[uint64(s.constOff)-lo:], s.init)
	}
	var segs []byte
	n := 0
	emit := func(from, to int) {
		segs = append(segs, 0, opI32Const)
		segs = appendS64(segs, int64(int32(uint32(lo)+uint32(from))))
		segs = append(segs, opEnd)
		segs = appendU32(segs, uint32(to-from))
		segs = append(segs, img[from:to]...)
		n++
	}
	start, zeros := -1, 0
	for i, c := range img {
		if c != 0 {
			if start < 0 {
				start = i
			}
			zeros = 0
			continue
		}
		zeros++
		if start >= 0 && zeros == mergeGap {
			emit(start, i+1-zeros)
			start = -1
		}
	}
	if start >= 0 {
		emit(start, len(img)-zeros)
	}
	rw.newPayload[di] = append(appendU32(nil, uint32(n)), segs...)
	rw.dataMerged = true // rewriteNames drops the segment names
}
