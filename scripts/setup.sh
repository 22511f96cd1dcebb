#!/usr/bin/env bash
# Sets up a fresh Debian machine for Jitsu, idempotently: Debian packages (scripts/apt-packages.txt),
# npm packages (npm ci, which also builds the native addon), the TypeScript build, and with --test
# the artefacts the test suite boots (guest kernel + initramfs, container rootfs).
# Run as root: the daemon creates bridges and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_artefacts=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test_artefacts=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg (use --test)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the daemon needs CAP_NET_ADMIN)" >&2
  exit 2
fi

step() { printf '\n== %s\n' "$*"; }

step "Debian packages"
mapfile -t packages < <(grep -v '^\s*#' scripts/apt-packages.txt | sed 's/\s*#.*//' | grep -v '^\s*$' | sort -u)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # With recommends: that is how every package here was installed and tested.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "all ${#packages[@]} present"
fi

step "npm packages and native addon"
npm ci --no-audit --no-fund --loglevel=error

step "TypeScript build"
npm run --silent build:ts

if [ "$want_test_artefacts" -eq 1 ]; then
  for script in scripts/build-guest.sh scripts/build-rootfs.sh; do
    if [ -x "$script" ]; then
      step "$script"
      "$script"
    fi
  done
fi

step "ready"
