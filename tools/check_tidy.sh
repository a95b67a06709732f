#!/usr/bin/env bash
# Runs clang-tidy, with the checks .clang-tidy names, on every source file under src/ and
# fails on any warning. Uses the build's compile_commands.json (meson writes it). About
# three CPU-minutes on an idle machine, split over its cores.
set -euo pipefail
build=$(cd "${1:?usage: check_tidy.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v clang-tidy >/dev/null; then
    echo "check_tidy: clang-tidy is not installed; install it with: apt-get install clang-tidy" >&2
    exit 1
fi
if [ ! -f "$build/compile_commands.json" ]; then
    echo "check_tidy: no $build/compile_commands.json; run meson setup first" >&2
    exit 1
fi
mapfile -t files < <(find src -name '*.cpp' | sort)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Four files per clang-tidy process, one process per core; xargs exits non-zero when any
# of them reported a warning (as an error) or failed.
rc=0
printf '%s\n' "${files[@]}" |
    xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet --warnings-as-errors='*' \
        >"$log" 2>&1 || rc=$?
# clang-tidy counts the warnings it suppressed in system headers on stderr; only the
# findings matter here.
grep -v -E '^[0-9]+ (warnings?|errors?)( and [0-9]+ (warnings?|errors?))? generated\.$' "$log" || true
if [ "$rc" -ne 0 ]; then
    echo "clang-tidy: findings above, in ${#files[@]} files checked as .clang-tidy asks" >&2
    exit 1
fi
echo "clang-tidy: ${#files[@]} files clean as .clang-tidy asks"
