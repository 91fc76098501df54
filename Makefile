# edgefn build. `make test` is the command CI runs (see .ci/run and README.md).
#
# Fragments in scripts/mk/*.mk add WebAssembly guests to WASM (each owns its
# own build rules) so the guest toolchains stay out of this file.

GO        ?= go
GOFLAGS   ?=
BIN       ?= bin/edgefn
# The commit edgefn version prints when the build carries no VCS stamp
# (GOFLAGS=-buildvcs=false, a git worktree).
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
PKGS      ?= ./...
# Packages whose concurrency matters run under the race detector.
RACE_PKGS ?= ./sync/... ./gateway/... ./triggers/... ./devices/...
STATICCHECK_VERSION ?= v0.8.2
BENCH     ?= .
BENCHCOUNT ?= 6

WASM :=
-include $(sort $(wildcard scripts/mk/*.mk))

.PHONY: all build test test-short run lint tidy-check wasm clean fuzz

all: build

build: $(BIN)

$(BIN): FORCE
	$(GO) build $(GOFLAGS) -tags urfave_cli_no_docs -ldflags "-X main.commit=$(COMMIT)" -o $(BIN) ./cmd/edgefn

FORCE:

## wasm: build every WebAssembly guest (test fixtures and examples) from source.
wasm: $(WASM)

## test: check go.mod is tidy, lint (gofmt, vet, staticcheck), build the
## guests, then run every test (race detector on the concurrent packages),
## every fuzz target for 3 s, the sandbox and outbox tests on
## arm64/armv7/armv6 under qemu, and the .deb install test.
test: tidy-check lint wasm
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)
	$(MAKE) fuzz FUZZTIME=3s
	$(MAKE) test-arm
	$(MAKE) test-deb

## fuzz: every Fuzz* target of the module, FUZZTIME each (default 10s);
## a crasher lands in the package's testdata/fuzz/ and fails the run.
FUZZTIME ?= 10s
fuzz: wasm
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(PKGS)

test-short: wasm
	$(GO) test -short -count=1 $(PKGS)

## run: the agent on its embedded defaults (embedded broker, ./data).
run: build wasm
	./$(BIN) agent --config configs/edgefn.yaml

## lint: gofmt, go vet and staticcheck must all be clean.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## tidy-check: go.mod and go.sum must be exactly what `go mod tidy` makes.
tidy-check:
	$(GO) mod tidy -diff

clean:
	rm -rf bin $(WASM)
