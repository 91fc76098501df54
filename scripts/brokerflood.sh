#!/usr/bin/env bash
# Hostile MQTT clients against the agent's embedded broker: runs the agent
# BIN on a loopback port, then scripts/brokerflood with MODE, and prints
# the agent's VmRSS before and after and its peak (VmHWM).
#
#   scripts/brokerflood.sh [BIN] connect   # two unauthenticated 150 MB CONNECTs
#   scripts/brokerflood.sh [BIN] publish   # one 200 MB PUBLISH
#   scripts/brokerflood.sh [BIN] silent    # 1,500 sockets that never send CONNECT
#
# Used for the figures in docs/mqtt.md (Limits).
set -euo pipefail
bin=${1:-bin/edgefn}
mode=${2:-connect}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/edgefn.yaml" <<YAML
data_dir: $dir/data
admin: {listen: "127.0.0.1:0", tls: "off"}
broker:
  embedded:
    listen: 127.0.0.1:$port
    users:
      - {username: sensor1, password: change-me}   # no ACL keys: older agents take this config too
YAML
(cd "$root" && go build -o "$dir/brokerflood" ./scripts/brokerflood)
"$bin" agent --config "$dir/edgefn.yaml" >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q "agent ready" "$dir/log" && break; sleep 0.1; done
rss() { awk -v f="$1:" '$1 == f {print $2 / 1024 " MB"}' "/proc/$pid/status"; }
echo "agent VmRSS before: $(rss VmRSS)"
case $mode in
  connect) "$dir/brokerflood" -addr "127.0.0.1:$port" -mode connect -n 2 -size 157286400 ;;
  publish) "$dir/brokerflood" -addr "127.0.0.1:$port" -mode publish -n 1 -size 209715200 ;;
  silent) "$dir/brokerflood" -addr "127.0.0.1:$port" -mode silent -n 1500 -wait 15s || true ;;
  *) echo "mode $mode: use connect, publish or silent" >&2; exit 2 ;;
esac
echo "agent VmRSS after: $(rss VmRSS), peak VmHWM: $(rss VmHWM)"
