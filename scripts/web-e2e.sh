#!/usr/bin/env bash
# The web interface in a real browser (docs/design/web.md): Debian's chromium, driven
# by playwright-core from npm (e2e/web/). Run by .ci/run (make web-e2e).
#
#   scripts/web-e2e.sh
#
# For each backend in WEB_E2E_BACKENDS it starts `berth serve --auth-enabled` over a
# fresh data dir (SQLite) or database (PostgreSQL), then:
#
#   1. makes a registry administrator and the user alice, the namespaces team (private,
#      alice may write) and pub (public);
#   2. pushes team/app:v1, team/app:v2 (two one-layer images) and pub/tools:latest with
#      crane, and deletes the tag team/app:v2 over the OCI API as alice;
#   3. runs the browser tests (e2e/web/ui.test.mjs): an anonymous visitor sees pub and
#      not team, and cannot restore; alice signs in, opens v2's history, clicks Restore,
#      and the tag is back over the OCI API on the same digest; a POST without the CSRF
#      token, or from another origin, is refused; expiry, policies, the collector (admin
#      only), sign-out, a phone-width page.
#
# Screenshots of every page visited: results/web-e2e/<backend>/*.png; the server's
# log: results/web-e2e/<backend>/server.log.
#
# Environment:
#   WEB_E2E_BACKENDS   backends to run (default "sqlite postgres")
#   BERTH_BIN          a berth binary to test instead of building ./cmd/berth
#   CHROMIUM           the browser (default /usr/bin/chromium: apt-get install chromium)
#   KEEP_DATA=1        keep the temp dir and the PostgreSQL database
#   RESULTS_ROOT       where results/ goes (default: repo root)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

CRANE_VERSION=${CRANE_VERSION:-v0.22.1}
read -r -a backends <<<"${WEB_E2E_BACKENDS:-sqlite postgres}"
for backend in "${backends[@]}"; do
	case $backend in sqlite | postgres) ;; *) die "WEB_E2E_BACKENDS: unknown backend $backend (sqlite, postgres)" ;; esac
done
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[[ -x $CHROMIUM ]] || die "no browser at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"
command -v node >/dev/null || die "node is not installed"

workspace web-e2e

t0=$SECONDS
crane=$(ensure_go_tool crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION")
# playwright-core, as package-lock.json pins it (no browser download: it drives Debian's).
(cd "$root/e2e/web" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
	die "npm ci in e2e/web failed"
log "tools ready in $((SECONDS - t0))s"
if [[ -z ${BERTH_BIN:-} ]]; then
	BERTH_BIN=$tmp/berth
	(cd "$root" && go build -o "$BERTH_BIN" ./cmd/berth)
fi

admin_pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
alice_pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

# berth CMD...: the berth CLI on the server's data dir and database, while it runs.
berth() { "$BERTH_BIN" "$@" --data "$data" --db "$dsn" --log-level warn; }

# layer N: a one-file layer tar, different for each N (no network, no base image).
layer() {
	mkdir -p "$tmp/layer"
	echo "berth web e2e, image $1" >"$tmp/layer/hello.txt"
	tar -C "$tmp/layer" -cf "$tmp/layer-$1.tar" hello.txt
	echo "$tmp/layer-$1.tar"
}

failed=0
for backend in "${backends[@]}"; do
	out="$results/$backend"
	mkdir -p "$out"
	data="$tmp/$backend"
	mkdir -p "$data"
	dsn=
	if [[ $backend == postgres ]]; then
		start_postgres_if_down
		dsn=$(create_test_db) || die "creating a PostgreSQL database failed"
	fi
	BERTH_SERVE_ARGS="--auth-enabled --gc-workers 0" start_berth "$data" "$dsn" "$out/server.log"
	url="http://$BERTH_ADDR"

	berth user add admin --admin --password-stdin <<<"$admin_pass" >/dev/null
	berth user add alice --password-stdin <<<"$alice_pass" >/dev/null
	berth namespace create team >/dev/null
	berth namespace create pub >/dev/null
	berth namespace visibility pub public >/dev/null
	berth grant alice write team >/dev/null
	berth grant alice write pub >/dev/null

	export DOCKER_CONFIG="$tmp/docker-$backend"
	"$crane" auth login "$BERTH_ADDR" -u alice -p "$alice_pass" >/dev/null 2>&1
	"$crane" append --insecure -f "$(layer 1)" -t "$BERTH_ADDR/team/app:v1" >/dev/null 2>&1
	"$crane" append --insecure -f "$(layer 2)" -t "$BERTH_ADDR/team/app:v2" >/dev/null 2>&1
	"$crane" append --insecure -f "$(layer 3)" -t "$BERTH_ADDR/pub/tools:latest" >/dev/null 2>&1
	v2=$("$crane" digest --insecure "$BERTH_ADDR/team/app:v2")
	code=$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$alice_pass" -X DELETE "$url/v2/team/app/manifests/v2")
	[[ $code == 202 ]] || die "$backend: deleting team/app:v2 answered $code"

	log "$backend: server on $url, running the browser tests"
	t1=$SECONDS
	if (cd "$root/e2e/web" && BERTH_URL=$url E2E_USER=alice E2E_PASS=$alice_pass E2E_ADMIN=admin E2E_ADMIN_PASS=$admin_pass \
		E2E_TAG_DIGEST=$v2 E2E_RESULTS="$out" node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs) >"$out/tests.log" 2>&1; then
		log "$backend: browser tests passed in $((SECONDS - t1))s ($(ls "$out"/*.png 2>/dev/null | wc -l) screenshots in $out)"
	else
		log "$backend: browser tests FAILED (last lines of $out/tests.log:)"
		tail -n 40 "$out/tests.log" >&2
		failed=1
	fi
	grep -E '^(ℹ|#) (tests|pass|fail)' "$out/tests.log" >&2 || true

	stop_pid "$BERTH_PID"
	BERTH_PID=
	if [[ -n $dsn && ${KEEP_DATA:-0} != 1 ]]; then
		drop_test_db "$dsn" || true
		dsn=
	fi
done
((failed == 0)) || die "web-e2e: failed (see $results)"
log "web-e2e: passed on ${backends[*]} in $((SECONDS - t0))s"
