# Test fixtures of the sandbox package: WAT reactors (limits, traps, host API
# edge cases), a freestanding C reactor driven by its payload, a WASI C
# command and a Go wasip1 reactor.

SANDBOX_TD  := sandbox/testdata
SANDBOX_WAT := $(wildcard $(SANDBOX_TD)/*.wat)
SANDBOX_WASM := $(SANDBOX_WAT:.wat=.wasm) $(SANDBOX_TD)/script.wasm $(SANDBOX_TD)/cmd.wasm $(SANDBOX_TD)/goreactor.wasm

WASM += $(SANDBOX_WASM)

$(SANDBOX_WAT:.wat=.wasm): $(SANDBOX_TD)/%.wasm: $(SANDBOX_TD)/%.wat
	wat2wasm -o $@ $<

$(SANDBOX_TD)/script.wasm: $(SANDBOX_TD)/script.c
	clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry -o $@ $<

$(SANDBOX_TD)/cmd.wasm: $(SANDBOX_TD)/cmd.c
	clang --target=wasm32-wasi -O2 -o $@ $<

$(SANDBOX_TD)/goreactor.wasm: $(SANDBOX_TD)/goreactor/main.go
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./$(SANDBOX_TD)/goreactor

.PHONY: sandbox-wasm
sandbox-wasm: $(SANDBOX_WASM)
