#!/usr/bin/env bash
# Real registry clients against berth with access control on.
#
#   scripts/clients.sh                 every client below, docker only where dockerd is installed
#   scripts/clients.sh CLIENT...       only these (crane oras regctl skopeo helm docker);
#                                      a client named here and not installed is a failure
#
# It builds berth once; for each backend in CLIENTS_BACKENDS it starts `berth serve
# --auth-enabled` on a free loopback port over a fresh data dir (SQLite) or a fresh
# database (PostgreSQL), and creates with the berth CLI (same binary, same --data/--db,
# while the server runs):
#
#   admin       a registry administrator (user, password)
#   outsider    a user with no rights on the namespace ci; owns the namespace outsider
#   ci+pusher   a robot of the namespace ci with the write role
#   login-X     a user per client X, for its wrong-password check
#
# It checks the challenge (`/v2/` answers 401 with a Bearer challenge naming /auth/token,
# a token comes back for Basic credentials, a wrong password gets a 401), seeds ci/base:v1
# (a one-layer image built by `crane append` from a tar made here, no network) and
# outsider/base:v1, then with each client, over plain HTTP:
#
#   - logs in as the robot through the token flow, pushes (copies ci/base or its own
#     artefact) into ci/<client> and pulls it back, comparing digests or bytes;
#   - logs in as outsider and checks that a push into ci is refused for lack of rights
#     (and that nothing landed);
#   - checks that a wrong password (for login-X) fails to log in, refused as wrong (401),
#     not throttled (429). These run after every client's positive checks: failed
#     logins from one address are throttled (docs/design/auth.md).
#
# Clients: crane, oras, regctl and helm are built from pinned module versions into
# $BERTH_CACHE on first use (lib.sh ensure_go_tool; 7.5 min measured on a loaded 2-core
# machine, helm 6 of them; then cached);
# skopeo is Debian's package. docker needs Debian's docker.io: the script starts its own
# dockerd (vfs storage, no iptables, no bridge, its own socket and data root) and stops it.
#
# Output: one line per step, then one summary line per client and backend
# ("clients (sqlite): crane ok") and "clients: N passed, N failed, N skipped"; exits
# non-zero if any failed. Logs are under results/clients/: <backend>/server.log (berth's),
# <backend>/<client>.log (each command and its output, secrets masked), dockerd.log.
#
# Environment:
#   CLIENTS_BACKENDS   backends to run, in order (default "sqlite postgres")
#   CLIENTS_DEBUG=1    run clients with their debug output on (into their logs)
#   BERTH_BIN          a berth binary to test instead of building ./cmd/berth
#   KEEP_DATA=1        keep the temp dir (data, client configs) and the PostgreSQL database
#   RESULTS_ROOT       where results/ goes (default: repo root)
#   CRANE_VERSION ORAS_VERSION REGCTL_VERSION HELM_VERSION   pinned module versions
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

CRANE_VERSION=${CRANE_VERSION:-v0.22.1}
ORAS_VERSION=${ORAS_VERSION:-v1.3.6}
REGCTL_VERSION=${REGCTL_VERSION:-v0.11.7}
HELM_VERSION=${HELM_VERSION:-v3.22.0}

all_clients=(crane oras regctl skopeo helm docker)
explicit=0
clients=()
for arg in "$@"; do
	case $arg in
	crane | oras | regctl | skopeo | helm | docker) clients+=("$arg") explicit=1 ;;
	*) die "usage: $0 [crane|oras|regctl|skopeo|helm|docker]..." ;;
	esac
done
((${#clients[@]})) || clients=("${all_clients[@]}")
read -r -a backends <<<"${CLIENTS_BACKENDS:-sqlite postgres}"
for backend in "${backends[@]}"; do
	case $backend in sqlite | postgres) ;; *) die "CLIENTS_BACKENDS: unknown backend $backend (sqlite, postgres)" ;; esac
done
debug=${CLIENTS_DEBUG:-0}

results="${RESULTS_ROOT:-$root/results}/clients"
rm -rf "$results"
mkdir -p "$results"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-clients.XXXXXX")

server_pid=""
dockerd_pid=""
dsn=""
cleanup() {
	local rc=$?
	stop_pid "$dockerd_pid"
	stop_pid "$server_pid"
	if [[ ${KEEP_DATA:-0} == 1 ]]; then
		log "kept $tmp${dsn:+ and database $dsn}"
	else
		if [[ -n $dsn ]]; then drop_test_db "$dsn" || log "could not drop $dsn"; fi
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- output helpers -------------------------------------------------------------

current=setup     # the client being run, for the step lines
clog=/dev/null    # its log
secrets=()        # masked in every printed command

say() { printf 'clients[%s]: %s\n' "$current" "$*"; }

mask() {
	local s=$* sec
	for sec in "${secrets[@]}"; do
		s=${s//"$sec"/'***'}
	done
	printf '%s' "$s"
}

# show_tail prints the end of the current client's log, indented, secrets masked.
show_tail() {
	local line
	tail -n 15 "$clog" | while IFS= read -r line; do
		printf '    %s\n' "$(mask "$line")"
	done
}

# in_dir DIR CMD...: run CMD in DIR (for clients that take relative file names).
in_dir() { (cd "$1" && shift && "$@"); }

# run DESC CMD...: print what is done, run it with its output appended to the client's
# log; on failure show the log's end. Stdin is passed through (for --password-stdin).
run() {
	local desc=$1
	shift
	say "$desc: $(mask "$*")"
	printf '\n$ %s\n' "$(mask "$*")" >>"$clog"
	if "$@" >>"$clog" 2>&1; then
		return 0
	fi
	say "FAILED: $desc"
	show_tail
	return 1
}

# refused DESC CMD...: CMD must fail, and its output must say why in the registry's or
# the client's words for a refusal (denied, unauthorized, 401, 403, 429...), so that a
# client broken for another reason does not pass for a denial.
refused() {
	local desc=$1 out rc=0
	shift
	say "$desc (must be refused): $(mask "$*")"
	printf '\n$ %s   # must be refused\n' "$(mask "$*")" >>"$clog"
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" >>"$clog"
	if ((rc == 0)); then
		say "FAILED: $desc succeeded"
		return 1
	fi
	local why
	why=$(grep -iE -m1 'denied|unauthori[sz]ed|forbidden|insufficient|\b40[13]\b|\b429\b|too many|(invalid|incorrect) username|authenticat' <<<"$out" || true)
	if [[ -z $why ]]; then
		say "FAILED: $desc failed (exit $rc), but not with a refusal:"
		show_tail
		return 1
	fi
	# A wrong password must be refused as wrong, not throttled: the badlogin_ functions
	# set no_throttle (bash's dynamic scope makes their local visible here).
	if ((${no_throttle:-0})) && grep -qiE 'too many|\b429\b' <<<"$out"; then
		say "FAILED: $desc was throttled (429), not refused as a wrong password:"
		show_tail
		return 1
	fi
	say "  refused (exit $rc): $(mask "${why:0:200}")"
}

# ---- tools ----------------------------------------------------------------------

have_client() {
	case $1 in
	skopeo) command -v skopeo >/dev/null ;;
	docker) command -v dockerd >/dev/null ;;
	*) return 0 ;; # built on demand
	esac
}

t0=$SECONDS
CRANE=$(ensure_go_tool crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION")
declare -A tool_bin=()
for c in "${clients[@]}"; do
	case $c in
	oras) tool_bin[oras]=$(ensure_go_tool oras oras.land/oras/cmd/oras "$ORAS_VERSION") ;;
	regctl) tool_bin[regctl]=$(ensure_go_tool regctl github.com/regclient/regclient/cmd/regctl "$REGCTL_VERSION") ;;
	helm) tool_bin[helm]=$(ensure_go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION") ;;
	esac
done
ORAS=${tool_bin[oras]:-}
REGCTL=${tool_bin[regctl]:-}
HELM=${tool_bin[helm]:-}
log "tools ready in $((SECONDS - t0))s"

if [[ -n ${BERTH_BIN:-} ]]; then
	[[ -x $BERTH_BIN ]] || die "BERTH_BIN=$BERTH_BIN is not an executable"
else
	BERTH_BIN="$tmp/berth"
	t0=$SECONDS
	(cd "$root" && go build -o "$BERTH_BIN" ./cmd/berth)
	log "built berth in $((SECONDS - t0))s"
fi

# A layer made here: a small text file and 256 KiB of random bytes, so that pushes
# move more than one small blob.
mkdir -p "$tmp/layer/srv"
echo "hello from berth's client checks" >"$tmp/layer/srv/hello.txt"
head -c 262144 /dev/urandom >"$tmp/layer/srv/random.bin"
tar -C "$tmp/layer" -cf "$tmp/layer.tar" srv

# ---- the registry and its accounts -----------------------------------------------

admin_pass="admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
outsider_pass="outsider-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
wrong_pass="wrong-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
login_pass="login-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
robot=ci+pusher
robot_secret=""
secrets=("$admin_pass" "$outsider_pass" "$wrong_pass" "$login_pass")

# berth_cli ARGS...: the berth CLI on the running server's data dir and database.
berth_cli() { "$BERTH_BIN" --data "$data" --db "$dsn" "$@"; }

setup_accounts() {
	run "create the registry administrator" berth_cli user add admin --admin --password-stdin <<<"$admin_pass" || return 1
	run "create a user with no rights on ci" berth_cli user add outsider --password-stdin <<<"$outsider_pass" || return 1
	run "create the namespace ci" berth_cli namespace create ci || return 1
	# One user per client for the wrong-password checks: 5 failures in a row on one
	# account throttle it (429), and a login served from the server's credential cache
	# does not clear that count, so one shared account would be throttled by the third
	# client. The client address's count (20 failures) is shared; the run stays below it.
	local c
	for c in "${clients[@]}"; do
		run "create the user login-$c" berth_cli user add "login-$c" --password-stdin <<<"$login_pass" || return 1
	done
	local out
	say "create the CI robot: berth robot add $robot --role write --json"
	out=$(berth_cli robot add "$robot" --role write --json 2>>"$clog") || { say "FAILED: robot add"; show_tail; return 1; }
	robot_secret=$(jq -r .secret <<<"$out")
	[[ -n $robot_secret && $robot_secret != null ]] || { say "FAILED: no secret in robot add --json"; return 1; }
	secrets+=("$robot_secret")
}

# The challenge a client sees first, and the token endpoint behind it, with curl.
check_challenge() {
	local code hdr
	say "probe: curl http://$addr/v2/ without credentials"
	code=$(curl -s -o /dev/null -D "$tmp/v2.headers" -w '%{http_code}' "http://$addr/v2/")
	hdr=$(grep -i '^www-authenticate:' "$tmp/v2.headers" | tr -d '\r' || true)
	say "  $code $hdr"
	[[ $code == 401 ]] || { say "FAILED: /v2/ answered $code, want 401"; return 1; }
	[[ $hdr == *'Bearer realm="http://'"$addr"'/auth/token"'* ]] || { say "FAILED: want a Bearer challenge with realm http://$addr/auth/token"; return 1; }

	say "token: curl -u $robot:*** http://$addr/auth/token?service=...&scope=repository:ci/base:pull,push"
	service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$hdr")
	code=$(curl -s -o "$tmp/token.json" -w '%{http_code}' -u "$robot:$robot_secret" \
		"http://$addr/auth/token?service=$service&scope=repository:ci/base:pull,push")
	[[ $code == 200 ]] || { say "FAILED: /auth/token answered $code"; return 1; }
	jq -e '.token | length > 0' "$tmp/token.json" >/dev/null || { say "FAILED: no token in the answer"; return 1; }
	say "  200, token for $(jq -r '.token | split(".")[1] | gsub("-";"+") | gsub("_";"/") | (. + "==") | @base64d | fromjson | [.sub, (.access|tostring)] | join(" ")' "$tmp/token.json" 2>/dev/null || echo '?')"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(jq -r .token "$tmp/token.json")" "http://$addr/v2/")
	[[ $code == 200 ]] || { say "FAILED: /v2/ with the token answered $code, want 200"; return 1; }
	say "  /v2/ with the token: 200"

	say "token with a wrong password: curl -u $robot:*** http://$addr/auth/token"
	code=$(curl -s -o /dev/null -w '%{http_code}' -u "$robot:$wrong_pass" "http://$addr/auth/token?service=$service")
	say "  $code"
	[[ $code == 401 ]] || { say "FAILED: want 401"; return 1; }
}

# The images every client starts from: ci/base:v1, pushed by the administrator, and
# outsider/base:v1, pushed by outsider into the namespace named after them (which
# that push creates).
seed() {
	run "log in as admin" admin_crane auth login "$addr" -u admin --password-stdin <<<"$admin_pass" || return 1
	run "push ci/base:v1-layer (one layer)" admin_crane append --insecure -f "$tmp/layer.tar" -t "$addr/ci/base:v1-layer" || return 1
	run "set its platform, as ci/base:v1" admin_crane mutate --insecure --set-platform linux/amd64 "$addr/ci/base:v1-layer" -t "$addr/ci/base:v1" || return 1
	base_digest=$(admin_crane digest --insecure "$addr/ci/base:v1" 2>>"$clog") || { say "FAILED: no ci/base:v1"; return 1; }
	say "  ci/base:v1 is $base_digest"
	run "log in as outsider" outsider_crane auth login "$addr" -u outsider --password-stdin <<<"$outsider_pass" || return 1
	run "push outsider/base:v1 into outsider's own namespace" outsider_crane append --insecure -f "$tmp/layer.tar" -t "$addr/outsider/base:v1" || return 1
}

# admin_crane / outsider_crane: crane with that account's credentials.
admin_crane() { DOCKER_CONFIG="$tmp/$backend/admin/.docker" "$CRANE" "$@"; }
outsider_crane() { DOCKER_CONFIG="$tmp/$backend/outsider/.docker" "$CRANE" "$@"; }

# absent REPO:TAG: the administrator finds no such manifest (a refused push left nothing).
absent() {
	say "check that $1 does not exist"
	if admin_crane manifest --insecure "$addr/$1" >>"$clog" 2>&1; then
		say "FAILED: $1 exists after a refused push"
		return 1
	fi
}

# same_digest REPO:TAG DIGEST: the administrator sees REPO:TAG at DIGEST.
same_digest() {
	local got
	got=$(admin_crane digest --insecure "$addr/$1" 2>>"$clog") || { say "FAILED: $1 not found"; return 1; }
	if [[ $got != "$2" ]]; then
		say "FAILED: $1 is $got, want $2"
		return 1
	fi
	say "  $1 is $got (as pushed)"
}

# ---- clients -------------------------------------------------------------------
# client_X: positive and denied checks; badlogin_X: the wrong-password check. Each runs
# in a subshell with set -e and its own HOME (so its own credential files).

client_crane() {
	local v=()
	((debug)) && v=(-v)
	run "log in as $robot" "$CRANE" auth login "$addr" -u "$robot" --password-stdin <<<"$robot_secret"
	run "copy ci/base:v1 to ci/crane:v1" "$CRANE" "${v[@]}" copy --insecure "$addr/ci/base:v1" "$addr/ci/crane:v1"
	same_digest ci/crane:v1 "$base_digest"
	run "push a new image (append) to ci/crane:v2" "$CRANE" "${v[@]}" append --insecure -b "$addr/ci/crane:v1" -f "$tmp/layer.tar" -t "$addr/ci/crane:v2"
	run "pull ci/crane:v2 to a tarball" "$CRANE" "${v[@]}" pull --insecure "$addr/ci/crane:v2" "$work/pulled.tar"
	run "export ci/crane:v1's filesystem" "$CRANE" "${v[@]}" export --insecure "$addr/ci/crane:v1" "$work/fs.tar"
	run "compare hello.txt" cmp <(tar -xOf "$work/fs.tar" srv/hello.txt) "$tmp/layer/srv/hello.txt"
	run "log in as outsider" "$CRANE" auth login "$addr" -u outsider --password-stdin <<<"$outsider_pass"
	refused "push the pulled tarball into ci as outsider" "$CRANE" "${v[@]}" push --insecure "$work/pulled.tar" "$addr/ci/crane-outsider:v1"
	absent ci/crane-outsider:v1
}
badlogin_crane() {
	local no_throttle=1
	# crane auth login stores credentials without checking them; the next request checks.
	run "store a wrong password" "$CRANE" auth login "$addr" -u "login-crane" --password-stdin <<<"$wrong_pass"
	refused "read ci/base:v1 with the wrong password" "$CRANE" digest --insecure "$addr/ci/base:v1"
}

client_oras() {
	local d=()
	((debug)) && d=(--debug)
	run "log in as $robot" "$ORAS" login "${d[@]}" --plain-http "$addr" -u "$robot" --password-stdin <<<"$robot_secret"
	cp "$tmp/layer/srv/hello.txt" "$work/hello.txt"
	run "push a file to ci/oras:v1" in_dir "$work" \
		"$ORAS" push "${d[@]}" --plain-http "$addr/ci/oras:v1" hello.txt:text/plain
	run "pull ci/oras:v1" "$ORAS" pull "${d[@]}" --plain-http "$addr/ci/oras:v1" -o "$work/pulled"
	run "compare the pulled file" cmp "$work/pulled/hello.txt" "$tmp/layer/srv/hello.txt"
	run "copy ci/base:v1 to ci/oras-copy:v1" "$ORAS" cp "${d[@]}" --from-plain-http --to-plain-http "$addr/ci/base:v1" "$addr/ci/oras-copy:v1"
	same_digest ci/oras-copy:v1 "$base_digest"
	run "log in as outsider" "$ORAS" login "${d[@]}" --plain-http "$addr" -u outsider --password-stdin <<<"$outsider_pass"
	refused "push a file into ci as outsider" in_dir "$work" \
		"$ORAS" push "${d[@]}" --plain-http "$addr/ci/oras-outsider:v1" hello.txt:text/plain
	absent ci/oras-outsider:v1
}
badlogin_oras() {
	local no_throttle=1
	refused "log in with a wrong password" "$ORAS" login --plain-http "$addr" -u "login-oras" --password-stdin <<<"$wrong_pass"
}

client_regctl() {
	local v=()
	((debug)) && v=(-v debug)
	run "plain HTTP for $addr" "$REGCTL" registry set "$addr" --tls disabled
	run "log in as $robot" "$REGCTL" "${v[@]}" registry login "$addr" -u "$robot" --pass-stdin <<<"$robot_secret"
	run "copy ci/base:v1 to ci/regctl:v1" "$REGCTL" "${v[@]}" image copy "$addr/ci/base:v1" "$addr/ci/regctl:v1"
	same_digest ci/regctl:v1 "$base_digest"
	run "get the manifest of ci/regctl:v1" "$REGCTL" "${v[@]}" manifest get "$addr/ci/regctl:v1" --format raw-body
	run "export ci/regctl:v1" "$REGCTL" "${v[@]}" image export "$addr/ci/regctl:v1" "$work/export.tar"
	run "list the tags of ci/regctl" "$REGCTL" "${v[@]}" tag ls "$addr/ci/regctl"
	run "log in as outsider" "$REGCTL" "${v[@]}" registry login "$addr" -u outsider --pass-stdin <<<"$outsider_pass"
	refused "copy outsider/base:v1 into ci as outsider" "$REGCTL" "${v[@]}" image copy "$addr/outsider/base:v1" "$addr/ci/regctl-outsider:v1"
	absent ci/regctl-outsider:v1
}
badlogin_regctl() {
	local no_throttle=1
	refused "log in with a wrong password" "$REGCTL" registry login "$addr" -u "login-regctl" --pass-stdin <<<"$wrong_pass"
}

client_skopeo() {
	local d=() creds="$robot:$robot_secret" out="outsider:$outsider_pass"
	((debug)) && d=(--debug)
	local sk=(skopeo "${d[@]}" --insecure-policy)
	run "copy ci/base:v1 to ci/skopeo:v1 as $robot" "${sk[@]}" copy --src-creds "$creds" --dest-creds "$creds" \
		--src-tls-verify=false --dest-tls-verify=false "docker://$addr/ci/base:v1" "docker://$addr/ci/skopeo:v1"
	run "inspect ci/skopeo:v1" "${sk[@]}" inspect --creds "$creds" --tls-verify=false "docker://$addr/ci/skopeo:v1"
	run "pull ci/skopeo:v1 into an OCI layout" "${sk[@]}" copy --src-creds "$creds" --src-tls-verify=false \
		"docker://$addr/ci/skopeo:v1" "oci:$work/layout:v1"
	run "push the OCI layout to ci/skopeo:v2" "${sk[@]}" copy --dest-creds "$creds" --dest-tls-verify=false \
		"oci:$work/layout:v1" "docker://$addr/ci/skopeo:v2"
	refused "copy outsider/base:v1 into ci as outsider" "${sk[@]}" copy --src-creds "$out" --dest-creds "$out" \
		--src-tls-verify=false --dest-tls-verify=false "docker://$addr/outsider/base:v1" "docker://$addr/ci/skopeo-outsider:v1"
	absent ci/skopeo-outsider:v1
}
badlogin_skopeo() {
	local no_throttle=1
	refused "log in with a wrong password" skopeo login --tls-verify=false --authfile "$work/auth.json" \
		-u "login-skopeo" --password-stdin "$addr" <<<"$wrong_pass"
	refused "inspect with a wrong password" skopeo inspect --creds "login-skopeo:$wrong_pass" --tls-verify=false "docker://$addr/ci/base:v1"
}

client_helm() {
	local d=()
	((debug)) && d=(--debug)
	export HELM_CONFIG_HOME="$HOME/helm/config" HELM_CACHE_HOME="$HOME/helm/cache" HELM_DATA_HOME="$HOME/helm/data"
	run "create a chart" in_dir "$work" "$HELM" create demo
	run "package it" in_dir "$work" "$HELM" package demo
	run "log in as $robot" "$HELM" registry login "${d[@]}" --insecure "$addr" -u "$robot" --password-stdin <<<"$robot_secret"
	run "push the chart to ci/charts/demo:0.1.0" "$HELM" push "${d[@]}" --plain-http "$work/demo-0.1.0.tgz" "oci://$addr/ci/charts"
	mkdir -p "$work/pulled"
	run "pull it back" "$HELM" pull "${d[@]}" --plain-http "oci://$addr/ci/charts/demo" --version 0.1.0 -d "$work/pulled"
	run "compare the chart archives" cmp "$work/pulled/demo-0.1.0.tgz" "$work/demo-0.1.0.tgz"
	run "show the chart from the registry" "$HELM" show chart "${d[@]}" --plain-http "oci://$addr/ci/charts/demo" --version 0.1.0
	run "log in as outsider" "$HELM" registry login "${d[@]}" --insecure "$addr" -u outsider --password-stdin <<<"$outsider_pass"
	refused "push the chart into ci as outsider" "$HELM" push "${d[@]}" --plain-http "$work/demo-0.1.0.tgz" "oci://$addr/ci/outsider-charts"
	absent ci/outsider-charts/demo:0.1.0
}
badlogin_helm() {
	local no_throttle=1
	export HELM_CONFIG_HOME="$HOME/helm/config" HELM_CACHE_HOME="$HOME/helm/cache" HELM_DATA_HOME="$HOME/helm/data"
	refused "log in with a wrong password" "$HELM" registry login --insecure "$addr" -u "login-helm" --password-stdin <<<"$wrong_pass"
}

# docker: our own dockerd for the run, on its own socket and data root, as root.
# Loopback registries are insecure-allowed by default, so plain HTTP needs no setting.
start_dockerd() {
	local dd="$tmp/dockerd"
	mkdir -p "$dd"
	say "start dockerd (vfs, no iptables, no bridge) on unix://$dd/docker.sock"
	dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
		--data-root "$dd/root" --exec-root "$dd/exec" --pidfile "$dd/docker.pid" \
		-H "unix://$dd/docker.sock" >"$results/dockerd.log" 2>&1 &
	dockerd_pid=$!
	export DOCKER_HOST="unix://$dd/docker.sock"
	for _ in $(seq 1 150); do
		"$DOCKER" version >/dev/null 2>&1 && return 0
		kill -0 "$dockerd_pid" 2>/dev/null || break
		sleep 0.2
	done
	say "FAILED: dockerd did not start (results/clients/dockerd.log)"
	tail -n 20 "$results/dockerd.log"
	return 1
}

client_docker() {
	local dk=("$DOCKER")
	((debug)) && dk+=(--debug)
	run "log in as $robot" "${dk[@]}" login "$addr" -u "$robot" --password-stdin <<<"$robot_secret"
	run "pull ci/base:v1" "${dk[@]}" pull "$addr/ci/base:v1"
	run "tag it ci/docker:v1" "${dk[@]}" tag "$addr/ci/base:v1" "$addr/ci/docker:v1"
	run "push ci/docker:v1" "${dk[@]}" push "$addr/ci/docker:v1"
	run "remove the local images" "${dk[@]}" rmi "$addr/ci/base:v1" "$addr/ci/docker:v1"
	run "pull ci/docker:v1 back" "${dk[@]}" pull "$addr/ci/docker:v1"
	local cid
	say "create a container of it (never started): $DOCKER create $addr/ci/docker:v1 /none"
	cid=$("${dk[@]}" create "$addr/ci/docker:v1" /none 2>>"$clog")
	run "copy hello.txt out of it" "${dk[@]}" cp "$cid:/srv/hello.txt" "$work/hello.txt"
	run "remove the container" "${dk[@]}" rm "$cid"
	run "compare hello.txt" cmp "$work/hello.txt" "$tmp/layer/srv/hello.txt"
	run "log out" "${dk[@]}" logout "$addr"
	run "log in as outsider" "${dk[@]}" login "$addr" -u outsider --password-stdin <<<"$outsider_pass"
	run "tag it ci/docker-outsider:v1" "${dk[@]}" tag "$addr/ci/docker:v1" "$addr/ci/docker-outsider:v1"
	refused "push ci/docker-outsider:v1 as outsider" "${dk[@]}" push "$addr/ci/docker-outsider:v1"
	absent ci/docker-outsider:v1
}
badlogin_docker() {
	local no_throttle=1
	refused "log in with a wrong password" "$DOCKER" login "$addr" -u "login-docker" --password-stdin <<<"$wrong_pass"
}

# in_client PHASE CLIENT: run PHASE_CLIENT in a subshell with set -e, HOME and
# DOCKER_CONFIG of its own, and set client_rc; its steps go to the terminal, details to
# its log. Never call it in a condition (if, ||, &&): bash would then ignore set -e
# inside it.
in_client() {
	local phase=$1 c=$2
	current=$c
	work="$tmp/$backend/$c"
	clog="$results/$backend/$c.log"
	mkdir -p "$work/home"
	set +e
	(
		set -e
		export HOME="$work/home" DOCKER_CONFIG="$work/home/.docker"
		"${phase}_$c"
	)
	client_rc=$?
	set -e
}

# ---- the runs ------------------------------------------------------------------

DOCKER=${DOCKER:-}
if [[ -z $DOCKER ]]; then
	# The CLI shipped beside dockerd (Debian's docker.io), else the first on PATH.
	if [[ -x /usr/bin/docker ]] && command -v dockerd >/dev/null; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi

summary=()
failed=0
for backend in "${backends[@]}"; do
	tb=$SECONDS
	mkdir -p "$results/$backend" "$tmp/$backend"
	current=setup
	clog="$results/$backend/setup.log"
	data="$tmp/$backend/data"
	mkdir -m 700 "$data"
	dsn=""
	if [[ $backend == postgres ]]; then
		start_postgres_if_down
		dsn=$(create_test_db)
	fi
	BERTH_SERVE_ARGS="${BERTH_SERVE_ARGS:-} --auth-enabled" start_berth "$data" "$dsn" "$results/$backend/server.log"
	server_pid=$BERTH_PID
	addr=$BERTH_ADDR
	say "berth ($backend) with access control on at http://$addr"

	declare -A status=() took=()
	# In this shell (they set robot_secret and base_digest), so each step returns on failure.
	setup_ok=1
	if ! setup_accounts || ! check_challenge || ! seed; then
		setup_ok=0
	fi
	summary+=("clients ($backend): setup $([[ $setup_ok == 1 ]] && echo ok || echo FAILED) ($((SECONDS - tb))s)")
	((setup_ok)) || failed=1

	run_list=()
	for c in "${clients[@]}"; do
		if ! have_client "$c"; then
			if ((explicit)); then
				status[$c]="FAILED (not installed)"
				failed=1
			else
				status[$c]="skipped (not installed)"
			fi
			continue
		fi
		if ((!setup_ok)); then
			status[$c]="FAILED (setup failed)"
			failed=1
			continue
		fi
		run_list+=("$c")
	done
	for c in "${run_list[@]}"; do
		tc=$SECONDS
		if [[ $c == docker ]] && [[ -z $dockerd_pid ]]; then
			current=docker
			clog="$results/$backend/docker.log"
			if ! start_dockerd; then
				status[$c]=FAILED
				failed=1
				continue
			fi
		fi
		in_client client "$c"
		if ((client_rc == 0)); then status[$c]=ok; else status[$c]=FAILED failed=1; fi
		took[$c]=$((SECONDS - tc))
	done
	# Wrong passwords last: failed logins from one address are throttled.
	for c in "${run_list[@]}"; do
		[[ ${status[$c]:-} == ok ]] || continue
		tc=$SECONDS
		in_client badlogin "$c"
		((client_rc == 0)) || { status[$c]="FAILED (wrong password)" failed=1; }
		took[$c]=$((${took[$c]} + SECONDS - tc))
	done
	for c in "${clients[@]}"; do
		summary+=("clients ($backend): $c ${status[$c]}${took[$c]:+ (${took[$c]}s)}")
	done

	stop_pid "$dockerd_pid"
	dockerd_pid=""
	stop_pid "$server_pid"
	server_pid=""
	if [[ -n $dsn && ${KEEP_DATA:-0} != 1 ]]; then
		drop_test_db "$dsn" || log "could not drop $dsn"
		dsn=""
	fi
	summary+=("clients ($backend): total $((SECONDS - tb))s")
	unset status took
done

echo
printf '%s\n' "${summary[@]}"
n_ok=0 n_failed=0 n_skipped=0
for line in "${summary[@]}"; do
	case $line in
	*": total "*) ;;
	*" ok"*) n_ok=$((n_ok + 1)) ;;
	*" skipped"*) n_skipped=$((n_skipped + 1)) ;;
	*) n_failed=$((n_failed + 1)) ;;
	esac
done
((failed == 0 || n_failed > 0)) || n_failed=1
if ((n_failed)); then
	log "logs: $results"
fi
echo "clients: $n_ok passed, $n_failed failed, $n_skipped skipped"
((n_failed == 0))
