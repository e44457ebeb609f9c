#!/usr/bin/env bash
# gc-under-pushes.sh — `berth gc` beside `berth serve` (SQLite) while one
# client PUTs manifests back to back, in about a minute a run, where the whole
# benchmark (berth-bench) first pushes its dataset through HTTP for minutes.
#
# It generates once a registry whose garbage was all recorded at one instant
# (TestGCBenchDataDir: GARBAGE images whose tag was ended, LIVE images with a
# live tag; what a bulk cleanup or a retention change leaves), then for each
# run: copies it, starts serve on the copy with its collector workers off,
# measures the probe (berth-bench probe) for 5 s on the idle registry, starts
# it again, runs `berth gc` with the run's settings, stops the probe when the
# collection ends, and prints one line: the collection's time and
# transactions, and the probe's PUTs, p50 and p99 idle and during it.
#
#   bench/gc-under-pushes.sh                                  # defaults, 2 rounds
#   bench/gc-under-pushes.sh BERTH_GC_TX_BUDGET=20ms BERTH_GC_TX_BUDGET=100ms
#   GARBAGE=3000 LIVE=7000 ROUNDS=3 bench/gc-under-pushes.sh BERTH_GC_TX_BUDGET=50ms
#
# Each argument is one configuration, a BERTH_NAME=value given to serve and
# berth gc ("default" for none; several settings: join them with commas);
# the rounds alternate the configurations, so a shared machine's load hits
# them alike. WORK keeps the data (default: a temporary directory, removed).
#
# BERTH=path uses that berth binary (another build, for a side-by-side
# measure; the data is migrated by its serve) instead of this checkout's.
#
# PROBE_RATE=N makes the probe open loop: N PUTs per second on average, sent
# at random times whatever the answers (many clients), instead of one client
# PUTting back to back; IDLE (default 5s) is how long the idle probe runs.
#
# MODE=serve measures serve's own collector workers instead (the benchmark's
# -berth-gc serve): after the idle probe serve is restarted with SERVE_WORKERS (2) workers
# and the probe, and the collection ends when serve's metrics show a whole
# run done and nothing due, and GET /berth/v1/gc/status no tombstone.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
garbage=${GARBAGE:-3000} live=${LIVE:-7000} rounds=${ROUNDS:-2} port=${PORT:-5077} mode=${MODE:-process}
probe_args=(-rate "${PROBE_RATE:-0}") idle=${IDLE:-5s}
[[ $mode == process || $mode == serve ]] || { echo "gc-under-pushes: MODE=$mode: want process or serve" >&2; exit 2; }
configs=("$@")
[[ ${#configs[@]} -gt 0 ]] || configs=(default)
work=${WORK:-}
if [[ -z $work ]]; then
	work=$(mktemp -d /tmp/gc-under-pushes.XXXXXX)
	trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
echo "gc-under-pushes: building at $(git -C "$root" rev-parse --short HEAD)" >&2
(cd "$root" && go build -o "$work/berth" ./cmd/berth && go build -o "$work/berth-bench" ./bench/cmd/berth-bench)
berth=${BERTH:-$work/berth}
if [[ ! -d $work/base ]]; then
	echo "gc-under-pushes: generating $garbage garbage + $live live images" >&2
	(cd "$root" && BERTH_GCBENCH_DIR="$work/base" BERTH_GCBENCH_GARBAGE=$garbage BERTH_GCBENCH_LIVE=$live \
		go test ./internal/gc -run '^TestGCBenchDataDir$' -count=1 >/dev/null)
fi

run() { # run NAME CONFIG
	local n=$1 cfg=$2 d="$work/$1" env=(BERTH_GC_GRACE=0s BERTH_TAG_RETENTION=0s)
	if [[ $cfg != default ]]; then
		IFS=, read -ra extra <<<"$cfg"
		env+=("${extra[@]}")
	fi
	rm -rf "$d" && cp -a "$work/base" "$d"
	serve() { # serve WORKERS: start serve on the copy, wait for /v2/
		env "${env[@]}" "$berth" serve --data "$d" --addr "127.0.0.1:$port" --gc-workers "$1" >>"$d.serve.log" 2>&1 &
		sp=$!
		for _ in $(seq 400); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && return; sleep 0.025; done
	}
	local sp pp t0 t1
	serve 0
	"$work/berth-bench" probe -addr "127.0.0.1:$port" -duration "$idle" "${probe_args[@]}" >"$d.idle.json" 2>/dev/null
	if [[ $mode == serve ]]; then
		kill $sp && wait $sp 2>/dev/null || true
		t0=$(date +%s.%N)
		serve "${SERVE_WORKERS:-2}"
		"$work/berth-bench" probe -addr "127.0.0.1:$port" -duration 0 -seed 2 "${probe_args[@]}" >"$d.during.json" 2>/dev/null &
		pp=$!
		while :; do
			m=$(curl -fs "http://127.0.0.1:$port/metrics" || true)
			runs=$(awk '/^berth_gc_runs_total/ {s+=$2} END {print s+0}' <<<"$m")
			due=$(awk '/^berth_gc_reviews_due / {print $2}' <<<"$m")
			tombs=$(curl -fs "http://127.0.0.1:$port/berth/v1/gc/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tombstones"])' || echo x)
			[[ $runs -ge 1 && $due == 0 && $tombs == 0 ]] && break
			sleep 0.05
		done
		t1=$(date +%s.%N)
		awk '/^berth_gc_deletions_total/ {split($1, a, "\""); printf "\"%s\": %s, ", a[2], $2}' <<<"$m" |
			sed 's/^/{"deleted": {/; s/, $/}}/' >"$d.gc.json"
	else
		"$work/berth-bench" probe -addr "127.0.0.1:$port" -duration 0 -seed 2 "${probe_args[@]}" >"$d.during.json" 2>/dev/null &
		pp=$!
		sleep 1
		t0=$(date +%s.%N)
		env "${env[@]}" "$berth" gc --data "$d" --json >"$d.gc.json" 2>"$d.gc.log"
		t1=$(date +%s.%N)
	fi
	kill -INT $pp && wait $pp || true
	kill $sp && wait $sp 2>/dev/null || true
	python3 - "$n" "$cfg" "$t0" "$t1" "$d" "$mode" <<'EOF'
import json, sys
n, cfg, t0, t1, d = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
gc = json.load(open(d + ".gc.json"))
idle, dur = json.load(open(d + ".idle.json")), json.load(open(d + ".during.json"))
dele = sum(gc.get("deleted", {}).values())  # the garbage, and the upload markers of the probe's anchors
# serve's metrics give no transaction or error count: "–" in MODE=serve
print(f"{n:12} {cfg:32} {sys.argv[6]:7} gc {t1 - t0:6.2f} s  {dele} objects  {gc.get('transactions', '–'):>5} tx  errors {gc.get('errors', '–')} | "
      f"idle p50/p99 {idle['p50_ms']:.1f}/{idle['p99_ms']:.1f} ms | during {dur['n']} PUTs p50/p99 {dur['p50_ms']:.1f}/{dur['p99_ms']:.1f} ms, failed {dur['failures']}")
EOF
	rm -rf "$d"
}

for r in $(seq "$rounds"); do
	for i in "${!configs[@]}"; do
		run "r$r-c$i" "${configs[$i]}"
	done
done
