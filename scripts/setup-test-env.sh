#!/usr/bin/env bash
# Makes sure the real TLS peers and PKCS#11 tools the test suite talks to are present.
# Idempotent and quick when everything is already installed. A peer that cannot be
# installed fails this script: the suite never turns a missing peer into a skipped test.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'setup-test-env: %s\n' "$*"; }
die() { printf 'setup-test-env: ERROR: %s\n' "$*" >&2; exit 1; }

SOFTHSM_LIB_CANDIDATES=(
  /usr/lib/softhsm/libsofthsm2.so
  /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
  /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so
)

have_softhsm_lib() {
  local f
  for f in "${SOFTHSM_LIB_CANDIDATES[@]}"; do [[ -f "$f" ]] && return 0; done
  return 1
}

have_http2_curl() {
  command -v curl >/dev/null 2>&1 && curl --version | grep -qw HTTP2
}

# Debian package -> check that it is usable. Each check looks for what the tests run.
missing_packages() {
  local missing=()
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  have_http2_curl || missing+=(curl)
  command -v gnutls-cli >/dev/null 2>&1 || missing+=(gnutls-bin)
  { command -v softhsm2-util >/dev/null 2>&1 && have_softhsm_lib; } || missing+=(softhsm2)
  command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
  { command -v python3 >/dev/null 2>&1 && python3 -c 'import ssl, json' >/dev/null 2>&1; } || missing+=(python3)
  if ((${#missing[@]})); then printf '%s\n' "${missing[@]}"; fi
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# Another shell may hold the apt/dpkg locks (e.g. an install already under way):
# wait for them instead of failing.
apt_retry() {
  local i
  for i in $(seq 1 60); do
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@"; then
      return 0
    fi
    log "apt-get $1 failed (attempt $i), retrying in 5s (lock held by another process?)"
    sleep 5
  done
  return 1
}

mapfile -t MISSING < <(missing_packages)
if ((${#MISSING[@]})); then
  command -v apt-get >/dev/null 2>&1 || die "missing test peers (${MISSING[*]}) and no apt-get to install them"
  log "installing missing test peers: ${MISSING[*]}"
  apt_retry update -q || die "apt-get update failed"
  apt_retry install -y -q --no-install-recommends "${MISSING[@]}" || die "apt-get install ${MISSING[*]} failed"
  mapfile -t STILL < <(missing_packages)
  if ((${#STILL[@]})); then
    die "still missing after install: ${STILL[*]}"
  fi
  log "installed: ${MISSING[*]}"
fi

if [[ ! -d node_modules ]]; then
  log "node_modules missing: running npm ci"
  npm ci
fi

# The key process's non-dumpable addon (native/): npm install builds it; a tree whose
# node_modules predate it gets it here.
if [[ ! -f native/build/Release/keyward_nodump.node ]]; then
  log "building the key process addon (native/)"
  npm run -s build:native || die "building native/ failed (needs g++, make and python3)"
fi

log "peers ready: $(openssl version | cut -d' ' -f1-2), gnutls-cli $(gnutls-cli --version 2>/dev/null | head -n1 | awk '{print $NF}'), curl $(curl --version | head -n1 | cut -d' ' -f2), $(python3 --version 2>&1), softhsm2 $(softhsm2-util --version 2>/dev/null || echo '?')"

# The proxy and demo tests: systemd-analyze checks the example systemd units
# (contrib/systemd), Chromium loads the demo page headless for a screenshot. The browser
# interop tests drive Chromium and Firefox ESR headless; NSS's tstclnt and certutil (the
# test CA in a throwaway NSS database) come with libnss3-tools.
mapfile -t EXTRA < <(
  command -v systemd-analyze >/dev/null 2>&1 || echo systemd
  command -v chromium >/dev/null 2>&1 || echo chromium
  command -v firefox-esr >/dev/null 2>&1 || echo firefox-esr
  { command -v tstclnt >/dev/null 2>&1 && command -v certutil >/dev/null 2>&1; } || echo libnss3-tools
  [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || echo fonts-dejavu-core
)
if ((${#EXTRA[@]})); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${EXTRA[*]} and no apt-get to install them"
  log "installing: ${EXTRA[*]}"
  apt_retry update -q || die "apt-get update failed"
  apt_retry install -y -q --no-install-recommends "${EXTRA[@]}" || die "apt-get install ${EXTRA[*]} failed"
  command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze still missing"
  command -v chromium >/dev/null 2>&1 || die "chromium still missing"
  command -v firefox-esr >/dev/null 2>&1 || die "firefox-esr still missing"
  command -v tstclnt >/dev/null 2>&1 || die "tstclnt (libnss3-tools) still missing"
fi
