#!/usr/bin/env bash
# Run the OCI distribution-spec conformance suite against a fresh registry.
#
#   scripts/conformance.sh sqlite        berth, metadata in SQLite in a temp data dir
#   scripts/conformance.sh postgres      berth, metadata in a fresh PostgreSQL database
#   scripts/conformance.sh postgres-s3   berth, metadata in PostgreSQL, blobs in S3 (a versitygw
#                                        server on loopback, fresh root and bucket)
#   scripts/conformance.sh postgres-s3-redirect
#                                        the same with --s3-redirect: blob GETs answer 307 to a
#                                        presigned URL, which the suite's client follows
#   scripts/conformance.sh distribution  CNCF distribution 2.8 (apt-get install docker-registry),
#                                        the reference point for comparisons
#   scripts/conformance.sh BACKEND auth  berth with access control on (--auth-enabled): an
#                                        administrator is created with the CLI and the suite logs
#                                        in with OCI_USERNAME/OCI_PASSWORD through the token flow;
#                                        results under results/conformance-BACKEND-auth/
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
#   BERTH_VERSITYGW      the versitygw binary for the S3 backends; else versitygw on PATH,
#                        else $(go env GOPATH)/bin/versitygw, else the pinned version that
#                        lib.sh's ensure_versitygw installs into the cache
#
# The S3 bucket is made by creating a directory under versitygw's root before starting
# it: its posix backend serves each top-level directory as a bucket (no client or
# CreateBucket call needed). berth's log is results/.../server.log, versitygw's
# versitygw.log beside it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

backend=${1:-}
mode=${2:-}
case $backend in
sqlite | postgres | postgres-s3 | postgres-s3-redirect | distribution) ;;
*) die "usage: $0 sqlite|postgres|postgres-s3|postgres-s3-redirect|distribution [auth]" ;;
esac
case $mode in
"") ;;
auth) [[ $backend != distribution ]] || die "auth: berth only" ;;
*) die "usage: $0 BACKEND [auth]" ;;
esac
run=$backend${mode:+-$mode}

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
results="$results_root/conformance-$run"
rm -rf "$results"
mkdir -p "$results"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance-$run.XXXXXX")
server_pid=""
s3_pid=""
dsn=""
cleanup() {
	local rc=$?
	stop_pid "$server_pid"
	stop_pid "$s3_pid"
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

# versitygw_bin prints the versitygw to use (see BERTH_VERSITYGW above).
versitygw_bin() {
	if [[ -n ${BERTH_VERSITYGW:-} ]]; then
		[[ -x $BERTH_VERSITYGW ]] || die "BERTH_VERSITYGW=$BERTH_VERSITYGW is not an executable"
		echo "$BERTH_VERSITYGW"
	elif command -v versitygw >/dev/null; then
		command -v versitygw
	elif [[ -x $(go env GOPATH)/bin/versitygw ]]; then
		echo "$(go env GOPATH)/bin/versitygw"
	else
		ensure_versitygw || die "no versitygw: set BERTH_VERSITYGW, put versitygw on PATH, or go install github.com/versity/versitygw/cmd/versitygw"
	fi
}

# start_s3 starts versitygw (posix backend) on a free loopback port over a fresh root
# holding one bucket, and exports the BERTH_S3_* settings berth reads.
start_s3() {
	local gw port
	gw=$(versitygw_bin)
	mkdir -p "$tmp/s3/berth-conformance"
	port=$(free_port) || die "no free port"
	ROOT_ACCESS_KEY=berth ROOT_SECRET_KEY=berthsecret \
		"$gw" --port "127.0.0.1:$port" posix "$tmp/s3" >"$results/versitygw.log" 2>&1 &
	s3_pid=$!
	# Any HTTP answer (403 to an unsigned request) means it listens.
	wait_http "http://127.0.0.1:$port/" 30 "$s3_pid" || { tail -n 20 "$results/versitygw.log" >&2; die "versitygw did not start"; }
	export BERTH_STORAGE=s3 BERTH_S3_BUCKET=berth-conformance BERTH_S3_REGION=us-east-1
	export BERTH_S3_ENDPOINT="http://127.0.0.1:$port" BERTH_S3_PATH_STYLE=true
	export BERTH_S3_ACCESS_KEY=berth BERTH_S3_SECRET_KEY=berthsecret
	# 5 MiB parts, S3's minimum: the suite's larger chunked uploads then span parts.
	export BERTH_S3_PART_SIZE=5MiB
	if [[ $backend == postgres-s3-redirect ]]; then
		export BERTH_S3_REDIRECT=true
	fi
	log "versitygw $gw up at $BERTH_S3_ENDPOINT, bucket $BERTH_S3_BUCKET"
}

case $backend in
sqlite | postgres | postgres-s3 | postgres-s3-redirect)
	BERTH_BIN="$tmp/berth"
	log "building berth"
	(cd "$root" && go build -o "$BERTH_BIN" ./cmd/berth)
	if [[ $backend == postgres* ]]; then
		start_postgres_if_down
		dsn=$(create_test_db)
	fi
	if [[ $backend == *-s3* ]]; then
		start_s3
	fi
	mkdir -p "$tmp/data"
	if [[ $mode == auth ]]; then
		# The first administrator, made with the CLI as the README says, before serve.
		"$BERTH_BIN" migrate --data "$tmp/data" --db "$dsn" >"$results/migrate.log" 2>&1
		OCI_USERNAME=conformance
		OCI_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
		export OCI_USERNAME OCI_PASSWORD
		printf '%s\n' "$OCI_PASSWORD" | "$BERTH_BIN" user add "$OCI_USERNAME" --admin --password-stdin --data "$tmp/data" --db "$dsn"
		export BERTH_SERVE_ARGS="--auth-enabled"
	fi
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
log "$run registry up at http://$addr"

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
echo "conformance ($run): $passed passed, $failed failed"
if ((failed > 0 || passed == 0)); then
	exit 1
fi

# The suite passes as well when blobs are streamed, so check from berth's request log
# that the redirect run really redirected: every blob GET berth found answers 307
# (404 and 416 are berth's own answers), none streams the bytes with 200 or 206.
if [[ $backend == postgres-s3-redirect ]]; then
	gets=$(grep -E 'method=GET uri=/v2/[^ ]*/blobs/sha' "$results/server.log" || true)
	redirected=$(grep -c 'status=307' <<<"$gets" || true)
	streamed=$(grep -cE 'status=20[06]' <<<"$gets" || true)
	echo "conformance ($run): $redirected blob GETs redirected, $streamed streamed"
	if ((redirected == 0 || streamed > 0)); then
		die "the redirect run must redirect every blob GET (see $results/server.log)"
	fi
fi
