"""`cerberus replay` of 1,000,000 stored transitions through rules/default.json (goal < 2 s,
the whole command as an operator runs it, process start and --json output included)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import benchdb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CERBERUS = sys.argv[1]
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
UNITS = 1000
STEP_USEC = 250000  # each unit does one thing every 250 ms: a crash loop turns once a second
LIMIT_S = 2.0

with tempfile.TemporaryDirectory(prefix="cerberus-bench-") as work:
    db = os.path.join(work, "replay.db")
    con = benchdb.create(db)
    base = int(time.time() * 1000000) - (ROWS // UNITS) * STEP_USEC
    started = time.monotonic()
    con.execute("BEGIN")
    # Nine units in ten crash-loop (start, crash, fail, restart); the tenth is deployed over
    # and over (stop, start), which must not fire. Rows are stored in time order, units
    # staggered by 200 µs.
    con.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS - 1}),
        r(i, u, k) AS (SELECT i, i % {UNITS}, i / {UNITS} FROM c)
        INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, sub_state,
                                 result, exit_code, exit_status, n_restarts, invocation_id,
                                 main_pid, source)
        SELECT {base} + k * {STEP_USEC} + u * 200, k * {STEP_USEC} + u * 200,
               'svc-' || u || '.service',
               CASE WHEN u % 10 = 9 THEN (CASE k % 2 WHEN 0 THEN 'stop' ELSE 'start' END)
                    ELSE (CASE k % 4 WHEN 0 THEN 'start' WHEN 1 THEN 'crash'
                                     WHEN 2 THEN 'fail' ELSE 'restart' END) END,
               CASE WHEN u % 10 = 9 THEN (CASE k % 2 WHEN 0 THEN 'inactive' ELSE 'active' END)
                    ELSE (CASE k % 4 WHEN 0 THEN 'active' WHEN 3 THEN 'activating'
                                     ELSE 'failed' END) END,
               CASE WHEN u % 10 = 9 THEN (CASE k % 2 WHEN 0 THEN 'dead' ELSE 'running' END)
                    ELSE (CASE k % 4 WHEN 0 THEN 'running' WHEN 3 THEN 'auto-restart'
                                     ELSE 'failed' END) END,
               CASE WHEN u % 10 = 9 OR k % 4 = 0 THEN 'success' ELSE 'exit-code' END,
               CASE WHEN u % 10 != 9 AND k % 4 != 0 THEN 'exited' ELSE '' END,
               CASE WHEN u % 10 != 9 AND k % 4 != 0 THEN 3 END,
               CASE WHEN u % 10 = 9 THEN 0 ELSE (k + 1) / 4 END,
               printf('%032x', i / 4), 1000 + i, 'systemd'
        FROM r""")
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    print(f"replay: built {ROWS} transitions ({UNITS} units) in "
          f"{time.monotonic() - started:.1f} s")

    rules = os.path.join(ROOT, "rules", "default.json")
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        out = subprocess.run([CERBERUS, "replay", "--db", db, "--rules", rules, "--json"],
                             capture_output=True, text=True)
        times.append(time.monotonic() - t0)
        if out.returncode != 0:
            sys.exit(f"replay failed ({out.returncode}): {out.stderr}")
    report = json.loads(out.stdout)
    if report["transitions"] != ROWS:
        sys.exit(f"replay read {report['transitions']} transitions, expected {ROWS}")
    fired = {s["rule"]: s["fired"] for s in report["summary"]}
    looping = sum(1 for u in range(UNITS) if u % 10 != 9)
    if fired.get("crashloop") != looping:
        sys.exit(f"crashloop fired {fired.get('crashloop')} times, expected {looping}")
    median = statistics.median(times)
    print(f"replay: {ROWS} transitions -> {len(report['changes'])} alert changes; median "
          f"{median:.2f} s over 3 runs ({ROWS / median:,.0f} events/s); ratio "
          f"{median / LIMIT_S:.2f} of the {LIMIT_S:.0f} s limit: "
          f"{'met' if median < LIMIT_S else 'NOT met'}")
