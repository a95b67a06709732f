#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under ASan and UBSan in DIR, then runs each for
# SECONDS. `make fuzz` calls it with FUZZ_SECONDS (default 60); the fuzz_smoke test with 12.
#   fuzz/run.sh DIR SECONDS [TARGET...]      targets: rules time emit supervisor
# New inputs go to DIR/corpus/TARGET; the seeds in fuzz/corpus/TARGET and the inputs in
# fuzz/regressions/TARGET are read, never written. A crash leaves its input in DIR/crashes/:
# fix the cause, then copy the input to fuzz/regressions/TARGET/ so fuzz_corpus keeps it.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: fuzz/run.sh DIR SECONDS [TARGET...]" >&2
    exit 2
fi
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$(realpath -m "$1")
seconds=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rules time emit supervisor)

# clang 14 and its libFuzzer runtime (Debian: clang-14, libfuzzer-14-dev; `make fuzz-deps`).
cxx=clang++-14
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' \
    >"$probe/probe.cpp"
if ! command -v "$cxx" >/dev/null ||
    ! "$cxx" -fsanitize=fuzzer "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/err"; then
    reason="clang++-14 cannot build a libFuzzer target ($(head -c 300 "$probe/err" 2>/dev/null)); install clang-14 and libfuzzer-14-dev ('make fuzz-deps')"
    if [ "${CI:-}" = true ]; then
        echo "fuzz: $reason; under CI=true the fuzz smoke must run" >&2
        exit 1
    fi
    echo "SKIP: $reason"
    exit 77
fi

if [ ! -f "$dir/build.ninja" ]; then
    launcher=""
    command -v ccache >/dev/null && launcher="ccache "
    mkdir -p "$(dirname "$dir")"
    CXX="$launcher$cxx" meson setup "$dir" "$src" -Dfuzz=true -Dtests=false \
        -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
        >"$dir.setup.log" 2>&1 || {
        cat "$dir.setup.log" >&2
        exit 1
    }
fi
meson compile -C "$dir" "${targets[@]/#/fuzz_}" >"$dir.compile.log" 2>&1 || {
    tail -n 40 "$dir.compile.log" >&2
    exit 1
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for target in "${targets[@]}"; do
    case "$target" in
    rules) max_len=16384 ;;
    time) max_len=256 ;;
    emit) max_len=4096 ;;  # EMIT_REQUEST_MAX
    supervisor) max_len=4096 ;;
    *)
        echo "fuzz: no target named '$target'; expected rules, time, emit or supervisor" >&2
        exit 2
        ;;
    esac
    mkdir -p "$dir/corpus/$target" "$dir/crashes"
    inputs=("$dir/corpus/$target" "$src/fuzz/corpus/$target")
    [ -d "$src/fuzz/regressions/$target" ] && inputs+=("$src/fuzz/regressions/$target")
    options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len"
        -print_final_stats=1 -artifact_prefix="$dir/crashes/$target-")
    [ -f "$src/fuzz/dict/$target.dict" ] && options+=(-dict="$src/fuzz/dict/$target.dict")
    log="$dir/$target.log"
    if "$dir/fuzz/fuzz_$target" "${options[@]}" "${inputs[@]}" >"$log" 2>&1; then
        status="no crash"
    else
        status="FAILED"
        failed=1
        tail -n 60 "$log" >&2
        echo "fuzz: $target: the input that broke it is in $dir/crashes/ (log: $log); fix the" \
            "cause, then copy the input to fuzz/regressions/$target/" >&2
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "$dir/corpus/$target" -type f | wc -l)
    echo "fuzz: $target: ${runs:-?} executions in ${seconds}s, $corpus inputs in the work corpus, $status"
done
exit "$failed"
