# Test fixtures of sandbox/internal/wasmbin: WAT modules, a Go wasip1 program and a C
# wasm32-wasi program, all rewritten and compared against the originals by the tests.

WASMBIN_TD := sandbox/internal/wasmbin/testdata
WASMBIN_WAT := $(wildcard $(WASMBIN_TD)/*.wat)

WASM += $(WASMBIN_WAT:.wat=.wasm) $(WASMBIN_TD)/goprog.wasm $(WASMBIN_TD)/cprog.wasm

$(WASMBIN_TD)/%.wasm: $(WASMBIN_TD)/%.wat
	wat2wasm --enable-tail-call --debug-names -o $@ $<

$(WASMBIN_TD)/goprog.wasm: $(WASMBIN_TD)/goprog/main.go
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./$(WASMBIN_TD)/goprog

$(WASMBIN_TD)/cprog.wasm: $(WASMBIN_TD)/cprog.c
	clang --target=wasm32-wasi -O2 -o $@ $<
