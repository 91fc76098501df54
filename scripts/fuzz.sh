#!/usr/bin/env bash
# Runs every Fuzz* target of the module for FUZZTIME each (default 10s).
# Targets are found, not listed: packages whose tests mention "func Fuzz"
# are asked for their exact names with `go test -list '^Fuzz'`. A crasher
# is written by go test under the package's testdata/fuzz/<Target>/ and
# fails the run; committed, it becomes a regression case of the plain
# `go test`.
#
#   FUZZTIME=30s scripts/fuzz.sh [packages...]   (default ./...)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
n=0
failed=()
while read -r dir pkg; do
  grep -qs '^func Fuzz' "$dir"/*_test.go || continue
  for target in $("$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    n=$((n + 1))
    echo "== $pkg $target ($FUZZTIME)"
    if ! "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      failed+=("$pkg $target")
    fi
  done
done < <("$GO" list -f '{{.Dir}} {{.ImportPath}}' "${pkgs[@]}")
echo "== $n fuzz targets, ${#failed[@]} failed"
for f in "${failed[@]}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
