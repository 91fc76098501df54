#!/usr/bin/env bash
# Self-triggering chain: a function that publishes every event twice back to
# its own trigger topic. Runs the agent BIN for SECONDS after one seed
# message and prints its CPU time, peak RSS, log bytes and invocations.
#
#   scripts/selfloop.sh [BIN] [SECONDS] [external broker URL, e.g. tcp://127.0.0.1:1883]
#
# Needs wat2wasm, mosquitto_pub and curl. Used for the figures in
# docs/security.md.
set -euo pipefail
bin=${1:-bin/edgefn}
secs=${2:-15}
ext=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$dir/log" "$KEEP"; rm -rf "$dir"' EXIT
mkdir -p "$dir/fns"
wat2wasm -o "$dir/fns/fork.wasm" "$root/gateway/testdata/fork.wat"
cat >"$dir/fns/fork.yaml" <<YAML
name: fork
wasm: ./fork.wasm
triggers:
  - mqtt: loop/#
allow: { publish: ["loop/#"] }
YAML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ -n "$ext" ]; then
  broker="broker: {external: {brokers: [\"$ext\"], client_id: selfloop}}"
  host=$(echo "$ext" | sed -E 's#^[a-z]+://([^:/]+):?([0-9]*).*#\1#'); port=$(echo "$ext" | sed -E 's#^[a-z]+://[^:/]+:?([0-9]*).*#\1#'); port=${port:-1883}
else
  broker="broker: {embedded: {listen: \"127.0.0.1:$port\"}}"; host=127.0.0.1
fi
cat >"$dir/edgefn.yaml" <<YAML
gateway_id: selfloop
data_dir: $dir/data
functions_dir: $dir/fns
outbox: {durability: normal}
admin: {listen: "127.0.0.1:0", tls: "off"}
$broker
YAML
"$bin" agent --config "$dir/edgefn.yaml" >"$dir/stdout" 2>"$dir/log" &
pid=$!
for _ in $(seq 300); do grep -q 'admin API:' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
admin=$(sed -n 's/.*admin API: *//p' "$dir/stdout" | head -1)
token=$(cat "$dir/data/api.token")
sleep 1 # external broker: let the subscription settle
ticks() { awk '{print $14+$15}' /proc/$pid/stat; }
t0=$(ticks); l0=$(stat -c %s "$dir/log")
mosquitto_pub -h "$host" -p "$port" -q 0 -t loop/seed -m x
sleep "$secs"
t1=$(ticks); l1=$(stat -c %s "$dir/log")
hz=$(getconf CLK_TCK)
st=$(curl -s -H "Authorization: Bearer $token" "$admin/v1/status")
echo "seconds:        $secs"
echo "cpu:            $(awk -v a=$t0 -v b=$t1 -v hz=$hz -v s=$secs 'BEGIN{printf "%.2f s (%.0f%% of one core)", (b-a)/hz, 100*(b-a)/hz/s}')"
echo "rss peak/now:   $(awk '/VmHWM/{h=$2} /VmRSS/{r=$2} END{printf "%d / %d KiB", h, r}' /proc/$pid/status)"
echo "log bytes:      $((l1-l0))"
echo "invocations:    $(echo "$st" | python3 -c 'import json,sys; d=json.load(sys.stdin); f=[x for x in d["functions"] if x["name"]=="fork"][0]; s=f["stats"]; print(s["invocations"], "errors", s.get("errors"), "chain_dropped", s.get("chain_dropped"))')"
