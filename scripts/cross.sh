#!/usr/bin/env bash
# Cross-builds the edgefn agent for one target with cgo (go-sqlite3) through
# Debian's cross compilers, stripped, with the version linked in.
#
#   scripts/cross.sh TARGET [OUT]      TARGET: amd64 arm64 armv7 armv6
#   scripts/cross.sh --test TARGET PKG OUT   a `go test -c` binary instead
#
# Targets and toolchains (Debian packages, see scripts/install-deps.sh):
#   amd64  native gcc                                dynamic, glibc
#   arm64  gcc-aarch64-linux-gnu  (64-bit Pi OS)     dynamic, glibc >= bookworm's
#   armv7  gcc-arm-linux-gnueabihf (32-bit Pi OS)    dynamic, glibc, GOARM=7
#   armv6  gcc-arm-linux-gnueabi  (Pi Zero / Pi 1)   STATIC, armel glibc (armv5te
#          code, runs on ARM1176), GOARM=6. Debian's armhf toolchain cannot make
#          armv6 code: its crt files, libgcc and libc are armv7/Thumb-2, so a
#          -march=armv6 build still comes out Tag_CPU_arch v7 (docs/install.md).
#
# VERSION (default: git describe) goes in via -X main.version.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

mode=build
if [ "${1:-}" = "--test" ]; then
	mode=test
	shift
fi
target=${1:?usage: scripts/cross.sh [--test] TARGET [PKG] [OUT]}
shift

tags=""
ldextra=""
case "$target" in
amd64)
	export GOARCH=amd64 CC=${CC_AMD64:-gcc}
	;;
arm64)
	export GOARCH=arm64 CC=${CC_ARM64:-aarch64-linux-gnu-gcc}
	;;
armv7)
	export GOARCH=arm GOARM=7 CC=${CC_ARMV7:-arm-linux-gnueabihf-gcc}
	;;
armv6)
	# Soft-float EABI C code (armv5te), statically linked so the binary
	# does not need an armel dynamic loader on the hard-float Pi OS. Go's
	# own code uses VFP (GOARM=6); cgo calls pass arguments in memory, so
	# the two float ABIs never meet in registers.
	export GOARCH=arm GOARM=6 CC=${CC_ARMV6:-arm-linux-gnueabi-gcc}
	tags="netgo,osusergo,sqlite_omit_load_extension"
	ldextra='-linkmode external -extldflags "-static"'
	;;
*)
	echo "cross.sh: unknown target $target (want amd64, arm64, armv7 or armv6)" >&2
	exit 2
	;;
esac
export GOOS=linux CGO_ENABLED=1

if ! command -v "${CC%% *}" >/dev/null 2>&1; then
	echo "cross.sh: C cross compiler ${CC%% *} for $target not found: run scripts/install-deps.sh" >&2
	exit 1
fi

ldflags="-s -w -X main.version=$VERSION $ldextra"
if [ "$mode" = test ]; then
	pkg=${1:?usage: scripts/cross.sh --test TARGET PKG OUT}
	out=${2:?usage: scripts/cross.sh --test TARGET PKG OUT}
	mkdir -p "$(dirname "$out")"
	exec "$GO" test -c -trimpath ${tags:+-tags "$tags"} -ldflags "$ldextra" -o "$out" "$pkg"
fi
out=${1:-dist/edgefn-linux-$target}
mkdir -p "$(dirname "$out")"
# urfave_cli_no_docs leaves out urfave/cli's man page and markdown
# generators (unused): 0.5 MB of binary and 0.5 MiB of heap built at start.
tags="urfave_cli_no_docs${tags:+,$tags}"
"$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out" ./cmd/edgefn
echo "$out: $(stat -c %s "$out") bytes ($target, $VERSION)"
