#!/usr/bin/env bash
# Signatures follow their image, with the real cosign (docs/design/gc.md, "Attachments
# follow their subject"). Run by .ci/run (make signatures): it waits out real windows and builds cosign once.
#
#   scripts/signatures.sh
#
# For each backend in SIGNATURES_BACKENDS it starts `berth serve` (no background
# collector: --gc-workers 0) over a fresh data dir (SQLite) or database (PostgreSQL) and:
#
#   1. creates the namespace sig with a time-machine window of $WINDOW seconds;
#   2. pushes sig/app:v1 with crane (a one-layer image appended to an empty base, from a
#      tar made here), signs it with cosign (a key pair made here, no transparency log)
#      and attests it (cosign's .sig and .att tags), and checks `cosign verify`;
#      It also pushes sig/app:v2 and signs it in cosign's OCI 1.1 mode
#      (--registry-referrers-mode=oci-1-1: a referrer with a subject, no tag), checked
#      through the referrers API and `cosign verify --experimental-oci11`;
#   3. deletes the tag v1 and restores it inside the window: the signatures never left,
#      `cosign verify` passes again (the reason attachments end only when their subject
#      is collected);
#   4. deletes v1 again (and v2), waits out the window and the grace, runs `berth gc`: the
#      images are collected, v1's .sig and .att tags are no longer listed, `cosign verify`
#      fails for both, and
#      `berth tag history` shows them ended by the collector (subject_collected) and
#      restorable;
#   5. restores the .sig tag with `berth tag restore` and pulls it with crane;
#   6. waits out the window again and runs `berth gc`: the .att manifest is gone, the
#      restored .sig stays, and v2's referrer is gone from the referrers API (it goes a
#      run later than its subject: cosign verify read it, and a read revives what it
#      reads for 1.5 × the grace).
#
# Output: one line per step, each step's time, and "signatures: N passed, N failed".
# Logs under results/signatures/<backend>/ (server.log, steps.log).
#
# Environment:
#   SIGNATURES_BACKENDS  backends to run, in order (default "sqlite postgres")
#   WINDOW               the namespace's window and the grace, in seconds (default 10)
#   BERTH_BIN            a berth binary to test instead of building ./cmd/berth
#   KEEP_DATA=1          keep the temp dir and the PostgreSQL database
#   RESULTS_ROOT         where results/ goes (default: repo root)
#   CRANE_VERSION COSIGN_VERSION   pinned module versions
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

CRANE_VERSION=${CRANE_VERSION:-v0.22.1}
COSIGN_VERSION=${COSIGN_VERSION:-v2.6.5}
WINDOW=${WINDOW:-10}
read -r -a backends <<<"${SIGNATURES_BACKENDS:-sqlite postgres}"
for backend in "${backends[@]}"; do
	case $backend in sqlite | postgres) ;; *) die "SIGNATURES_BACKENDS: unknown backend $backend (sqlite, postgres)" ;; esac
done

workspace signatures

t0=$SECONDS
crane=$(ensure_go_tool crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION")
cosign=$(ensure_go_tool cosign github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION")
log "tools ready in $((SECONDS - t0))s"
if [[ -z ${BERTH_BIN:-} ]]; then
	BERTH_BIN=$tmp/berth
	(cd "$root" && go build -o "$BERTH_BIN" ./cmd/berth)
fi

# The images' one layer each, made here (no network).
mkdir -p "$tmp/layer"
echo "signed by cosign, collected by berth" >"$tmp/layer/hello.txt"
tar -C "$tmp/layer" -cf "$tmp/layer.tar" hello.txt
echo "signed through the referrers API, collected with its subject" >"$tmp/layer/hello.txt"
tar -C "$tmp/layer" -cf "$tmp/layer2.tar" hello.txt
# A key pair with an empty password, and an in-toto predicate to attest.
(cd "$tmp" && COSIGN_PASSWORD='' "$cosign" generate-key-pair >/dev/null 2>&1) || die "cosign generate-key-pair failed"
echo '{"built_by":"scripts/signatures.sh"}' >"$tmp/predicate.json"

passed=0 failed=0
steplog=
step_t=0
# step NAME: starts a step (its time is printed by ok/fail).
step() {
	step_name=$1 step_t=$SECONDS
	printf '\n== %s\n' "$step_name" >>"$steplog"
}
ok() {
	log "$backend: ok   $step_name ($((SECONDS - step_t))s)"
	passed=$((passed + 1))
}
fail() {
	log "$backend: FAIL $step_name: $* (see $steplog)"
	failed=$((failed + 1))
}
# run CMD...: logs the command and its output; its status is the command's.
run() {
	printf '$ %s\n' "$*" >>"$steplog"
	"$@" >>"$steplog" 2>&1
}
# out CMD...: logs the command, prints its output.
out() {
	printf '$ %s\n' "$*" >>"$steplog"
	"$@" 2>>"$steplog" | tee -a "$steplog"
}

# berth CMD...: the berth CLI on the server's data dir and database, while it runs.
berth() { "$BERTH_BIN" "$@" --data "$data" --db "$dsn" --log-level warn; }
gc() { berth gc --list --gc-grace "${WINDOW}s"; }
cosign_env() { COSIGN_PASSWORD='' COSIGN_YES=true "$cosign" "$@"; }
verify() {
	run cosign_env verify --key "$tmp/cosign.pub" --insecure-ignore-tlog=true --allow-http-registry \
		--allow-insecure-registry "$image@$subject"
}
# verify11: cosign verify of sig/app:v2's digest through the OCI 1.1 referrers API.
verify11() {
	run env COSIGN_EXPERIMENTAL=1 "$cosign" verify --key "$tmp/cosign.pub" --insecure-ignore-tlog=true --experimental-oci11 \
		--allow-http-registry --allow-insecure-registry "$image@$subject2"
}
# referrers DIGEST: how many manifests /v2/sig/app/referrers/DIGEST lists.
referrers() {
	local body
	body=$(out curl -fsS "http://$BERTH_ADDR/v2/sig/app/referrers/$1") || return 1
	jq '.manifests | length' <<<"$body"
}
# listed TAG: whether the registry lists TAG in sig/app.
listed() {
	local tags
	tags=$(out "$crane" ls --insecure "$image")
	grep -qx -- "$1" <<<"$tags"
}
# history_of TAG: "ENDED_BY END_CAUSE RESTORABLE LIVE" of the tag's newest lifetime.
history_of() {
	local h
	h=$(out berth tag history "sig/app:$1" --json)
	jq -r '.lifetimes[0] | "\(.ended_by // "-") \(.end_cause // "-") \(.restorable) \(.live)"' <<<"$h"
}

for backend in "${backends[@]}"; do
	mkdir -p "$results/$backend"
	steplog=$results/$backend/steps.log
	: >"$steplog"
	data=$tmp/$backend
	mkdir -p "$data"
	dsn=
	if [[ $backend == postgres ]]; then
		start_postgres_if_down
		dsn=$(create_test_db)
	fi
	BERTH_SERVE_ARGS="--gc-workers 0 --gc-grace ${WINDOW}s --log-level info" \
		start_berth "$data" "$dsn" "$results/$backend/server.log" || die "$backend: berth did not start"
	image=$BERTH_ADDR/sig/app

	step "namespace sig with a ${WINDOW}s window"
	if run berth namespace create sig --retention "${WINDOW}s"; then ok; else fail "namespace create"; fi

	step "push sig/app:v1 (crane), sign and attest it (cosign), verify"
	subject=
	if run "$crane" append --insecure -f "$tmp/layer.tar" -t "$image:v1" &&
		subject=$(out "$crane" digest --insecure "$image:v1") &&
		run cosign_env sign --key "$tmp/cosign.key" --tlog-upload=false --allow-http-registry --allow-insecure-registry "$image@$subject" &&
		run cosign_env attest --key "$tmp/cosign.key" --tlog-upload=false --allow-http-registry --allow-insecure-registry \
			--type custom --predicate "$tmp/predicate.json" "$image@$subject" &&
		verify; then
		ok
	else
		fail "push, sign or verify"
	fi
	step "push sig/app:v2, sign it in OCI 1.1 referrers mode, verify (a referrer, no tag)"
	subject2=
	if run "$crane" append --insecure -f "$tmp/layer2.tar" -t "$image:v2" &&
		subject2=$(out "$crane" digest --insecure "$image:v2") &&
		run env COSIGN_EXPERIMENTAL=1 COSIGN_PASSWORD='' COSIGN_YES=true "$cosign" sign --key "$tmp/cosign.key" --tlog-upload=false \
			--registry-referrers-mode=oci-1-1 --allow-http-registry --allow-insecure-registry "$image@$subject2" &&
		verify11 && [[ $(referrers "$subject2") == 1 ]]; then
		ok
	else
		fail "push, sign (referrers mode), verify or list the referrer"
	fi
	sig="sha256-${subject#sha256:}.sig"
	att="sha256-${subject#sha256:}.att"
	step "cosign stored its signature and attestation under $sig and $att"
	if listed "$sig" && listed "$att"; then ok; else fail "tags not listed"; fi
	sigd=$(out "$crane" digest --insecure "$image:$sig" || true)
	attd=$(out "$crane" digest --insecure "$image:$att" || true)

	step "delete v1, restore it inside the window: the signatures are still there"
	if run "$crane" delete --insecure "$image:v1" &&
		run berth tag restore sig/app:v1 --to "$subject" && verify; then
		ok
	else
		fail "restore of the subject or verify"
	fi

	step "delete v1 and v2, wait out the window, berth gc: the images and their signatures' tags go"
	run "$crane" delete --insecure "$image:v1" || true
	run "$crane" delete --insecure "$image:v2" || true
	sleep $((WINDOW + 2))
	gc_t=$SECONDS gc_ok=0
	run gc && gc_ok=1
	gc_t=$((SECONDS - gc_t))
	if ((gc_ok)) && ! run "$crane" manifest --insecure "$image@$subject" &&
		! listed "$sig" && ! listed "$att" && ! verify &&
		! run "$crane" manifest --insecure "$image@$subject2"; then
		ok
		log "$backend: (berth gc took ${gc_t}s of it)"
	else
		fail "subject still stored, signature tags still listed, or cosign verify passed"
	fi

	step "the history says: ended by the collector (subject_collected), restorable"
	h_sig=$(history_of "$sig") h_att=$(history_of "$att")
	if [[ $h_sig == "collector subject_collected true false" && $h_att == "collector subject_collected true false" ]]; then
		ok
	else
		fail "history: $sig: $h_sig; $att: $h_att"
	fi

	step "restore $sig from the time machine and pull it"
	if run berth tag restore "sig/app:$sig" --to "$sigd" && listed "$sig" &&
		[[ $(out "$crane" digest --insecure "$image:$sig") == "$sigd" ]] && run "$crane" pull --insecure "$image:$sig" "$tmp/sig.tar"; then
		ok
	else
		fail "restore or pull of $sig"
	fi

	# v2's referrer was read by cosign verify in step 2: a read revives what it reads for
	# 1.5 × the grace (docs/design/gc.md, "A read that revives"), so it goes in this run.
	step "after the window, berth gc: the attestation and v2's referrer are collected, the restored signature stays"
	sleep $((WINDOW + 2))
	if run gc && ! run "$crane" manifest --insecure "$image@$attd" && run "$crane" manifest --insecure "$image:$sig" &&
		[[ $(referrers "$subject2") == 0 ]] && ! verify11; then
		ok
	else
		fail "attestation still stored, restored signature gone, or v2's referrer still listed"
	fi

	stop_pid "$BERTH_PID"
	BERTH_PID=
	if [[ -n $dsn && ${KEEP_DATA:-0} != 1 ]]; then
		drop_test_db "$dsn"
		dsn=
	fi
done

log "total $((SECONDS - t0))s"
echo "signatures: $passed passed, $failed failed"
((failed == 0))
