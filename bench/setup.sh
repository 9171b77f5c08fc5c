#!/usr/bin/env bash
# Builds bench/loadgen (the benchmarks' load generator, Go standard library only) into
# .cache/bench/loadgen, installing Debian's golang-go first when `go` is missing. Prints
# the binary's path. Not part of npm test.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.cache/bench/loadgen
SRC=bench/loadgen

if ! command -v go >/dev/null; then
  echo "bench/setup.sh: installing golang-go" >&2
  apt-get update >&2
  apt-get install -y golang-go >&2
fi
if [[ ! -x "$OUT" || -n "$(find "$SRC" -newer "$OUT" -type f)" ]]; then
  mkdir -p "$(dirname "$OUT")"
  # Standard library only: nothing is fetched (GOFLAGS=-mod=mod would not be needed either).
  (cd "$SRC" && GOPROXY=off GOFLAGS= go build -trimpath -o "$OLDPWD/$OUT" .) >&2
fi
echo "$PWD/$OUT"
