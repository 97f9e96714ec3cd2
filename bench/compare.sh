#!/usr/bin/env bash
# Runs a bench script of this tree and the same script of an earlier commit, alternately
# in one run, so a regression shows as a ratio: bench/compare.sh REV [SCRIPT] [ROUNDS]
# (default bench/delivery.sh, 2 rounds). REV is checked out in a temporary worktree and
# builds into its own target dir under ~/.cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:?usage: bench/compare.sh REV [SCRIPT] [ROUNDS]}
script=${2:-bench/delivery.sh}
rounds=${3:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/framehouse-target}
base_target="$HOME/.cache/framehouse-target-base"
# Beside this checkout, so the scripts find ../shared/fixtures as they do here.
tree=$(mktemp -d "$root/../fh-compare.XXXXXX")
trap 'git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"' EXIT
git -C "$root" worktree add --detach -q "$tree" "$rev"
for round in $(seq "$rounds"); do
  echo "== round $round: this tree ($(git -C "$root" rev-parse --short HEAD) + changes)"
  "$root/$script"
  echo "== round $round: $rev"
  CARGO_TARGET_DIR="$base_target" "$tree/$script"
done
