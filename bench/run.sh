#!/usr/bin/env bash
# Runs every benchmark; each prints its figure and its ratio to the limit it chases.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
"$build/bench/bench_ingest"
"$build/bench/bench_decision"
# bench_unseen writes to and reads the journal: a journald started here is stopped here.
journald=
listens() { printf 'MESSAGE=cerberus bench: journald?\nPRIORITY=7\n' | logger --journald 2>/dev/null; }
if ! listens; then
    rm -f /run/systemd/journal/socket  # a stopped journald's: the new one's says it listens
    /usr/lib/systemd/systemd-journald >/dev/null 2>&1 &
    journald=$!
    trap '[ -n "$journald" ] && kill "$journald" 2>/dev/null; true' EXIT
    for _ in $(seq 100); do listens && break; sleep 0.05; done
fi
"$build/bench/bench_unseen"
/usr/bin/env python3 "$here/history_query.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/replay.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/report.py" "$build/src/cli/cerberus"
CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/footprint.py"
BENCH_POST="$build/bench/bench_post" CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/alert_latency.py"
