# Framehouse: `make run` serves http://127.0.0.1:8080 on embedded defaults (data in ./data);
# `make test` runs every test against SQLite and throwaway servers (PostgreSQL, OpenID
# providers, dnsmasq) it starts itself, with the pinned Python test tools.
CARGO_TARGET_DIR ?= $(HOME)/.cache/framehouse-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: run build test cluster-test lint fmt bench

run:
	scripts/install-deps.sh run
	$(CARGO) build --release -p framehouse
	$(CARGO_TARGET_DIR)/release/framehouse serve

build:
	scripts/install-deps.sh run
	$(CARGO) build --release -p framehouse

test:
	scripts/install-deps.sh test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	scripts/with-test-services.sh $(CARGO) test --workspace --no-fail-fast

# The cluster test: 2 api + 2 worker + 1 scheduler processes behind nginx, on PostgreSQL,
# SeaweedFS, Redis and RabbitMQ, through kills, outages and a rolling restart (minutes).
cluster-test:
	scripts/install-deps.sh test
	$(CARGO) clippy -p framehouse --features cluster-test --all-targets --quiet -- -D warnings
	scripts/with-test-services.sh $(CARGO) test -p framehouse --features cluster-test --test cluster -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	scripts/install-deps.sh bench
	bench/presets.sh
	bench/transform.sh
	bench/thumbor.sh
	bench/upload.sh
	bench/delivery.sh
	bench/video.sh
	bench/auth.sh
	bench/ui.sh
	bench/events.sh
	bench/cluster.sh
	bench/tus.sh
