# The side-by-side MQTT benchmark (scripts/mqttbench, docs/benchmarks.md).
#
#   make bench        full run: 3 runs per path on all cores + 1 pinned to one
#                     core (about 25 minutes on 2 cores), writes docs/benchmarks.md
#   make bench-quick  smaller scenarios, one run, no pinned run (a few minutes),
#                     writes $(BENCH_QUICK_OUT)
#   make bench-go     the Go benchmarks of every package (benchstat input)
#   make bench-conns  what 2,000 idle device connections cost the agent, mochi
#                     alone and mosquitto (docs/performance.md#device-connections)
#   make bench-fleet  fleet rollouts to 20, 100 and 200 agent processes on one
#                     mosquitto (gateway BenchmarkFleetConverge), writes
#                     $(FLEET_BENCH_OUT) (docs/benchmarks/fleet.md quotes it)

MQTTBENCH       ?= bin/mqttbench
MQTTBENCH_FLAGS ?=
BENCH_QUICK_OUT ?= bin/benchmarks-quick.md

WASM += scripts/mqttbench/testdata/publish.wasm

scripts/mqttbench/testdata/publish.wasm: scripts/mqttbench/testdata/publish.wat
	wat2wasm -o $@ $<

FLEET_SIZES     ?= 20,100,200
FLEET_BENCH_OUT ?= bin/fleet-bench.md

.PHONY: bench bench-quick bench-go bench-conns bench-fleet

$(MQTTBENCH): FORCE
	$(GO) build $(GOFLAGS) -o $@ ./scripts/mqttbench

## bench: edgefn against the embedded floor, mosquitto + forwarder and Node-RED.
bench: build wasm $(MQTTBENCH)
	$(MQTTBENCH) -edgefn $(BIN) $(MQTTBENCH_FLAGS)

## bench-quick: the same paths on smaller scenarios, one run each.
bench-quick: build wasm $(MQTTBENCH)
	$(MQTTBENCH) -edgefn $(BIN) -reps 1 -pinned-reps 0 -warm 200 -lat-msgs 2000 -cpu-msgs 8000 -sat-msgs 8000 \
		-out $(BENCH_QUICK_OUT) -charts bin/benchmarks-quick -title "Quick run (make bench-quick): one run per path, smaller scenarios." $(MQTTBENCH_FLAGS)

## bench-go: every Go benchmark, BENCHCOUNT runs each, for benchstat.
bench-go: wasm
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCHCOUNT) $(PKGS)

## bench-fleet: one fleet deploy of a small and a 151 KiB module to FLEET_SIZES
## gateway processes each: time to converge, broker traffic, RSS.
bench-fleet: wasm
	@mkdir -p $(dir $(FLEET_BENCH_OUT))
	EDGEFN_FLEET_SIZES=$(FLEET_SIZES) EDGEFN_FLEET_REPORT=$(abspath $(FLEET_BENCH_OUT)) \
		$(GO) test -count=1 -timeout 60m -run '^$$' -bench '^BenchmarkFleetConverge$$' -benchtime 1x ./gateway/
	@cat $(FLEET_BENCH_OUT)

## bench-conns: RSS per idle device connection (2,000 raw clients, each
## subscribed to its own topic) of the agent, mochi alone and mosquitto.
bench-conns: build wasm $(MQTTBENCH)
	$(MQTTBENCH) conns -edgefn $(BIN) -n 2000 -settle 35s
