package wasmbin

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/testutil"
)

func TestInspect(t *testing.T) {
	info, err := Inspect(testutil.Testdata(t, "control.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasMemory || info.MemoryImported || info.MemoryMin != 1 || !info.HasMemoryMax || info.MemoryMax != 4 {
		t.Errorf("memory: %+v", info)
	}
	if info.DataSegments != 3 || info.HasStart || info.Functions != 18 || len(info.Imports) != 0 {
		t.Errorf("counts: data %d start %v functions %d imports %d", info.DataSegments, info.HasStart, info.Functions, len(info.Imports))
	}
	params, results, ok := info.ExportFuncType("divmod")
	if !ok || !reflect.DeepEqual(params, []ValType{I32, I32}) || !reflect.DeepEqual(results, []ValType{I32, I32}) {
		t.Errorf("divmod: %v -> %v, %v", params, results, ok)
	}
	if _, _, ok := info.ExportFuncType("memory"); ok {
		t.Error("memory reported as a function")
	}
	if _, _, ok := info.ExportFuncType("nope"); ok {
		t.Error("unknown export reported")
	}

	info, err = Inspect(testutil.Testdata(t, "goprog.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Imports) == 0 || info.Imports[0].Module != "wasi_snapshot_preview1" || info.Imports[0].Kind != ExternFunc {
		t.Errorf("go imports: %+v", info.Imports)
	}
	if _, _, ok := info.ExportFuncType("_start"); !ok {
		t.Error("go: no _start")
	}
	t.Logf("go wasip1: %d functions, %d data segments, memory min %d pages", info.Functions, info.DataSegments, info.MemoryMin)
}

// oneFunc builds a module with one function type () -> () and one function with body code (after
// the locals; the final end must be included).
func oneFunc(code ...byte) []byte {
	body := append([]byte{0}, code...)
	m := append([]byte(nil), wasmMagic...)
	m = append(m, secType, 4, 1, 0x60, 0, 0)
	m = append(m, secFunction, 2, 1, 0)
	m = append(m, secCode, byte(len(body)+2), 1, byte(len(body)))
	return append(m, body...)
}

func TestInspectErrors(t *testing.T) {
	good := oneFunc(0x01, 0x0b)
	if _, err := Inspect(good); err != nil {
		t.Fatalf("good module: %v", err)
	}
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "bad magic number) at offset 0x0"},
		{"magic", []byte("\x00asn\x01\x00\x00\x00"), "bad magic"},
		{"version", []byte("\x00asm\x02\x00\x00\x00"), "unsupported binary version"},
		{"section size", append(append([]byte(nil), wasmMagic...), secType, 9, 0), "section 1 (type): section size 9 exceeds the 1 bytes left"},
		{"atomics", oneFunc(0xfe, 0x10, 0x02, 0x00, 0x0b), "section 10 (code): function 0: unknown opcode 0xfe 0x10 (atomics are not supported) at offset 0x17"},
		{"unknown opcode", oneFunc(0x27, 0x0b), "function 0: unknown opcode 0x27 at offset 0x17"},
		{"unknown fc", oneFunc(0xfc, 0x12, 0x0b), "unknown opcode 0xfc 0x12"},
		{"unknown simd", oneFunc(0xfd, 0x9a, 0x01, 0x0b), "unknown opcode 0xfd 0x9a"},
		{"no end", oneFunc(0x01), "function body has no final end"},
		{"after end", oneFunc(0x0b, 0x01), "1 bytes after the function's final end"},
		{"branch depth", oneFunc(0x0c, 0x01, 0x0b), "branch depth 1 exceeds"},
		{"block type", oneFunc(0x02, 0x05, 0x0b, 0x0b), "block type index 5 out of range"},
		{"truncated const", oneFunc(0x41, 0x80), "instruction 0x41 truncated"},
		{"order", append(append([]byte(nil), good...), secType, 1, 0), "section 1 (type): section out of order or repeated"},
		{"unknown section", append(append([]byte(nil), wasmMagic...), 14, 0), "unknown section id 14"},
		// Indices past the module's own locals and globals would name the instrumentation's
		// after Rewrite (a guest resetting its depth budget or its table count): refused.
		{"global index", oneFunc(0x41, 0x00, 0x24, 0x00, 0x0b), "function 0: global 0 out of range (0 globals)"},
		{"local index", oneFunc(0x20, 0x00, 0x1a, 0x0b), "function 0: local 0 out of range (0 locals)"},
		{"extra body", append(append([]byte(nil), wasmMagic...), secType, 4, 1, 0x60, 0, 0, secFunction, 2, 1, 0,
			secCode, 7, 2, 2, 0, 0x0b, 2, 0, 0x0b), "function body 1 without a declaration (1 declared)"},
		{"bodies", append(append([]byte(nil), wasmMagic...), secType, 4, 1, 0x60, 0, 0, secFunction, 2, 1, 0), "1 function declarations but 0 function bodies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.wasm)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (%T), want a *FormatError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to contain %q", err, tt.want)
			}
			if _, err := Rewrite(tt.wasm, Options{Instrument: true}); err == nil {
				t.Fatal("Rewrite accepted it")
			}
		})
	}
}

// Every truncation of a valid module is decoded without panicking; those cut inside a section
// are errors.
func TestInspectTruncated(t *testing.T) {
	for _, name := range []string{"control.wasm", "simd.wasm", "tail.wasm"} {
		wasm := testutil.Testdata(t, name)
		m, err := parse(wasm)
		if err != nil {
			t.Fatal(err)
		}
		boundary := map[int]bool{8: true}
		for _, s := range m.sections {
			boundary[s.offset+len(s.payload)] = true
		}
		for n := 0; n < len(wasm); n++ {
			if _, err := Inspect(wasm[:n]); err == nil && !boundary[n] {
				t.Errorf("%s[:%d]: no error", name, n)
			}
		}
	}
}
