# Cairn — the two commands: `make demo` and `make test`.
# Everything they need is installed here, idempotently.

SHELL := /bin/bash
# wasmtime makes a cold build long: keep the host's build outside the clone so
# that fresh clones on the same machine reuse it. An existing CARGO_TARGET_DIR wins.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/cairn/target
export CAIRN_GUEST_TARGET_DIR ?= $(HOME)/.cache/cairn/guest-target
CARGO ?= cargo
CAIRN := $(CARGO_TARGET_DIR)/release/cairn
DEMO_DB := target/demo/cairn.db

.PHONY: all setup browser build guests guests-rust demo test lint unit bench bench-js clean pg-start pg-stop

all: build guests

setup:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

build: setup
	$(CARGO) build --release --locked -p cairn

guests-rust: setup
	scripts/build-rust-guests.sh

guests: guests-rust
	scripts/build-python-guests.sh
	scripts/build-js-guests.sh

demo: build guests-rust
	@rm -rf target/demo && mkdir -p target/demo
	@echo "== deploy"
	$(CAIRN) --db $(DEMO_DB) deploy target/guests/rust/hello-cities.wasm
	@echo "== start HelloCities and wait"
	@$(CAIRN) --db $(DEMO_DB) start HelloCities --id hello-demo --wait 60 -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["output"], separators=(",",":")))'
	@echo "== history"
	$(CAIRN) --db $(DEMO_DB) history hello-demo

lint: setup
	$(CARGO) fmt --all -- --check
	cd guests/rust && $(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings

# Headless Chromium + chromedriver for the console's browser test (tests/console).
browser:
	scripts/install-chromium.sh

# The tests need PostgreSQL (the conformance suite runs on every backend): a
# throwaway cluster under target/pg/ runs for the duration, and is stopped
# even when a test fails.
test: guests lint browser
	@set -euo pipefail; \
	trap 'scripts/pg.sh stop' EXIT; \
	export CAIRN_TEST_PG="$$(scripts/pg.sh start)"; \
	echo "== JavaScript SDK unit tests"; \
	(cd guests/js && npm test); \
	echo "== OpenAPI document"; scripts/validate-openapi.sh; \
	echo "== tests (CAIRN_TEST_PG=$$CAIRN_TEST_PG)"; \
	$(CARGO) test --release --locked --workspace

# PostgreSQL for running single tests by hand: `make pg-start`, then
# `CAIRN_TEST_PG=$$(scripts/pg.sh url) cargo test --release --test conformance`.
pg-start:
	scripts/pg.sh start

pg-stop:
	scripts/pg.sh stop

bench: build guests
	$(CAIRN) bench --mode all -n 1000

bench-js: build guests
	$(CAIRN) bench --mode all -n 1000 --hello target/guests/js/hello-cities.wasm --fanout target/guests/js/fan-out-fan-in.wasm

clean:
	rm -rf target/demo target/guests guests/python/.venv guests/python/.bindings
