#!/usr/bin/env bash
# The cluster benchmark (crates/framehouse/tests/cluster_bench.rs, a release build) on
# the throwaway PostgreSQL and SeaweedFS of scripts/with-test-services.sh, with its own
# Redis and nginx: a 500-image batch with 1 worker process against 2; a 1 GiB upload
# through nginx into SeaweedFS with the api node's peak RSS growth against `aws s3 cp`;
# nginx's proxy_cache against the api node for a public derivative. Then the job wake-up
# comparison (bench/wakeup.sh). Prints the BENCH lines.
source "$(dirname "$0")/lib.sh"
echo "== cluster: processing, 1 GiB upload, cached delivery"
(cd "$root" && scripts/with-test-services.sh cargo test --release -q -p framehouse \
  --features cluster-test --test cluster_bench -- --nocapture 2>&1) | grep '^BENCH'
"$root/bench/wakeup.sh"
