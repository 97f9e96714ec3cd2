#!/usr/bin/env bash
# Job wake-up latency across two nodes on one PostgreSQL: enqueue on node A -> start on
# node B, p50/p99, with B polling (the default 500 ms interval, and 100 ms) against B
# woken by LISTEN/NOTIFY, in one run (crates/queue/examples/wakeup_bench.rs).
# PostgreSQL is the throwaway one of scripts/with-test-services.sh (fsync off).
# Usage: bench/wakeup.sh   Env: JOBS (100)
source "$(dirname "$0")/lib.sh"
jobs=${JOBS:-100}
(cd "$root" && cargo build --release -q -p queue --example wakeup_bench)
bench="$CARGO_TARGET_DIR/release/examples/wakeup_bench"
echo "== job wake-up latency, $jobs jobs each"
"$root/scripts/with-test-services.sh" bash -c '
  psql "$FRAMEHOUSE_TEST_POSTGRES_URL" -qc "CREATE DATABASE wakeup"
  url="${FRAMEHOUSE_TEST_POSTGRES_URL%/*}/wakeup"
  POLL_MS=500 "$0" "$url" poll "$1"
  POLL_MS=100 "$0" "$url" poll "$1"
  "$0" "$url" notify "$1"' "$bench" "$jobs" 2>/dev/null
