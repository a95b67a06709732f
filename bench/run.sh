#!/usr/bin/env bash
# Runs every benchmark; each prints its figure and its ratio to the limit it chases.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
"$build/bench/bench_ingest"
"$build/bench/bench_decision"
/usr/bin/env python3 "$here/history_query.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/replay.py" "$build/src/cli/cerberus"
/usr/bin/env python3 "$here/report.py" "$build/src/cli/cerberus"
CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/footprint.py"
BENCH_POST="$build/bench/bench_post" CERBERUS="$build/src/cli/cerberus" CERBERUS_SOURCE_ROOT="$here/.." \
    /usr/bin/env python3 "$here/alert_latency.py"
