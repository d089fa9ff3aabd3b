# mcpq developer entry points. `make` (or `make help`) lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# A pnpm installed locally by scripts/ensure-tools.sh, and the sbin dirs where Debian
# puts nats-server (often missing from a non-root PATH).
export PATH := $(CURDIR)/.mcpq/tools/node_modules/.bin:$(PATH):/usr/local/sbin:/usr/sbin

.PHONY: help setup build dev test fuzz conformance bench bench-compare chaos lint knip format typecheck \
	clean distclean compose-check

help: ## list targets
	@echo "mcpq make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

setup: ## ensure node/pnpm/nats-server, pnpm install, pnpm build
	@scripts/ensure-tools.sh

build: ## compile all TypeScript projects (tsc -b)
	pnpm build

# `make dev PORT=8081 CATALOGS=example`; without them `mcpq dev` reads MCPQ_PORT / MCPQ_CATALOGS
# (defaults 8080 and example,conformance).
dev: setup ## run nats-server + edge (127.0.0.1:$PORT, default 8080) + one worker per catalog
	./mcpq dev $(if $(PORT),--port $(PORT)) $(if $(CATALOGS),--catalog $(CATALOGS))

# setup already ran `pnpm build` (tsc -b type-checks every built src/), so only the test code
# is left to check (with the loadtests/src files the tests import): `typecheck:tests`, not the
# whole `typecheck`, which also re-runs tsc -b and checks all of loadtests/src.
# The suite also runs an edge and a worker on each supported Node major other than its own
# (services/cli/test/node-versions.test.ts): scripts/node.sh fetches the ones the machine lacks
# (node@20/22/24 from the npm registry) once, into .mcpq/node<major>.
test: setup ## type-check tests and loadtests, lint, format check (prettier), unused exports/files (knip), then the full vitest suite (real nats-server, real sockets; also an edge and a worker on Node 22 and 24)
	for major in 20 22 24; do scripts/node.sh $$major >/dev/null; done
	pnpm typecheck:tests
	pnpm lint
	pnpm format:check
	pnpm knip
	pnpm vitest run --reporter=default

# The seeded slice of the same fuzz target runs in `make test` (500 inputs, fixed seed).
FUZZ_INPUTS ?= 12000
FUZZ_SEED ?= $(shell date +%s)
fuzz: setup ## fuzz every transport against a real stack (FUZZ_INPUTS=12000, FUZZ_SEED=<now>); figures in .fuzz/report.json
	MCPQ_FUZZ_INPUTS=$(FUZZ_INPUTS) MCPQ_FUZZ_SEED=$(FUZZ_SEED) MCPQ_FUZZ_REPORT=$(CURDIR)/.fuzz/report.json \
		pnpm vitest run --reporter=default services/edge/test/fuzz.test.ts

conformance: setup ## run the MCP conformance suites, 2025-11-25 and 2026-07-28 (1 worker, then 2 workers)
	scripts/conformance.sh

bench: setup ## quick load benchmark
	pnpm --filter @mcpq/loadtests bench

bench-compare: ## compare the latest bench results with the baselines
	pnpm --filter @mcpq/loadtests bench-compare

chaos: setup ## chaos benchmark: NATS node/leader kill, partition, broker restart, worker and edge kill -9 under load (docs/chaos.md)
	pnpm --filter @mcpq/loadtests chaos

lint: ## eslint over the repo
	pnpm lint

knip: ## unused exports and files across the workspace (knip.json; `/** @public */` marks deliberate API)
	pnpm knip

format: ## prettier --write over the repo (`make test` runs prettier --check)
	pnpm format

typecheck: ## type-check all projects: src (tsc -b), tests and loadtests
	pnpm typecheck

clean: ## remove build outputs and test/conformance artifacts
	rm -rf packages/*/dist services/*/dist loadtests/dist infra/dist .conformance .fuzz coverage
	find . -name '*.tsbuildinfo' -not -path '*/node_modules/*' -not -path './.mcpq/*' -delete

distclean: clean ## clean + node_modules and the .mcpq tool cache (node22, node24, conformance, pnpm)
	rm -rf node_modules packages/*/node_modules services/*/node_modules loadtests/node_modules .mcpq

# A placeholder key when none is set: the check validates the file, it starts nothing.
compose-check: export MCPQ_REQUEST_STATE_KEYS ?= compose-check-placeholder-key-0123456789abcdef
compose-check: ## validate docker-compose.yml (no engine needed)
	@if docker compose version >/dev/null 2>&1; then docker compose config -q; \
	elif command -v docker-compose >/dev/null 2>&1; then docker-compose config -q; \
	else echo "compose-check: need the docker compose plugin (or docker-compose)" >&2; exit 1; fi
	@echo "compose-check: docker-compose.yml ok"
