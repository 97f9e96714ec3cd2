#!/usr/bin/env bash
# Job wake-up latency across two nodes on one PostgreSQL: enqueue on node A -> start on
# node B, p50/p99, with B polling (the default 500 ms interval, and 100 ms) against B
# woken by LISTEN/NOTIFY (crates/queue/examples/wakeup_bench.rs), and against RabbitMQ as
# the transport (bench/amqp_wakeup.py: durable queue, persistent messages, confirms,
# manual acks); each also with a burst's throughput, in one run.
# PostgreSQL is the throwaway one of scripts/with-test-services.sh (fsync off); RabbitMQ
# is a throwaway one of scripts/rabbitmq.sh (its defaults: fsync on).
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
  "$0" "$url" notify "$1"
  broker=$(mktemp -d)
  port=$('"$root"'/scripts/rabbitmq.sh start "$broker/rabbitmq")
  "$FRAMEHOUSE_TEST_PYTHON" '"$root"'/bench/amqp_wakeup.py "amqp://guest:guest@127.0.0.1:$port/%2f" "$1"
  '"$root"'/scripts/rabbitmq.sh stop "$broker/rabbitmq"
  rm -rf "$broker"' "$bench" "$jobs" 2>/dev/null
