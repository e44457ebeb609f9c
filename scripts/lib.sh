# shellcheck shell=bash
# Shared helpers for berth's CI and test scripts. Source it:
#
#   . "$(dirname "$0")/lib.sh"
#
# Functions:
#   log MSG...                  message to stderr, prefixed with the script name
#   die MSG...                  log and exit 1
#   free_port                   print a free TCP port on 127.0.0.1
#   wait_http URL [SECS] [PID]  wait until URL answers with any HTTP status
#                               (fails early if PID dies; default 60 s)
#   start_postgres_if_down      start the local PostgreSQL cluster if 127.0.0.1:5432 is down
#   create_test_db              create a fresh, uniquely named database; print its DSN
#   drop_test_db DSN|NAME       drop a database made by create_test_db
#   start_berth DIR DSN [LOG]   start "$BERTH_BIN serve $BERTH_SERVE_ARGS" on a free port
#                               with data dir DIR (DSN empty = SQLite in DIR); sets
#                               BERTH_PID, BERTH_ADDR
#   start_distribution DIR [LOG] start CNCF distribution (docker-registry) the same way;
#                               sets REGISTRY_PID, REGISTRY_ADDR
#   stop_pid PID                TERM, wait up to 10 s, then KILL one process we started
#   ensure_versitygw            print the path of a versitygw binary (the S3 server the
#                               S3 tests run against), installing the pinned version into
#                               $BERTH_CACHE on first use (~80 s, then cached)
#   ensure_go_tool NAME PKG VER print the path of NAME built from Go package PKG@VER,
#                               installed into $BERTH_CACHE/NAME/VER on first use
#   workspace NAME              results/NAME (emptied), a temp dir, and an EXIT trap that
#                               stops BERTH_PID and drops tmp and the database dsn
#
# Environment:
#   BERTH_CACHE   cache dir for built tools (default ${XDG_CACHE_HOME:-$HOME/.cache}/berth)
#   BERTH_SERVE_ARGS  extra flags for start_berth's "berth serve"
#   BERTH_VERSITYGW   a versitygw binary to use instead of the pinned one
#   VERSITYGW_VERSION the pinned versitygw module version
#   PGHOST/PGPORT/PGUSER        override the PostgreSQL server (default 127.0.0.1:5432, postgres)

BERTH_CACHE=${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
BERTH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH_PG_HOST=${PGHOST:-127.0.0.1}
BERTH_PG_PORT=${PGPORT:-5432}
BERTH_PG_USER=${PGUSER:-postgres}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}

log() { printf '%s: %s\n' "$(basename "${0:-lib.sh}")" "$*" >&2; }
die() { log "$@"; exit 1; }

# free_port prints a TCP port that was free on 127.0.0.1 a moment ago. The kernel
# picks it (bind to port 0), so parallel runs do not collide on a guessed range.
free_port() {
	local out
	if out=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) && [[ -n $out ]]; then
		echo "$out"
		return 0
	fi
	# Fallback without python: random port in the ephemeral range not in use.
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_http URL [TIMEOUT_SECS] [PID]: succeed as soon as URL returns any HTTP
# response (401 counts: the server is up). Fail on timeout or if PID exits.
wait_http() {
	local url=$1 timeout=${2:-60} pid=${3:-} deadline code
	deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)
		if [[ -n $code && $code != 000 ]]; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited while waiting for $url"
			return 1
		fi
		sleep 0.2
	done
	log "timed out after ${timeout}s waiting for $url"
	return 1
}

_pg_ready() { pg_isready -q -h "$BERTH_PG_HOST" -p "$BERTH_PG_PORT" -t 2; }

# start_postgres_if_down starts the Debian cluster (the only one under
# /etc/postgresql) when nothing answers on the PostgreSQL port.
start_postgres_if_down() {
	if _pg_ready; then
		return 0
	fi
	local ver
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
	[[ -n $ver ]] || die "PostgreSQL is down and no cluster under /etc/postgresql"
	log "starting PostgreSQL $ver"
	pg_ctlcluster --skip-systemctl-redirect "$ver" main start || die "pg_ctlcluster start failed"
	local i
	for i in $(seq 1 60); do
		_pg_ready && return 0
		sleep 0.5
	done
	die "PostgreSQL did not become ready"
}

_psql_admin() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$BERTH_PG_HOST" -p "$BERTH_PG_PORT" -U "$BERTH_PG_USER" -d postgres "$@"
}

# create_test_db creates berth_ci_<pid>_<random> and prints its DSN.
create_test_db() {
	local name
	name="berth_ci_$$_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
	_psql_admin -c "CREATE DATABASE \"$name\"" >/dev/null || return 1
	echo "postgres://${BERTH_PG_USER}@${BERTH_PG_HOST}:${BERTH_PG_PORT}/${name}?sslmode=disable"
}

# drop_test_db DSN|NAME drops the database (WITH (FORCE) closes leftover connections).
drop_test_db() {
	local name=$1
	name=${name%%\?*}
	name=${name##*/}
	[[ $name == berth_ci_* ]] || die "refusing to drop non-test database '$name'"
	_psql_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
}

# stop_pid PID: TERM, then KILL after 10 s. Only for processes this script started.
stop_pid() {
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.2
	done
	log "pid $pid ignored SIGTERM for 10s, killing"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# start_berth DATA_DIR DSN [LOGFILE]: start "$BERTH_BIN serve" on a free loopback
# port and wait for /v2/. Sets BERTH_PID and BERTH_ADDR (host:port).
# BERTH_SERVE_ARGS adds flags to serve (e.g. --auth-enabled).
start_berth() {
	local data=$1 dsn=${2:-} logf=${3:-$1/berth.log} port
	: "${BERTH_BIN:?BERTH_BIN must point at a built berth binary}"
	port=$(free_port) || die "no free port"
	BERTH_ADDR="127.0.0.1:$port"
	# shellcheck disable=SC2086 # BERTH_SERVE_ARGS is a list of extra flags
	"$BERTH_BIN" serve --addr "$BERTH_ADDR" --data "$data" --db "$dsn" ${BERTH_SERVE_ARGS:-} >"$logf" 2>&1 &
	BERTH_PID=$!
	if ! wait_http "http://$BERTH_ADDR/v2/" 60 "$BERTH_PID"; then
		log "berth failed to start; last log lines:"
		tail -n 30 "$logf" >&2 || true
		stop_pid "$BERTH_PID"
		return 1
	fi
}

# start_distribution DATA_DIR [LOGFILE]: start CNCF distribution (docker-registry, Debian
# package) on a free loopback port, filesystem storage, deletes enabled, no auth.
# Sets REGISTRY_PID and REGISTRY_ADDR.
start_distribution() {
	local data=$1 logf=${2:-$1/registry.log} port
	command -v docker-registry >/dev/null || die "docker-registry not installed (apt-get install -y docker-registry)"
	port=$(free_port) || die "no free port"
	REGISTRY_ADDR="127.0.0.1:$port"
	mkdir -p "$data/storage"
	cat >"$data/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY_ADDR
EOF
	# The Debian unit would run it as a service; we run our own instance only.
	docker-registry serve "$data/config.yml" >"$logf" 2>&1 &
	REGISTRY_PID=$!
	if ! wait_http "http://$REGISTRY_ADDR/v2/" 30 "$REGISTRY_PID"; then
		tail -n 30 "$logf" >&2 || true
		stop_pid "$REGISTRY_PID"
		return 1
	fi
}

# ensure_versitygw prints the path of a versitygw binary: $BERTH_VERSITYGW when
# set, else the pinned version cached under $BERTH_CACHE, built with `go install`
# from the module proxy on first use. Progress goes to stderr.
ensure_versitygw() {
	if [[ -n ${BERTH_VERSITYGW:-} ]]; then
		[[ -x $BERTH_VERSITYGW ]] || die "BERTH_VERSITYGW=$BERTH_VERSITYGW is not an executable"
		echo "$BERTH_VERSITYGW"
		return 0
	fi
	ensure_go_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
}

# ensure_go_tool NAME PKG VERSION prints the path of the binary NAME built from the Go
# package PKG at module version VERSION, cached as $BERTH_CACHE/NAME/VERSION/NAME and
# built with `go install PKG@VERSION` (the tool's own go.mod, never berth's) on first
# use. Progress goes to stderr.
ensure_go_tool() {
	local name=$1 pkg=$2 version=$3
	local dir="$BERTH_CACHE/$name/$version"
	if [[ ! -x $dir/$name ]]; then
		log "installing $name $version into $dir (one-time)"
		local tmp t0=$SECONDS
		mkdir -p "$dir"
		tmp=$(mktemp -d "$dir/build.XXXXXX")
		GOBIN=$tmp GOFLAGS=-mod=mod go install "$pkg@$version" >&2 ||
			{ rm -rf "$tmp"; die "installing $name $version failed"; }
		mv -f "$tmp/$name" "$dir/$name" # atomic: a concurrent run never sees half a binary
		rm -rf "$tmp"
		log "installed $name $version in $((SECONDS - t0))s"
	fi
	echo "$dir/$name"
}

# workspace NAME: the run's folders and their cleanup, for a script that starts one
# berth at a time over a data dir or a PostgreSQL database. Sets results (emptied:
# ${RESULTS_ROOT:-repo root}/results/NAME), tmp (a new temp dir), BERTH_PID and dsn
# (empty; the script sets them), and traps EXIT to stop the server and remove tmp
# and the database dsn names, unless KEEP_DATA=1.
workspace() {
	results="${RESULTS_ROOT:-$BERTH_ROOT/results}/$1"
	rm -rf "$results"
	mkdir -p "$results"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-$1.XXXXXX")
	BERTH_PID=
	dsn=
	trap _workspace_cleanup EXIT
}

_workspace_cleanup() {
	stop_pid "$BERTH_PID"
	if [[ ${KEEP_DATA:-0} != 1 ]]; then
		[[ -z $dsn ]] || drop_test_db "$dsn" || true
		rm -rf "$tmp"
	else
		log "kept $tmp ${dsn:+and $dsn}"
	fi
}
