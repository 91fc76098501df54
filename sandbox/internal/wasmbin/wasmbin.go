package wasmbin

import "fmt"

// Names of the globals Rewrite adds and exports when Options.Instrument, Options.TrackGrow or
// Options.MemoryBudget is set (GlobalTableElems only with MemoryBudget). All are mutable i32
// globals.
const (
	// GlobalStop is the stop flag: the host sets it to 1 at the deadline (api.MutableGlobal.Set
	// from any goroutine) and the guest traps with "unreachable" at its next check (a function
	// entry, or a loop header once every CheckInterval iterations).
	GlobalStop = "__edgefn_stop"
	// GlobalDepth is the remaining call-depth budget: every instrumented function decrements it
	// at entry and increments it at every exit; a function entered with 0 traps. The host sets it
	// before each call; Options.InitialDepth is its value at instantiation (start function,
	// _initialize).
	GlobalDepth = "__edgefn_depth"
	// GlobalGrowFailed is set to 1 by the guest whenever memory.grow returns -1 (Options.TrackGrow),
	// and to 2 when a table.grow is refused for Options.MemoryBudget. The guest never resets it;
	// the host may.
	GlobalGrowFailed = "__edgefn_grow_failed"
	// GlobalTableElems counts the elements of every table (Options.MemoryBudget): the sum of
	// the declared minimums at instantiation, plus every successful table.grow.
	GlobalTableElems = "__edgefn_table_elems"
)

// ExternKind is the kind of an import or export.
type ExternKind byte

// The four kinds of imports and exports, with their binary encodings.
const (
	ExternFunc   ExternKind = 0
	ExternTable  ExternKind = 1
	ExternMemory ExternKind = 2
	ExternGlobal ExternKind = 3
)

func (k ExternKind) String() string {
	switch k {
	case ExternFunc:
		return "func"
	case ExternTable:
		return "table"
	case ExternMemory:
		return "memory"
	case ExternGlobal:
		return "global"
	}
	return fmt.Sprintf("extern(0x%02x)", byte(k))
}

// ValType is a value type, with its binary encoding.
type ValType byte

// The value types of WebAssembly 2.0.
const (
	I32       ValType = 0x7f
	I64       ValType = 0x7e
	F32       ValType = 0x7d
	F64       ValType = 0x7c
	V128      ValType = 0x7b
	FuncRef   ValType = 0x70
	ExternRef ValType = 0x6f
)

func (v ValType) String() string {
	switch v {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	case FuncRef:
		return "funcref"
	case ExternRef:
		return "externref"
	}
	return fmt.Sprintf("valtype(0x%02x)", byte(v))
}

func validValType(b byte) bool {
	switch ValType(b) {
	case I32, I64, F32, F64, V128, FuncRef, ExternRef:
		return true
	}
	return false
}

// Import is one entry of the import section.
type Import struct {
	Module, Name string
	Kind         ExternKind
}

// Export is one entry of the export section. Index is in the index space of Kind (imports
// first, then definitions).
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// Info is what Inspect learns about a module.
type Info struct {
	Imports []Import
	Exports []Export
	// HasMemory reports whether the module has a memory 0, defined or imported (MemoryImported);
	// MemoryMin and MemoryMax (valid when HasMemoryMax) are in 64 KiB pages.
	HasMemory      bool
	MemoryImported bool
	MemoryMin      uint32
	MemoryMax      uint32
	HasMemoryMax   bool
	// Functions counts defined (not imported) functions; CodeBytes is the size of their bodies
	// (the code section).
	Functions int
	CodeBytes int
	// Tables lists every table, imported ones first.
	Tables []Table
	// Globals counts defined (not imported) globals.
	Globals int
	// ElementSegments counts the entries of the element section; Elements the references they
	// hold together.
	ElementSegments int
	Elements        uint64
	// DataSegments counts the entries of the data section.
	DataSegments int
	// HasStart reports whether the module has a start function.
	HasStart bool

	exportTypes map[string]funcType
}

// Table is a table's type: its element type and its limits in elements.
type Table struct {
	Elem     ValType
	Min, Max uint32
	HasMax   bool
	Imported bool
}

// ExportFuncType returns the signature of the exported function name; ok is false when the
// module exports no function by that name.
func (i *Info) ExportFuncType(name string) (params, results []ValType, ok bool) {
	ft, ok := i.exportTypes[name]
	if !ok {
		return nil, nil, false
	}
	return append([]ValType(nil), ft.params...), append([]ValType(nil), ft.results...), true
}

type funcType struct {
	params, results []ValType
}

func (a funcType) equal(b funcType) bool {
	if len(a.params) != len(b.params) || len(a.results) != len(b.results) {
		return false
	}
	for i := range a.params {
		if a.params[i] != b.params[i] {
			return false
		}
	}
	for i := range a.results {
		if a.results[i] != b.results[i] {
			return false
		}
	}
	return true
}

// FormatError reports a malformed (or unsupported) module: what is wrong and where.
type FormatError struct {
	// Section is the id of the section being decoded, or -1 for the module header.
	Section int
	// Func is the index (in the function index space, imports first) of the function whose body
	// is malformed, or -1.
	Func int
	// Offset is the byte offset in the module where the problem was found.
	Offset int
	// Msg says what is wrong.
	Msg string
}

func (e *FormatError) Error() string {
	s := ""
	if e.Section >= 0 {
		s = fmt.Sprintf("section %d (%s): ", e.Section, sectionName(byte(e.Section)))
	}
	if e.Func >= 0 {
		s += fmt.Sprintf("function %d: ", e.Func)
	}
	return s + fmt.Sprintf("%s at offset 0x%x", e.Msg, e.Offset)
}

// Bounds are the most a module may declare (InspectWithin). A zero field is no bound.
type Bounds struct {
	// Functions bounds the defined functions, CodeBytes the size of the code section.
	Functions, CodeBytes int
	// Tables bounds the tables, imported ones included.
	Tables int
	// Globals bounds the defined globals.
	Globals int
	// ElementSegments and DataSegments bound the entries of the element and data sections,
	// Elements the references of every element segment together.
	ElementSegments, DataSegments, Elements int
	// Types, Imports and Exports bound the entries of those sections.
	Types, Imports, Exports int
}

// check returns a *BoundError when count is over max (a zero max is no bound).
func (Bounds) check(what string, count, max int) error {
	if max > 0 && count > max {
		return &BoundError{What: what, Count: count, Max: max}
	}
	return nil
}

// BoundError reports a module with more of something than its Bounds allow.
type BoundError struct {
	// What is counted: "functions", "bytes of code", "tables", "globals", "element segments",
	// "element references", "data segments", "types", "imports" or "exports".
	What       string
	Count, Max int
}

func (e *BoundError) Error() string {
	return fmt.Sprintf("%d %s, over the bound of %d", e.Count, e.What, e.Max)
}

// LimitError reports that the module's memory minimum is above Options.MaxMemoryPages (Budget
// is zero), or that its memory and table minimums together are above Options.MemoryBudget.
type LimitError struct {
	MinPages, MaxPages uint32
	// TableElems is the sum of the tables' minimums; Budget is Options.MemoryBudget.
	TableElems, Budget uint64
}

func (e *LimitError) Error() string {
	if e.Budget != 0 {
		need := uint64(e.MinPages)*65536 + e.TableElems*TableElemBytes
		return fmt.Sprintf("memory and tables: the module needs at least %s (%d pages of memory and %d table elements of %d bytes) but the limit is %s: raise the memory limit or shrink the module's initial memory and tables",
			sizeString(need), e.MinPages, e.TableElems, TableElemBytes, sizeString(e.Budget))
	}
	return fmt.Sprintf("memory: the module needs at least %s (%d pages) but the limit is %s (%d pages): raise the memory limit or shrink the module's initial memory",
		mib(e.MinPages), e.MinPages, mib(e.MaxPages), e.MaxPages)
}

// sizeString formats a byte count in MiB (KiB below 1 MiB).
func sizeString(n uint64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.2f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}

func mib(pages uint32) string {
	kib := uint64(pages) * 64
	if kib%1024 == 0 {
		return fmt.Sprintf("%d MiB", kib/1024)
	}
	return fmt.Sprintf("%.2f MiB", float64(kib)/1024)
}

func sectionName(id byte) string {
	switch id {
	case secCustom:
		return "custom"
	case secType:
		return "type"
	case secImport:
		return "import"
	case secFunction:
		return "function"
	case secTable:
		return "table"
	case secMemory:
		return "memory"
	case secGlobal:
		return "global"
	case secExport:
		return "export"
	case secStart:
		return "start"
	case secElement:
		return "element"
	case secCode:
		return "code"
	case secData:
		return "data"
	case secDataCount:
		return "datacount"
	case secTag:
		return "tag"
	}
	return "unknown"
}
