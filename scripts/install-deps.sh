#!/usr/bin/env bash
# Installs the Debian packages Framehouse needs, only those missing.
#   scripts/install-deps.sh run    build + run (libvips, pkg-config, node + the web UI's npm deps)
#   scripts/install-deps.sh test   also what the tests need (PostgreSQL server, ffmpeg,
#                                  dnsmasq, nginx, RabbitMQ, Redis, Chromium, node + the npm deps of the test OIDC provider
#                                  and of tus-js-client, playwright-core and axe,
#                                  a Python venv with schemathesis and standardwebhooks)
#   scripts/install-deps.sh bench  also what the benchmarks compare against
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(pkg-config libvips-dev fonts-dejavu-core)
case "$mode" in
  test) packages+=(postgresql ffmpeg python3 python3-venv dnsmasq-base nginx-light rabbitmq-server redis-server chromium) ;;
  bench) packages+=(postgresql ffmpeg python3 python3-venv dnsmasq-base nginx-light rabbitmq-server redis-server chromium libvips-tools wrk hyperfine time argon2) ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node may come from outside Debian (nodesource, nvm): ask the PATH, not dpkg. Every mode
# needs npm: the build embeds the web UI's browser libraries (crates/server/ui).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >/dev/null || true
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm deps, installed outside the work tree and only again when a package-lock.json
# changes: the web UI's browser libraries (crates/server/ui, read by its build script)
# always; the test OIDC provider (tests/oidc-provider), the tus client the tests run
# (tests/tus-clients) and the browser suite's playwright-core, axe and hls.js
# (tests/browser) for tests and benchmarks.
npm_dirs=(crates/server/ui)
case "$mode" in
  test|bench) npm_dirs+=(tests/oidc-provider tests/tus-clients tests/browser) ;;
esac
for dir in "${npm_dirs[@]}"; do
  pkg=$(basename "$dir")
  src="$root/$dir"
  dest="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/$pkg"
  lock_hash=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dest/.lock-sha256" 2>/dev/null)" != "$lock_hash" ] || [ ! -d "$dest/node_modules" ]; then
    echo "installing npm deps of $dir into $dest" >&2
    mkdir -p "$dest"
    rm -f "$dest/.lock-sha256"
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_hash" >"$dest/.lock-sha256"
  fi
done

# The Python tools of the tests (tests/python/requirements.lock), in a venv outside the
# work tree, installed again only when the lock file changes.
case "$mode" in
  test|bench)
    lock="$root/tests/python/requirements.lock"
    venv="${FRAMEHOUSE_PY_CACHE:-$HOME/.cache/framehouse-py}/venv"
    lock_hash=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$lock_hash" ] || [ ! -x "$venv/bin/st" ]; then
      echo "installing the Python test tools into $venv" >&2
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$lock"
      echo "$lock_hash" >"$venv/.lock-sha256"
    fi
    ;;
esac
