# Atende developer entry points. `make run` and `make test` work on a fresh Debian/Ubuntu machine:
# they reuse Postgres/Redis/NATS at $ATENDE__{POSTGRES,REDIS,NATS}__URL when those answer, and
# otherwise install and start throwaway instances (see deploy/local/README-infra.md).
#
#   make test ARGS='store::'          filter (passed to cargo nextest run / cargo test as is)
#   make test NEXTEST=0               force plain `cargo test`
#   make run                          all roles + demo tenant; Ctrl-C stops it
#   make infra-down / make clean-infra

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/atende-target
export CARGO_TARGET_DIR
ATENDE_BIN ?= $(CARGO_TARGET_DIR)/debug/atende
export ATENDE_BIN
ARGS ?=
NEXTEST ?= auto

INFRA := deploy/local/infra.sh
# make runs each recipe line in its own shell: every line that needs the service URLs sources this.
ENV := . ./.infra/env &&
BUF_LOCAL := .infra/npm/node_modules/.bin/buf

.PHONY: help prereqs infra infra-down clean-infra build test lint fmt-check clippy buf-lint breaking run migrate bench

help:
	@echo "make run          start every role with a demo tenant (sets up Postgres/Redis/NATS if needed)"
	@echo "make test         run the test suite (ARGS='filter' to narrow it, NEXTEST=0 for cargo test)"
	@echo "make lint         cargo fmt --check, clippy -D warnings, buf lint"
	@echo "make build        cargo build --bin atende (target dir: $(CARGO_TARGET_DIR))"
	@echo "make migrate      apply database migrations"
	@echo "make infra        only make sure Postgres/Redis/NATS are up; writes .infra/env"
	@echo "make infra-down   stop the throwaway services started by make infra"
	@echo "make clean-infra  stop them and delete their data"
	@echo "make bench        cargo bench --workspace"

prereqs:
	@$(INFRA) prereqs

infra:
	@$(INFRA) up

infra-down:
	@$(INFRA) down

clean-infra:
	@$(INFRA) clean

build: prereqs
	$(CARGO) build --bin atende

test: infra
	$(ENV) if [ "$(NEXTEST)" != 0 ] && $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast $(ARGS); \
	else \
	  $(CARGO) test --workspace --no-fail-fast $(ARGS); \
	fi

lint: fmt-check buf-lint clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: prereqs
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# buf: the one on PATH, else @bufbuild/buf from npm into .infra/npm (npm itself via apt if missing).
buf-lint:
	@buf="$$(command -v buf || true)"; \
	if [ -z "$$buf" ]; then \
	  if [ ! -x $(BUF_LOCAL) ]; then \
	    $(INFRA) npm; \
	    echo "installing @bufbuild/buf into .infra/npm"; \
	    npm install --no-save --no-audit --no-fund --loglevel=error --prefix .infra/npm @bufbuild/buf >/dev/null; \
	  fi; \
	  buf=$(BUF_LOCAL); \
	fi; \
	echo "$$buf lint"; \
	"$$buf" lint

breaking: buf-lint
	@buf="$$(command -v buf || echo $(BUF_LOCAL))"; "$$buf" breaking --against '.git#branch=main,subdir=proto'

run: infra build
	$(ENV) deploy/local/run.sh

migrate: infra build
	$(ENV) ATENDE__SECURITY__MODE=$${ATENDE__SECURITY__MODE:-development} "$(ATENDE_BIN)" migrate

bench: infra
	$(ENV) $(CARGO) bench --workspace $(ARGS)
