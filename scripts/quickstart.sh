#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine with Node.js >= 20 and root:
#   scripts/quickstart.sh demo   install what is missing, build, run the demo
#   scripts/quickstart.sh test   install what is missing, build, run every test
#   scripts/quickstart.sh setup  install what is missing and build, nothing else
# Every step checks before it acts, so a second run is quick.
set -euo pipefail

cd "$(dirname "$0")/.."
ACTION="${1:-setup}"
PNPM_VERSION="$(node -p 'require("./package.json").packageManager.split("@")[1]')"

log() { printf '\033[1m[flowlb]\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "flowlb setup needs root (to install packages and to use BPF and network namespaces); run it as root" >&2
    exit 1
  fi
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "flowlb needs Node.js 20 or newer (found $(node --version))" >&2
  exit 1
fi

# Build: clang/llvm (BPF object), libbpf/libelf/zlib (addon), make/g++/python3 (node-gyp).
# Run: iproute2, ethtool, procps (sysctl), util-linux (setpriv). Tests: openssl, gnutls-bin, tcpdump, socat, and
# ngtcp2's example QUIC client and server (gtlsclient, gtlsserver).
APT_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev make g++ python3 pkg-config
  iproute2 ethtool procps util-linux openssl gnutls-bin tcpdump socat ngtcp2-client ngtcp2-server)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# bpftool is only for operators debugging by hand; its package name differs between distributions.
if ! command -v bpftool >/dev/null; then missing+=(bpftool); fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # bpftool may not exist under that name (Ubuntu ships it in linux-tools); the rest must install.
  $SUDO apt-get install -y -qq --no-install-recommends bpftool >/dev/null 2>&1 || true
  rest=()
  for p in "${missing[@]}"; do [ "$p" = bpftool ] || rest+=("$p"); done
  if [ "${#rest[@]}" -gt 0 ]; then $SUDO apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null; fi
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  log "installing pnpm $PNPM_VERSION"
  $SUDO npm install -g --silent "pnpm@$PNPM_VERSION"
fi

log "installing dependencies"
pnpm install --frozen-lockfile --reporter=silent
log "building (BPF object, native addon, packages)"
pnpm -s build --output-logs=errors-only

case "$ACTION" in
  setup) ;;
  demo)
    log "running the demo"
    exec pnpm -s demo
    ;;
  test)
    log "running the tests"
    rm -f packages/*/.vitest-result.json
    status=0
    pnpm -s test --output-logs=full || status=$?
    node scripts/test-summary.mjs || status=$?
    exit "$status"
    ;;
  *)
    echo "usage: scripts/quickstart.sh [setup|demo|test]" >&2
    exit 2
    ;;
esac
