"""`cerberus history --unit U --since 1h` on a 5-million-row database (goal < 50 ms, the
whole command as an operator runs it, process start included)."""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import benchdb

CERBERUS = sys.argv[1]
ROWS = int(os.environ.get("BENCH_ROWS", "5000000"))
UNITS = 1000
SPAN_USEC = 30 * 86400 * 1000000

with tempfile.TemporaryDirectory(prefix="cerberus-bench-") as work:
    db = os.path.join(work, "big.db")
    con = benchdb.create(db)
    now = int(time.time() * 1000000)
    started = time.monotonic()
    con.execute("BEGIN")
    con.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS - 1})
        INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, sub_state,
                                 result, exit_code, exit_status, n_restarts, invocation_id,
                                 source)
        SELECT {now} - ({ROWS} - i) * ({SPAN_USEC} / {ROWS}), i,
               'svc-' || (i % {UNITS}) || '.service',
               CASE i % 4 WHEN 0 THEN 'crash' WHEN 1 THEN 'fail' WHEN 2 THEN 'restart'
                          ELSE 'start' END,
               'failed', 'failed', 'exit-code', 'exited', 3, i / {UNITS}, '', 'systemd'
        FROM c""")
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    print(f"history: built {ROWS} rows in {time.monotonic() - started:.1f} s")

    times = []
    for _ in range(9):
        t0 = time.monotonic()
        out = subprocess.run([CERBERUS, "history", "--db", db, "--unit", "svc-7.service",
                              "--since", "1h"], capture_output=True, text=True)
        times.append((time.monotonic() - t0) * 1000)
        if out.returncode != 0:
            sys.exit(f"history failed: {out.stderr}")
    rows = len(out.stdout.splitlines()) - 1
    median = statistics.median(times)
    print(f"history: --unit svc-7.service --since 1h -> {rows} rows; median {median:.1f} ms "
          f"over 9 runs; ratio {median / 50:.2f} of the 50 ms limit: "
          f"{'met' if median < 50 else 'NOT met'}")
