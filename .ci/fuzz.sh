#!/usr/bin/env bash
# CI's fuzz step: fuzzes seven targets for a fixed number of executions each
# (about 70 s in all on 2 cores) and fails when, and only when, a target
# finds a failing input, cannot run, or does not finish.
#
# Why execution counts (-fuzztime Nx) and not durations (-fuzztime 8s):
# with a duration, Go's fuzz coordinator (internal/fuzz.CoordinateFuzzing,
# Go <= 1.26) wraps its context in context.WithTimeout and, when the deadline
# fires, may read the parent's DeadlineExceeded before the child context is
# cancelled; the check that should swallow it (err == fuzzCtx.Err()) then
# misses and the target fails with a bare "context deadline exceeded" having
# found nothing (golang/go#75804, fixed in Go 1.27). With a count, no deadline
# context exists at all (CoordinateFuzzing only calls WithTimeout when
# opts.Timeout > 0; the count sets opts.Limit), so that failure cannot happen
# and nothing here has to recognise and forgive it: every nonzero exit of go
# test is a failure. A count also makes the gate the same amount of fuzzing
# on a fast or a slow machine. The counts below are what each target ran in
# its former duration on an idle 2-core machine.
#
# What a count costs: Go's fuzzer has no per-input time limit, so an input
# that hangs the target would stall the count forever (with a duration it was
# silently cut off at the deadline). Each target therefore runs under a wall
# clock limit many times its usual time; hitting it fails the step as a hang.
#
# How a failure shows: Go writes the failing input to
# <package>/testdata/fuzz/<Target>/<hash> and prints "--- FAIL"; this script
# then names the file, prints it and the command that replays it. Commit the
# file (it becomes a seed that plain `go test ./...` replays) with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -mod=mod"

# package target executions
targets=(
	"./balancer FuzzPathParam 200000"
	"./balancer FuzzCookieParam 200000"
	"./balancer FuzzPick 120000"
	"./manager FuzzManagerForm 100000"
	"./manager FuzzManagerRequest 12000"
	"./api FuzzAdminAPI 10000"
	". FuzzCaddyfileBalancer 6000"
)
# Wall-clock limit per target (each takes 5-20 s).
limit="${FUZZ_TARGET_TIMEOUT:-300}"

# Every fuzz target's seeds must be committed under its package's
# testdata/fuzz/<Target>/, where plain `go test ./...` replays them.
missing=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)([A-Za-z_][A-Za-z0-9_]* \*testing\.F).*/\1/p' "$file"); do
		if [ -z "$(git ls-files "$dir/testdata/fuzz/$name/")" ]; then
			echo "fuzz target $name ($file) has no committed seeds in $dir/testdata/fuzz/$name/"
			missing=1
		fi
	done
done < <(git ls-files '*_test.go')
[ "$missing" = 0 ] || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
for t in "${targets[@]}"; do
	read -r pkg name count <<<"$t"
	corpus="$pkg/testdata/fuzz/$name"
	before=$(find "$corpus" -type f 2>/dev/null | sort || true)
	printf -- '--- %s %s: %s executions\n' "$pkg" "$name" "$count"
	start=$(date +%s)
	rc=0
	# timeout signals the whole process group (go, the test binary, its
	# fuzzing workers); SIGINT lets the coordinator stop its workers.
	timeout -s INT -k 30 "$limit" \
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "${count}x" "$pkg" >"$log" 2>&1 || rc=$?
	cat "$log"
	after=$(find "$corpus" -type f 2>/dev/null | sort || true)
	new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')
	echo "    ($(( $(date +%s) - start )) s)"
	why=""
	if [ -n "$new" ]; then
		why="failing input written"
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		why="did not finish $count executions in ${limit} s: an input may hang the target"
	elif [ "$rc" != 0 ]; then
		why="go test exited with status $rc without writing a failing input (see above)"
	else
		# The coordinator's last progress line; "no fuzz tests to fuzz" (a
		# renamed target) has none and exits 0.
		done=$(sed -n 's/^fuzz: elapsed: .*, execs: \([0-9]*\) .*/\1/p' "$log" | tail -1)
		if [ "${done:-0}" -lt "$count" ]; then
			why="ran ${done:-no} executions of $count (is the target's name right?)"
		fi
	fi
	if [ -n "$why" ]; then
		failed+=("$name")
		echo "FUZZ FAILURE in $name: $why"
		for f in $new; do
			echo "  $f:"
			sed 's/^/    /' "$f"
			echo "  replay: go test -run '^${name}\$/^$(basename "$f")\$' $pkg"
		done
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz failed: ${failed[*]}"
	exit 1
fi
echo "fuzz passed: ${#targets[@]} targets"
