#!/usr/bin/env bash
# Installs the Debian packages Framehouse needs, only those missing.
#   scripts/install-deps.sh run    build + run (libvips, pkg-config)
#   scripts/install-deps.sh test   also what the tests need (PostgreSQL server, ffmpeg)
#   scripts/install-deps.sh bench  also what the benchmarks compare against
set -euo pipefail
mode=${1:-run}
packages=(pkg-config libvips-dev fonts-dejavu-core)
case "$mode" in
  test) packages+=(postgresql ffmpeg python3) ;;
  bench) packages+=(postgresql ffmpeg python3 python3-venv libvips-tools wrk nginx-light hyperfine time) ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null || true
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
