#!/usr/bin/env bash
# Fuzz each target for a while (make fuzz).
#
#   scripts/fuzz.sh FUZZTIME pkg:FuzzName [pkg:FuzzName ...]
#
# `go test -fuzz` takes exactly one package and one target, so the targets run one at a
# time; the anchored regexp keeps FuzzFoo from also matching FuzzFooBar.
#
# Go 1.26's fuzz coordinator can fail a target at the -fuzztime boundary with a bare
# "context deadline exceeded" and no failing input (go.dev/issue/75804, fixed in Go
# 1.27): when the machine is busy the deadline races a worker's last call. That is not a
# finding, so such a run is retried once, after the target's seed corpus and saved inputs
# replayed clean. A run that wrote a failing input, panicked or failed in any other way
# fails at once, and a second boundary failure in a row fails too: nothing is hidden.
#
# Output: go test's own, then "fuzz: N targets passed (N retried after the Go 1.26
# deadline race)". Exit status 0, or 1 on a finding, 2 on a bad argument.
set -euo pipefail

if [[ $# -lt 1 ]]; then echo "usage: scripts/fuzz.sh FUZZTIME [pkg:FuzzName ...]" >&2; exit 2; fi
fuzztime=$1; shift
if [[ $# -eq 0 ]]; then echo "fuzz: no targets, nothing to do"; exit 0; fi
GO=${GO:-go}

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

# deadline_race LOG: the run failed only at the -fuzztime boundary, with nothing found.
deadline_race() {
	local log=$1
	grep -q 'context deadline exceeded' "$log" || return 1
	! grep -qE 'Failing input written to|panic:|fuzz: minimizing|_test\.go:[0-9]+:' "$log"
}

passed=0 retried=0
for t in "$@"; do
	pkg=${t%%:*} fn=${t#*:}
	if [[ $pkg == "$t" || -z $fn || -z $pkg ]]; then echo "fuzz: bad entry '$t' (want pkg:FuzzName)" >&2; exit 2; fi
	for attempt in 1 2; do
		suffix=""; [[ $attempt == 2 ]] && suffix=" (retry)"
		echo "fuzz: $pkg $fn for $fuzztime$suffix"
		log=$logdir/$fn.$attempt.log
		if "$GO" test -run='^$' -fuzz="^$fn\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			passed=$((passed + 1))
			break
		fi
		if [[ $attempt == 2 ]] || ! deadline_race "$log"; then
			echo "fuzz: $pkg $fn failed" >&2
			exit 1
		fi
		echo "fuzz: $fn stopped at the -fuzztime boundary with nothing found (go.dev/issue/75804); replaying its corpus, then retrying once"
		"$GO" test -run="^$fn\$" "$pkg"
		retried=$((retried + 1))
	done
done
echo "fuzz: $passed targets passed ($retried retried after the Go 1.26 deadline race)"
