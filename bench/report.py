"""`cerberus report` over 1,000,000 stored transitions with the replay overlay of
rules/default.json (goal < 5 s, the whole command as an operator runs it, process start and
the HTML file included). Marks are aggregated per pixel column, so the page stays small."""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import benchdb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CERBERUS = sys.argv[1]
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
UNITS = 200
STEP_USEC = 10 * 1000000  # each unit does one thing every 10 s: about 6 days of history
ALERTS = 2000
LIMIT_S = 5.0

with tempfile.TemporaryDirectory(prefix="cerberus-bench-") as work:
    db = os.path.join(work, "report.db")
    con = benchdb.create(db)
    base = int(time.time() * 1000000) - (ROWS // UNITS) * STEP_USEC
    started = time.monotonic()
    con.execute("BEGIN")
    # Nine units in ten crash-loop (start, crash, fail, restart), crashes of every kind; the
    # tenth is deployed over and over (stop, start). Rows in time order, units staggered.
    con.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS - 1}),
        r(i, u, k) AS (SELECT i, i % {UNITS}, i / {UNITS} FROM c)
        INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, sub_state,
                                 result, exit_code, exit_status, n_restarts, invocation_id,
                                 main_pid, source)
        SELECT {base} + k * {STEP_USEC} + u * 1000, k * {STEP_USEC} + u * 1000,
               'svc-' || u || '.service',
               CASE WHEN u % 10 = 9 THEN (CASE k % 2 WHEN 0 THEN 'stop' ELSE 'start' END)
                    ELSE (CASE k % 4 WHEN 0 THEN 'start' WHEN 1 THEN 'crash'
                                     WHEN 2 THEN 'fail' ELSE 'restart' END) END,
               '', '',
               CASE WHEN u % 10 = 9 OR k % 4 = 0 THEN 'success'
                    ELSE (CASE u % 4 WHEN 0 THEN 'exit-code' WHEN 1 THEN 'signal'
                                     WHEN 2 THEN 'core-dump' ELSE 'oom-kill' END) END,
               CASE WHEN u % 10 != 9 AND k % 4 != 0 THEN 'exited' ELSE '' END,
               CASE WHEN u % 10 != 9 AND k % 4 != 0 THEN 3 END,
               CASE WHEN u % 10 = 9 THEN 0 ELSE (k + 1) / 4 END,
               printf('%032x', i / 4), 1000 + i, 'systemd'
        FROM r""")
    con.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {ALERTS - 1})
        INSERT INTO alerts (rule, unit, host, dedup_key, state, severity, count, started_usec,
                            resolved_usec)
        SELECT 'crashloop', 'svc-' || (i % {UNITS}) || '.service', 'bench', 'k' || i,
               'resolved', 'critical', 3, {base} + i * 250000000, {base} + i * 250000000 + 60000000
        FROM c""")
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    print(f"report: built {ROWS} transitions ({UNITS} units), {ALERTS} alerts in "
          f"{time.monotonic() - started:.1f} s")

    rules = os.path.join(ROOT, "rules", "default.json")
    page = os.path.join(work, "report.html")
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        out = subprocess.run([CERBERUS, "report", "--db", db, "--rules", rules, "-o", page],
                             capture_output=True, text=True)
        times.append(time.monotonic() - t0)
        if out.returncode != 0:
            sys.exit(f"report failed ({out.returncode}): {out.stderr}")
    html = open(page, encoding="utf-8").read()
    shown = sum(int(m.group(1) or 1) for m in re.finditer(
        r'<(?:circle|rect|path) [^>]*data-kind="(?:start|stop|crash|restart|fail|give_up)"'
        r'(?:[^>]*data-count="(\d+)")?', html))
    if shown != ROWS:
        sys.exit(f"the report's marks count {shown} transitions, expected {ROWS}")
    median = statistics.median(times)
    print(f"report: {ROWS} transitions -> {len(html) / 1e6:.1f} MB of HTML; median "
          f"{median:.2f} s over 3 runs ({ROWS / median:,.0f} transitions/s); ratio "
          f"{median / LIMIT_S:.2f} of the {LIMIT_S:.0f} s limit: "
          f"{'met' if median < LIMIT_S else 'NOT met'}")
