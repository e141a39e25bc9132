#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each: the targets
# are found, not listed (a `func FuzzX(f *testing.F)` in any *_test.go), so
# a new one is run without editing this script or the Makefile.
#
# FUZZTIME (default 20s) is each target's time. Minimizing an input is cut
# at FUZZMINIMIZETIME (default 2s, go's is 60s): with large seeds (a whole
# news page) minimizing each new interesting input otherwise takes all of a
# short run, and a failing input is kept whether minimized or not. A failing input is written
# by `go test` to the package's testdata/fuzz/FuzzX/ folder, where it stays
# as a test case of the ordinary suite once committed; the script stops at
# the first target that fails and names that folder.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-2s}

# "dir name" per target, in a stable order. git ls-files finds the files a
# clone has; a file not yet committed is found too when it is in a package
# folder (the find fallback, outside a git checkout).
files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*_test.go'
	else
		find . -name '*_test.go' -not -path './.*' | sed 's|^\./||'
	fi
}
targets=$(files | sort | while read -r f; do
	[ -f "$f" ] || continue
	sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f" | while read -r name; do
		echo "$(dirname "$f") $name"
	done
done)

if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
n=$(echo "$targets" | wc -l)
echo "fuzz: $n targets, $FUZZTIME each"
# go's fuzzing coordinator sometimes ends a run that found nothing with
# "context deadline exceeded" when the time runs out while a busy worker is
# still answering: no input is written, so there is nothing to keep or fix.
# That one ending is run again, once; any failure with an input stops here.
inputs() { { ls "$1/testdata/fuzz/$2" 2>/dev/null || true; } | wc -l; }
fuzz_one() {
	$GO test -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "./$1" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "$targets" | while read -r dir name; do
	echo "fuzz: $name in ./$dir"
	before=$(inputs "$dir" "$name")
	if ! fuzz_one "$dir" "$name"; then
		if [ "$(inputs "$dir" "$name")" = "$before" ] && grep -q 'context deadline exceeded' "$log"; then
			echo "fuzz: $name ended with go's \"context deadline exceeded\" and no failing input; running it again"
			fuzz_one "$dir" "$name" && continue
		fi
		echo "fuzz: $name failed; the failing input is in $dir/testdata/fuzz/$name/: commit it as a test case with the fix" >&2
		exit 1
	fi
done
