#!/usr/bin/env bash
# Run the OCI distribution-spec conformance suite against a fresh registry.
#
#   scripts/conformance.sh sqlite        berth, metadata in SQLite in a temp data dir
#   scripts/conformance.sh postgres      berth, metadata in a fresh PostgreSQL database
#   scripts/conformance.sh distribution  CNCF distribution 2.8 (apt-get install docker-registry),
#                                        the reference point for comparisons
#
# Builds the suite once into $BERTH_CACHE/conformance/<version>/ (a scratch module, never
# touching berth's go.mod). Writes results.yaml, junit.xml, report.html and the server log
# under results/conformance-BACKEND/, prints "conformance (BACKEND): N passed, N failed"
# and exits non-zero if anything failed.
#
# Environment:
#   CONFORMANCE_VERSION  module version of github.com/opencontainers/distribution-spec/conformance
#   OCI_*                any suite setting (e.g. OCI_FILTER_TEST, OCI_LOG=debug) is passed through
#   RESULTS_ROOT         where results/ goes (default: repo root)
#   KEEP_DATA=1          keep the temp data dir (and, for postgres, the database)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

backend=${1:-}
case $backend in
sqlite | postgres | distribution) ;;
*) die "usage: $0 sqlite|postgres|distribution" ;;
esac

CONFORMANCE_VERSION=${CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
conf_pkg=github.com/opencontainers/distribution-spec/conformance

# build_conformance prints the path of the suite binary, building it on first use.
# The package is a plain main package (go build works; the legacy `go test` entry
# point TestLegacy is deprecated), so a plain go build is used.
build_conformance() {
	local dir="$BERTH_CACHE/conformance/$CONFORMANCE_VERSION"
	local bin="$dir/conformance"
	if [[ -x $bin ]]; then
		echo "$bin"
		return
	fi
	mkdir -p "$dir"
	local tmpmod
	tmpmod=$(mktemp -d "$dir/build.XXXXXX")
	log "building conformance suite $CONFORMANCE_VERSION (one-time, cached in $dir)"
	(
		cd "$tmpmod"
		export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
		go mod init scratch >/dev/null 2>&1
		go get "$conf_pkg@$CONFORMANCE_VERSION" >&2
		go build -o conformance "$conf_pkg" >&2
	) || { rm -rf "$tmpmod"; die "building the conformance suite failed"; }
	mv -f "$tmpmod/conformance" "$bin" # atomic: concurrent runs never see half a binary
	rm -rf "$tmpmod"
	echo "$bin"
}

conf_bin=$(build_conformance)

results_root=${RESULTS_ROOT:-$root/results}
results="$results_root/conformance-$backend"
rm -rf "$results"
mkdir -p "$results"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance-$backend.XXXXXX")
server_pid=""
dsn=""
cleanup() {
	local rc=$?
	stop_pid "$server_pid"
	if [[ ${KEEP_DATA:-0} == 1 ]]; then
		log "kept data dir $tmp${dsn:+ and database $dsn}"
	else
		if [[ -n $dsn ]]; then drop_test_db "$dsn" || log "could not drop $dsn"; fi
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case $backend in
sqlite | postgres)
	BERTH_BIN="$tmp/berth"
	log "building berth"
	(cd "$root" && go build -o "$BERTH_BIN" ./cmd/berth)
	if [[ $backend == postgres ]]; then
		start_postgres_if_down
		dsn=$(create_test_db)
	fi
	mkdir -p "$tmp/data"
	start_berth "$tmp/data" "$dsn" "$results/server.log"
	server_pid=$BERTH_PID
	addr=$BERTH_ADDR
	;;
distribution)
	start_distribution "$tmp" "$results/server.log"
	server_pid=$REGISTRY_PID
	addr=$REGISTRY_ADDR
	;;
esac
log "$backend registry up at http://$addr"

# Settings (names from the suite's config.go; the OCI_ROOT_URL / OCI_NAMESPACE /
# OCI_TEST_* names are legacy and only produce warnings). Every API and data
# set that is on by default stays on, including OCI_DATA_SHA512. The suite is run
# from the results dir so that a stray oci-conformance.yaml cannot change it.
export OCI_CONFIGURATION=/dev/null
export OCI_VERSION=${OCI_VERSION:-1.1}
export OCI_REGISTRY=$addr
export OCI_TLS=disabled
export OCI_REPO1=${OCI_REPO1:-conformance/repo1}
export OCI_REPO2=${OCI_REPO2:-conformance/repo2}
export OCI_RESULTS_DIR=$results
export OCI_API_PULL=true OCI_API_PUSH=true
export OCI_API_BLOBS_DELETE=true OCI_API_MANIFESTS_DELETE=true OCI_API_TAGS_DELETE=true
export OCI_API_TAGS_LIST=true OCI_API_REFERRER=true
export OCI_DATA_SHA512=${OCI_DATA_SHA512:-true}

start=$SECONDS
set +e
(cd "$results" && "$conf_bin") >"$results/output.txt" 2>&1
suite_rc=$?
set -e
elapsed=$((SECONDS - start))

junit="$results/junit.xml"
if [[ ! -s $junit ]]; then
	tail -n 40 "$results/output.txt" >&2
	die "conformance suite wrote no junit.xml (exit $suite_rc)"
fi

# The totals on <testsuites> are the suite's own counters (the same numbers as its
# HTML report); the <testcase> elements are only the leaves, so counting them
# undercounts. passed = tests - failures - errors - skipped - disabled.
attr() {
	sed -n 's/.*<testsuites[^>]* '"$1"'="\([0-9]*\)".*/\1/p' "$junit" | head -n1
}
tests=$(attr tests)
failures=$(attr failures)
errors=$(attr errors)
skipped=$(attr skipped)
disabled=$(attr disabled)
[[ -n $tests ]] || die "cannot parse $junit"
failed=$((${failures:-0} + ${errors:-0}))
passed=$((tests - failed - ${skipped:-0} - ${disabled:-0}))

log "suite took ${elapsed}s; of $tests: skipped ${skipped:-0}, disabled ${disabled:-0}; details: $results/report.html"
if ((failed > 0)); then
	grep -E 'level=(WARN|ERROR)' "$results/output.txt" | head -n 20 >&2 || true
fi
echo "conformance ($backend): $passed passed, $failed failed"
if ((failed > 0 || passed == 0)); then
	exit 1
fi
