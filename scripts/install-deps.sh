#!/usr/bin/env bash
# Installs the build and test dependencies on a Debian machine (it uses sudo
# itself when not run as root), after apt-get update: guest toolchains (wabt,
# clang/lld/wasi-libc, rustc with the wasm32 std, Node.js for AssemblyScript),
# mosquitto for the MQTT tests, the ARM cross compilers and qemu-user-static
# for make test-arm, systemd (systemd-analyze) for make test-deb, and a
# headless Chromium (chromium-headless-shell) with a font for the web
# console's browser tests, which fail without it in CI. Go itself
# must be on the PATH; the Go modules come through the module proxy.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
	make gcc libc6-dev git ca-certificates \
	wabt clang lld wasi-libc libclang-rt-dev-wasm32 \
	rustc libstd-rust-dev-wasm32 \
	mosquitto mosquitto-clients \
	chromium-headless-shell fonts-dejavu-core \
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-arm-linux-gnueabi libc6-dev-armel-cross qemu-user-static systemd
# The AssemblyScript example builds with npm; machines that already have
# Node.js (often from its own package) keep it.
if ! command -v npm >/dev/null 2>&1; then
	$SUDO apt-get install -y --no-install-recommends nodejs npm
fi
# mosquitto's package enables a system broker on :1883; the tests start their
# own on free ports, and the agent's embedded broker wants :1883.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
	$SUDO systemctl stop mosquitto || true
fi
go mod download # the modules of go.mod, through the module proxy
