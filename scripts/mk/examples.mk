# Function examples (examples/*), one per guest language. Each builds to
# examples/<name>/<name>.wasm beside its function.yaml. Go, C and WAT are
# always built; Rust and AssemblyScript only where their toolchain exists, so
# `make wasm` works on a machine without them (see docs/languages.md).

EX := examples

# C: Debian's clang with wasi-libc, whose headers and libraries live under
# /usr/{include,lib}/wasm32-wasi (the multiarch layout of sysroot /usr).
WASI_CC      ?= $(if $(wildcard /usr/bin/clang-14),clang-14,clang)
WASI_SYSROOT ?= /usr
# Debian's rustc (1.63 with libstd-rust-dev-wasm32), not a rustup one.
RUSTC        ?= /usr/bin/rustc
NPM          ?= npm

WASM += $(EX)/go-temp-alert/go-temp-alert.wasm \
	$(EX)/c-command/c-command.wasm \
	$(EX)/c-file-stats/c-file-stats.wasm \
	$(EX)/wat-minimal/wat-minimal.wasm

$(EX)/go-temp-alert/go-temp-alert.wasm: $(wildcard $(EX)/go-temp-alert/*.go) $(wildcard sandbox/guest/*.go)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./$(EX)/go-temp-alert

$(EX)/c-command/c-command.wasm: $(EX)/c-command/convert.c
	$(WASI_CC) --target=wasm32-wasi --sysroot=$(WASI_SYSROOT) -O2 -fuse-ld=lld -Wl,--strip-all -o $@ $<

# Freestanding C (no libc): a reactor with only the edgefn imports.
$(EX)/c-file-stats/c-file-stats.wasm: $(EX)/c-file-stats/stats.c
	$(WASI_CC) --target=wasm32 -nostdlib -O2 -fuse-ld=lld -Wl,--no-entry -Wl,--strip-all -o $@ $<

$(EX)/wat-minimal/wat-minimal.wasm: $(EX)/wat-minimal/minimal.wat
	wat2wasm -o $@ $<

ifneq ($(wildcard $(RUSTC)),)
ifneq ($(wildcard /usr/lib/rustlib/wasm32-unknown-unknown/lib),)
WASM += $(EX)/rust-reactor/rust-reactor.wasm
endif
endif

$(EX)/rust-reactor/rust-reactor.wasm: $(EX)/rust-reactor/lib.rs
	$(RUSTC) --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C strip=symbols -o $@ $<

ifneq ($(shell command -v $(NPM) 2>/dev/null),)
WASM += $(EX)/as-reactor/as-reactor.wasm
endif

AS_DIR := $(EX)/as-reactor

# npm ci installs exactly what package-lock.json pins (network on first build).
$(AS_DIR)/node_modules/.installed: $(AS_DIR)/package.json $(AS_DIR)/package-lock.json
	cd $(AS_DIR) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

$(AS_DIR)/as-reactor.wasm: $(AS_DIR)/node_modules/.installed $(AS_DIR)/asconfig.json $(wildcard $(AS_DIR)/assembly/*.ts)
	cd $(AS_DIR) && ./node_modules/.bin/asc assembly/index.ts --config asconfig.json --target release

# The Go SDK's test fixture: every guest call, its result emitted.
WASM += $(EX)/testdata/sdkprobe.wasm

$(EX)/testdata/sdkprobe.wasm: $(EX)/testdata/sdkprobe/main.go $(wildcard sandbox/guest/*.go)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./$(EX)/testdata/sdkprobe
