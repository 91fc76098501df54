#!/usr/bin/env bash
# Runs every Fuzz* target of the module for FUZZTIME each (default 10s).
# Targets are found, not listed: packages whose tests mention "func Fuzz"
# are asked for their exact names with `go test -list '^Fuzz'`. A crasher
# is written by go test under the package's testdata/fuzz/<Target>/ and
# fails the run; committed, it becomes a regression case of the plain
# `go test`.
#
# go1.26's fuzz coordinator can end a duration budget with a bare "context
# deadline exceeded" and no crasher on a busy machine (golang/go#75804, fixed
# in go1.27): such a run counts as passed only when no new input was written
# under testdata/fuzz/<Target>/ and the target's corpus replays clean.
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
    corpus="$dir/testdata/fuzz/$target"
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    out=$(mktemp)
    if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"; then
      rm -f "$out"
      continue
    fi
    after=$(ls "$corpus" 2>/dev/null | sort || true)
    if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" &&
      ! grep -q 'Failing input written\|panic:' "$out" &&
      "$GO" test -count=1 -run "^${target}\$" "$pkg" >/dev/null; then
      echo "== $target: the coordinator's deadline race (golang/go#75804), no new input, corpus replays clean: passed"
    else
      failed+=("$pkg $target")
    fi
    rm -f "$out"
  done
done < <("$GO" list -f '{{.Dir}} {{.ImportPath}}' "${pkgs[@]}")
echo "== $n fuzz targets, ${#failed[@]} failed"
for f in "${failed[@]}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
