# berth developer and CI entry points. `make test` is what CI runs (.ci/run).
#
#   make test          vet + unit/integration tests + conformance on SQLite and PostgreSQL
#   make unit          vet + go test only
#   make vet           go vet, staticcheck (pinned, built into the cache on first use) and
#                      `go mod tidy -diff` (an untidy go.mod fails)
#   make readme        run the README's shell blocks (quickstart, management API, operations,
#                      access control) as written against fresh servers (scripts/readme.sh)
#   make conformance   OCI conformance suite against berth on every backend, access control on
#                      (and on SQLite with it off too)
#   make conformance-distribution   the same suite against CNCF distribution (reference numbers;
#                      needs `apt-get install docker-registry`)
#   make clients       real clients (crane, oras, regctl, skopeo, helm, and docker where
#                      dockerd is installed) against berth with access control on, on
#                      SQLite and PostgreSQL: logins, push, pull, refused pushes, wrong
#                      passwords (scripts/clients.sh; CLIENTS="docker" runs only those)
#   make signatures    signatures follow their image with the real cosign: sign and attest,
#                      delete and restore, collect, restore the signature (scripts/signatures.sh;
#                      cosign is built into the cache on first use, ~7 min)
#   make web-e2e       the web interface in headless Chromium driven by playwright-core, on
#                      SQLite and PostgreSQL: sign-in, restore from a tag's history, CSRF,
#                      anonymous visitors (scripts/web-e2e.sh; needs `apt-get install chromium`
#                      and node/npm; screenshots in results/web-e2e)
#   make fuzz          each FUZZ_TARGETS entry for FUZZTIME
#   make torture       short fixed-seed torture runs (berth-torture): SQLite, PostgreSQL,
#                      two replicas on PostgreSQL, two replicas on PostgreSQL + S3
#                      (TORTURE_DURATION each; see
#                      docs/design/torture.md; PostgreSQL runs need BERTH_TEST_POSTGRES_DSN
#                      or a server on 127.0.0.1:5432)
#   make torture-long  the same for TORTURE_LONG each (the issue's soak: 30m)
#   make bench         benchmarks
#   make bench-smoke   a tiny run of the berth-vs-distribution harness (bench/RESULTS.md);
#                      berth only unless docker-registry is installed
#   make bench-compare the full comparison at 1k and 10k manifests (needs docker-registry;
#                      writes bench/RESULTS.md, results.json, gc-time.png)
#   make bench-limits  this machine's physical limits for a collection: batched SQL deletes
#                      (SQLite, PostgreSQL), unlinks, S3 DeleteObjects (berth-bench limits)
#
# PostgreSQL-backed Go tests read BERTH_TEST_POSTGRES_DSN (an admin DSN from which they
# create per-test databases); .ci/run exports it. Without it they should skip.
# S3-backed tests run against versitygw on loopback, which make installs on first use.

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
FUZZ_TARGETS ?= ./internal/oci:FuzzParseManifest ./internal/oci:FuzzValidateRepoName ./internal/oci:FuzzParseReference \
	./internal/api:FuzzParseContentRange ./internal/api:FuzzBadRange
FUZZTIME     ?= 10s

# Torture runs: fixed seed so that CI is reproducible; a violation prints the seed
# and the minimal history, and the run exits non-zero. TORTURE_FLAGS adds flags
# to every run (e.g. TORTURE_FLAGS=-keep).
TORTURE_DURATION ?= 45s
TORTURE_LONG     ?= 30m
TORTURE_SEED     ?= 1
TORTURE_FLAGS    ?=
TORTURE_BIN      ?= results/torture/berth-torture

BENCHFLAGS ?= -benchmem

.PHONY: test unit vet gotest readme clients signatures web-e2e conformance conformance-sqlite conformance-postgres bench-smoke bench-compare \
	torture torture-long torture-build torture-sqlite torture-postgres torture-replicas torture-s3 \
	conformance-distribution fuzz bench clean

test: unit conformance

unit: vet gotest

# staticcheck with its default checks (a check that is wrong for berth would be turned
# off in a staticcheck.conf, with the reason; none is). The version is pinned and built
# into the cache with ensure_go_tool (~25 s, once); a run takes about 2 min on 2 cores.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK = $$(bash -c '. scripts/lib.sh && ensure_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck $(STATICCHECK_VERSION)')

vet:
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) mod tidy -diff

# The S3 tests need versitygw; VERSITYGW prints its path, installing the pinned
# version into the cache on first use (scripts/lib.sh ensure_versitygw). Set
# BERTH_VERSITYGW to use another binary.
VERSITYGW = $$(bash -c '. scripts/lib.sh && ensure_versitygw')

gotest:
	BERTH_VERSITYGW=$(VERSITYGW) $(GO) test $(RACE) -count=1 -timeout=$(TESTTIMEOUT) $(TESTFLAGS) ./...

# Every backend with access control on (the suite logs in with OCI_USERNAME/OCI_PASSWORD),
# and SQLite with it off as well.
conformance: conformance-sqlite conformance-sqlite-auth conformance-postgres conformance-postgres-s3 conformance-postgres-s3-redirect

conformance-sqlite:
	bash scripts/conformance.sh sqlite

.PHONY: conformance-sqlite-auth
conformance-sqlite-auth:
	bash scripts/conformance.sh sqlite auth

conformance-postgres:
	bash scripts/conformance.sh postgres auth

# PostgreSQL metadata + S3 blobs (a versitygw started per run), streamed and redirected.
.PHONY: conformance-postgres-s3 conformance-postgres-s3-redirect
conformance-postgres-s3:
	bash scripts/conformance.sh postgres-s3 auth

conformance-postgres-s3-redirect:
	bash scripts/conformance.sh postgres-s3-redirect auth

conformance-distribution:
	bash scripts/conformance.sh distribution

# Space-separated client names (crane oras regctl skopeo helm docker); empty: all of
# them, docker only where dockerd is installed.
CLIENTS ?=

clients:
	bash scripts/clients.sh $(CLIENTS)

readme:
	bash scripts/readme.sh

signatures:
	bash scripts/signatures.sh

web-e2e:
	bash scripts/web-e2e.sh

# Each FUZZ_TARGETS entry in turn; scripts/fuzz.sh says why a bare deadline at the
# -fuzztime boundary is retried once (a Go 1.26 coordinator race) and nothing else is.
fuzz:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME) $(strip $(FUZZ_TARGETS))

torture-build:
	@mkdir -p results/torture
	$(GO) build -o $(TORTURE_BIN) ./cmd/berth-torture
	$(GO) build -o results/torture/berth ./cmd/berth

# One berth build for the three runs; each run starts berth as separate processes.
TORTURE_RUN = $(TORTURE_BIN) -berth results/torture/berth -dir results/torture -seed $(TORTURE_SEED) $(TORTURE_FLAGS)

torture: torture-sqlite torture-postgres torture-replicas torture-s3

torture-sqlite: torture-build
	$(TORTURE_RUN) -backend sqlite -duration $(TORTURE_DURATION)

torture-postgres: torture-build
	$(TORTURE_RUN) -backend postgres -duration $(TORTURE_DURATION)

torture-replicas: torture-build
	$(TORTURE_RUN) -backend postgres -replicas 2 -duration $(TORTURE_DURATION)

# Two replicas on one PostgreSQL database and one S3 bucket (a versitygw per run),
# with outages of the object store (versitygw SIGKILLed and restarted) besides the
# SIGKILLs of berth.
torture-s3: torture-build
	BERTH_VERSITYGW=$(VERSITYGW) $(TORTURE_RUN) -backend postgres -replicas 2 -blob s3 -s3-outage-every 15s -duration $(TORTURE_DURATION)

torture-long:
	$(MAKE) --no-print-directory torture TORTURE_DURATION=$(TORTURE_LONG)

bench:
	$(GO) test -run='^$$' -bench=. $(BENCHFLAGS) ./...

bench-smoke:
	$(GO) run ./bench/cmd/berth-bench -smoke -out results/bench-smoke

bench-compare:
	$(GO) run ./bench/cmd/berth-bench -scales 1000,10000 -out bench

.PHONY: bench-limits
bench-limits:
	BERTH_VERSITYGW=$(VERSITYGW) $(GO) run ./bench/cmd/berth-bench limits

clean:
	rm -rf results
