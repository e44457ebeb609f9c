#!/usr/bin/env bash
# usage-ab.sh — manifest PUT throughput with the usage counters and a quota
# on, against the same tree with them off, side by side (issue 15's target:
# ≥ 0.9×). "Off" is this checkout with bench/usage-off.patch applied in a
# scratch worktree: no counter is kept and no quota is read; every other
# statement of the PUT (the policy read of a tag write included) is the same
# on both sides. Each round runs BenchmarkManifestPut once per side, the
# order alternating, and prints both; the summary gives the throughput ratio
# (on ÷ off) as the median of the rounds' ratios, the ratio of the pooled
# medians, and the ratio of CPU time (user + system).
#
# BENCH=ManifestPut (the default) times manifest PUTs alone, over blobs the
# repository holds: the manifest PUT is the request that keeps the counters,
# so this is the ratio's worst case. BENCH=ImagePush times whole image pushes
# (two new blobs, then the manifest): every counter level crosses zero.
#
#   bench/usage-ab.sh                 # 10 rounds of 1500 manifest PUTs on SQLite
#   BENCH=ImagePush PUTS=300 ROUNDS=8 bench/usage-ab.sh
#   ROUNDS=6 PUTS=600 BACKEND=postgres bench/usage-ab.sh   # needs BERTH_TEST_POSTGRES_DSN
#
# Run it on a quiet machine: the ratio is what it measures, and a loaded
# machine spreads each side by more than the difference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-10} puts=${PUTS:-1500} backend=${BACKEND:-sqlite} bench=${BENCH:-ManifestPut}
work=$(mktemp -d /tmp/usage-ab.XXXXXX)
on="$work/on" off="$work/off"
cleanup() {
	git -C "$root" worktree remove --force "$on" >/dev/null 2>&1 || true
	git -C "$root" worktree remove --force "$off" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "usage-ab: building both sides at $(git -C "$root" rev-parse --short HEAD) (working tree changes are not included)" >&2
git -C "$root" worktree add --detach "$on" HEAD >/dev/null 2>&1
git -C "$root" worktree add --detach "$off" HEAD >/dev/null 2>&1
git -C "$off" apply "$root/bench/usage-off.patch"
(cd "$on" && go test -c -o "$work/on.test" ./internal/api/)
(cd "$off" && go test -c -o "$work/off.test" ./internal/api/)

out="$work/rounds.txt"
for r in $(seq 1 "$rounds"); do
	order="off on"
	[ $((r % 2)) = 0 ] && order="on off"
	for side in $order; do
		dir="$work/$side/internal/api"
		line=$(cd "$dir" && { /usr/bin/time -f "cpu %U %S" "$work/$side.test" -test.run '^$' \
			-test.bench "Benchmark$bench/$backend\$" -test.benchtime "${puts}x" 2>&1; } |
			awk '/^Benchmark/ {ns=$3} /^cpu [0-9]/ {cpu=$2+$3} END {print ns, cpu}')
		echo "$r $side $line" | tee -a "$out" >&2
	done
	echo "round $r/$rounds done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
done

# Summary: per round, on's throughput over off's = off ns/op ÷ on ns/op.
awk -v puts="$puts" -v backend="$backend" -v bench="$bench" '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ ns[$1, $2] = $3; cpu[$1, $2] = $4; if ($1 > n) n = $1 }
END {
	for (r = 1; r <= n; r++) {
		ratio[r] = ns[r, "off"] / ns[r, "on"]; on[r] = ns[r, "on"]; off[r] = ns[r, "off"]
		con[r] = cpu[r, "on"]; coff[r] = cpu[r, "off"]
		printf "round %2d: off %.3f ms/op, on %.3f ms/op, throughput on/off %.3f\n", r, off[r] / 1e6, on[r] / 1e6, ratio[r]
	}
	mon = median(on, n); moff = median(off, n); mr = median(ratio, n)
	printf "\nBenchmark%s/%s, %d rounds of %d operations, usage and quota on vs off:\n", bench, backend, n, puts
	printf "  throughput ratio, median of the rounds: %.3f\n", mr
	printf "  median ms/op: off %.3f, on %.3f (ratio %.3f)\n", moff / 1e6, mon / 1e6, moff / mon
	printf "  median CPU s per run: off %.2f, on %.2f (ratio %.3f)\n", median(coff, n), median(con, n), median(coff, n) / median(con, n)
}' "$out"
