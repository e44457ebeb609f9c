# berth developer and CI entry points. `make test` is what CI runs (.ci/run).
#
#   make test          vet + unit/integration tests + conformance on SQLite and PostgreSQL
#   make unit          vet + go test only
#   make conformance   OCI conformance suite against berth on both backends
#   make conformance-distribution   the same suite against CNCF distribution (reference numbers;
#                      needs `apt-get install docker-registry`)
#   make fuzz          each FUZZ_TARGETS entry for FUZZTIME
#   make bench         benchmarks
#
# PostgreSQL-backed Go tests read BERTH_TEST_POSTGRES_DSN (an admin DSN from which they
# create per-test databases); .ci/run exports it. Without it they should skip.

SHELL := /usr/bin/env bash
GO    ?= go

# -race: on by default. The race detector slows pure-Go SQLite (modernc, transpiled C)
# several-fold, but the GC's whole point is concurrency with pushes, so races are the
# bugs we most need to catch. If `make test` ever threatens the ~20 min CI budget on
# 2 cores, run `make test RACE=` or limit -race to the concurrency-heavy packages
# rather than dropping it silently. See .ci/run for the timing it prints.
RACE      ?= -race
TESTFLAGS ?=
# A hung test must fail CI well before the job is killed.
TESTTIMEOUT ?= 10m

# Space-separated pkg:FuzzName pairs, e.g.
#   FUZZ_TARGETS = ./internal/oci:FuzzParseManifest ./internal/oci:FuzzParseReference
FUZZ_TARGETS ?=
FUZZTIME     ?= 10s

BENCHFLAGS ?= -benchmem

.PHONY: test unit vet gotest conformance conformance-sqlite conformance-postgres \
	conformance-distribution fuzz bench clean

test: unit conformance

unit: vet gotest

vet:
	$(GO) vet ./...

gotest:
	$(GO) test $(RACE) -count=1 -timeout=$(TESTTIMEOUT) $(TESTFLAGS) ./...

conformance: conformance-sqlite conformance-postgres

conformance-sqlite:
	bash scripts/conformance.sh sqlite

conformance-postgres:
	bash scripts/conformance.sh postgres

conformance-distribution:
	bash scripts/conformance.sh distribution

# Fuzz targets run one at a time: `go test -fuzz` accepts exactly one package and
# one target. The anchored regexp keeps FuzzFoo from also matching FuzzFooBar.
fuzz:
	@set -euo pipefail; \
	targets="$(strip $(FUZZ_TARGETS))"; \
	if [[ -z $$targets ]]; then echo "fuzz: FUZZ_TARGETS is empty, nothing to do"; exit 0; fi; \
	for t in $$targets; do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		if [[ $$pkg == "$$t" || -z $$fn || -z $$pkg ]]; then echo "fuzz: bad entry '$$t' (want pkg:FuzzName)" >&2; exit 2; fi; \
		echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) "$$pkg"; \
	done

bench:
	$(GO) test -run='^$$' -bench=. $(BENCHFLAGS) ./...

clean:
	rm -rf results
