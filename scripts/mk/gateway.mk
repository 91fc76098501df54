# Test fixtures of the gateway package (WAT reactors).
GATEWAY_WAT  := $(wildcard gateway/testdata/*.wat)
GATEWAY_WASM := $(GATEWAY_WAT:.wat=.wasm)

WASM += $(GATEWAY_WASM)

$(GATEWAY_WASM): gateway/testdata/%.wasm: gateway/testdata/%.wat
	wat2wasm -o $@ $<
