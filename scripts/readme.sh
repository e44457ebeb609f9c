#!/usr/bin/env bash
# Run the README's shell blocks as written, against fresh servers.
#
#   scripts/readme.sh [README]      (make readme)
#
# It builds berth into a temp dir and puts it first on PATH, and runs, in this order,
# every ```sh/```bash/```shell block of these README sections:
#
#   "Quickstart with crane", "Retention policies", "Management API",
#   "Operations (gc, sweep, purge, tag)", "Storage usage and quotas"
#       in one shell, in a fresh directory where `berth serve` runs on 127.0.0.1:5000 with
#       access control off (the quickstart's setting: default data dir ./berth-data), so
#       a later block sees the functions and variables of an earlier one ($digest, crane);
#   "Access control"
#       in another shell and another fresh directory, where `berth serve --auth-enabled`
#       runs on a free loopback port over ./berth-data.
#
# A block preceded by `<!-- readme: skip (REASON) -->` is not run; its reason is printed.
# Each block runs under `set -e -o pipefail`, and curl is given --fail-with-body, so an
# HTTP error answer (4xx, 5xx) fails the block as a failing command does. The first block
# that fails stops the run, printing its README line and its output; the script then
# exits non-zero. Nothing depends on the exact output of a command.
#
# Output: one line per block ("readme: ok README.md:123 (Operations …)" or "skip …"),
# then "readme: N passed, N failed, N skipped". Logs (each server's, each shell's) are
# under results/readme/.
#
# Environment:
#   BERTH_BIN   a berth binary to use instead of building ./cmd/berth
#   KEEP_DATA=1 keep the temp dir
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

readme=$(cd "$(dirname "${1:-$root/README.md}")" && pwd)/$(basename "${1:-$root/README.md}")
[[ -f $readme ]] || die "no README at $readme"

open_sections=("Quickstart with crane" "Retention policies" "Management API" "Operations (gc, sweep, purge, tag)" "Storage usage and quotas")
auth_sections=("Access control")
open_addr=127.0.0.1:5000 # the address the quickstart's commands name

results="${RESULTS_ROOT:-$root/results}/readme"
rm -rf "$results"
mkdir -p "$results"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-readme.XXXXXX")

pids=()
cleanup() {
	local rc=$? pid
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
	if [[ ${KEEP_DATA:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/bin"
if [[ -n ${BERTH_BIN:-} ]]; then
	ln -s "$(cd "$(dirname "$BERTH_BIN")" && pwd)/$(basename "$BERTH_BIN")" "$tmp/bin/berth"
else
	(cd "$root" && go build -o "$tmp/bin/berth" ./cmd/berth)
fi
export PATH="$tmp/bin:$PATH"

# blocks SECTION... writes, for each shell block of those sections, a file
# $tmp/blocks/N.sh and a line "N<TAB>LINE<TAB>SECTION<TAB>SKIP-REASON" on stdout.
blocks() {
	mkdir -p "$tmp/blocks"
	awk -v dir="$tmp/blocks" -v sections="$(printf '%s\n' "$@")" '
		BEGIN { n = split(sections, want, "\n"); for (i = 1; i <= n; i++) if (want[i] != "") keep[want[i]] = 1 }
		!inblock && /^## / { section = substr($0, 4); skip = ""; next }
		!inblock && /^<!-- readme: skip/ {
			skip = $0; sub(/^<!-- readme: skip */, "", skip); sub(/ *-->.*$/, "", skip)
			gsub(/^\(|\)$/, "", skip); if (skip == "") skip = "no reason given"
			next
		}
		!inblock && /^```/ {
			inblock = 1; lang = substr($0, 4); start = NR
			run = (section in keep) && (lang == "sh" || lang == "bash" || lang == "shell")
			if (run) { count++; file = dir "/" count ".sh"; printf "" > file
				printf "%d\t%d\t%s\t%s\n", count, start, section, skip }
			skip = ""
			next
		}
		inblock && /^```/ { inblock = 0; if (run) close(file); next }
		inblock && run { print > file; next }
		!inblock && NF { skip = "" }  # a skip marker applies to the block right after it only
	' "$readme"
}

passed=0 failed=0 skipped=0

# run_blocks NAME DIR SECTION...: run the sections' blocks in one bash in DIR.
# Each runnable block is sourced in turn by a driver that notes, in a status file,
# each block it starts and ends, and in the log where each block's output begins.
run_blocks() {
	local name=$1 dir=$2
	shift 2
	local list driver="$tmp/$name-driver.sh" out="$results/$name.log" status="$tmp/$name.status" n line section skip
	rm -rf "$tmp/blocks"
	list=$(blocks "$@")
	[[ -n $list ]] || die "no shell block found in sections: $*"
	{
		echo 'set -e -o pipefail'
		echo 'curl() { command curl --fail-with-body "$@"; }'
		while IFS=$'\t' read -r n line section skip; do
			[[ -z $skip ]] || continue
			printf 'echo "started %s" >>%q; printf "\\n=== README.md:%s\\n"\n' "$n" "$status" "$line"
			printf '. %q\n' "$tmp/blocks/$n.sh"
			printf 'echo "done %s" >>%q\n' "$n" "$status"
		done <<<"$list"
	} >"$driver"
	local rc=0 t0=$SECONDS
	: >"$status"
	(cd "$dir" && bash "$driver" </dev/null >"$out" 2>&1) || rc=$?
	while IFS=$'\t' read -r n line section skip; do
		if [[ -n $skip ]]; then
			echo "readme: skip README.md:$line ($section): $skip"
			skipped=$((skipped + 1))
		elif grep -qx "done $n" "$status"; then
			echo "readme: ok README.md:$line ($section)"
			passed=$((passed + 1))
		elif grep -qx "started $n" "$status"; then
			echo "readme: FAILED README.md:$line ($section), exit $rc; the end of its output:"
			sed -n "/^=== README.md:$line\$/,\$p" "$out" | sed 1d | tail -n 40 | awk '{ print "    " $0 }'
			failed=$((failed + 1))
		else
			echo "readme: not run README.md:$line ($section): an earlier block failed"
			failed=$((failed + 1))
		fi
	done <<<"$list"
	log "$name: $((SECONDS - t0))s"
}

# The quickstart's server: berth serve as the README runs it (go run's binary is
# the same), from the directory the blocks run in.
if curl -s -o /dev/null --max-time 2 "http://$open_addr/"; then
	die "something already answers on $open_addr, where the README's commands go"
fi
mkdir -p "$tmp/open"
(cd "$tmp/open" && exec berth serve >"$results/server-open.log" 2>&1) &
pids+=($!)
wait_http "http://$open_addr/v2/" 60 "${pids[-1]}" || { tail -n 30 "$results/server-open.log" >&2; die "berth serve did not start"; }
run_blocks open "$tmp/open" "${open_sections[@]}"

# Access control: its own data directory and a server with access control on.
mkdir -p "$tmp/auth"
auth_addr="127.0.0.1:$(free_port)"
(cd "$tmp/auth" && exec berth serve --auth-enabled --addr "$auth_addr" >"$results/server-auth.log" 2>&1) &
pids+=($!)
wait_http "http://$auth_addr/v2/" 60 "${pids[-1]}" || { tail -n 30 "$results/server-auth.log" >&2; die "berth serve --auth-enabled did not start"; }
run_blocks auth "$tmp/auth" "${auth_sections[@]}"

echo "readme: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
