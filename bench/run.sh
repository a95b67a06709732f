#!/usr/bin/env bash
# Runs every benchmark; each prints its figure and its ratio to the limit it chases.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
"$build/bench/bench_ingest"
"$build/bench/bench_decision"
# bench_unseen writes to and reads the journal: a journald started here is stopped here.
journald=
if ! pgrep -x systemd-journal >/dev/null; then
    /usr/lib/systemd/systemd-journald >/dev/null 2>&1 &
    journald=$!
    trap '[ -n "$journald" ] && kill "$journald" 2>/dev/null; true' EXIT
    for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
fi
"$build/bench/bench_unseen"
/usr/bin/env python3 "$here/history_query.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/replay.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/report.py" "$build/src/cli/cerberus"
CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/footprint.py"
BENCH_POST="$build/bench/bench_post" CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/alert_latency.py"
