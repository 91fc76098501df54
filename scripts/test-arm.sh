#!/usr/bin/env bash
# Runs the sandbox and outbox tests on ARM for real: cross-compiled
# `go test -c` binaries under qemu user-mode emulation (Debian's
# qemu-user-static), each in its package directory so it finds testdata/.
#
#   scripts/test-arm.sh [TARGET...]   default: arm64 armv7 armv6
#
# arm64 runs wazero's arm64 compiler, armv7 and armv6 its interpreter (no
# 32-bit compiler). armv6 runs on an emulated ARM1176 (Pi Zero / Pi 1), so
# any armv7-only instruction in the binary fails the run. TESTFLAGS adds
# test flags (default -test.short); `make wasm` must have built the fixtures.
# SKIP (a -test.skip regexp) leaves out the tests that cannot work under
# user-mode emulation: TestCrashDurability re-executes its own binary as a
# child (an ARM ELF the host kernel cannot exec without binfmt_misc), and
# TestFreshInstancesLeakNothing runs 10,000 invocations under a 100 ms
# deadline that qemu's slowdown plus a GC pause exceeds now and then.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(arm64 armv7 armv6)
PKGS=${PKGS:-"sandbox sync/outbox"}
TESTFLAGS=${TESTFLAGS:--test.short}
SKIP=${SKIP-'^(TestCrashDurability|TestFreshInstancesLeakNothing)$'}
OUT=${OUT:-dist/test}

for f in sandbox/testdata/echo.wasm sandbox/testdata/goreactor.wasm; do
	[ -f "$f" ] || { echo "test-arm: $f missing: run make wasm first" >&2; exit 1; }
done

fail=0
for t in "${targets[@]}"; do
	case "$t" in
	arm64) qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu) ;;
	armv7) qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf -cpu cortex-a7) ;;
	armv6) qemu=(qemu-arm-static -cpu arm1176) ;; # static binary: no loader
	*) echo "test-arm: unknown target $t" >&2; exit 2 ;;
	esac
	command -v "${qemu[0]}" >/dev/null || { echo "test-arm: ${qemu[0]} missing: run scripts/install-deps.sh" >&2; exit 1; }
	for p in $PKGS; do
		bin="$OUT/$t/$(basename "$p").test"
		echo "== $t $p (${qemu[*]})"
		if ! scripts/cross.sh --test "$t" "./$p" "$bin"; then
			echo "-- $t $p: FAILED to build"
			fail=1
			continue
		fi
		start=$(date +%s)
		if (cd "$p" && "${qemu[@]}" "$OLDPWD/$bin" $TESTFLAGS ${SKIP:+-test.skip "$SKIP"} -test.count=1 -test.timeout=15m); then
			echo "-- $t $p: ok in $(($(date +%s) - start))s"
		else
			echo "-- $t $p: FAILED after $(($(date +%s) - start))s"
			fail=1
		fi
	done
done
exit $fail
