"""A service that exits 3 under Restart=always until systemd's start limit stops it:
every crash, restart and the give-up are stored once, matching systemd's own counters."""
import os
import re
import subprocess

from harness import (Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     db_rows, history_json, require_root, tempdir, wait_for, SOURCE_ROOT)

require_root()
um = UserManager("crashloop")
work = tempdir("crashloop")
db = os.path.join(work, "history.db")
unit = "crashy.service"
um.add_units({unit: crashloop_unit(exit_status=3, burst=5)})

cerberus = Cerberus(db, um.bus).start()
um.start(unit)

# systemd gives up after its start limit: the unit rests in failed, no job pending.
wait_for(lambda: um.show(unit, "ActiveState", "Job")["ActiveState"] == "failed"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to give up")
restarts = await_recorded_restarts(um, db, unit)
check(restarts >= 4, f"expected the start limit to allow several restarts, NRestarts={restarts}")
wait_for(lambda: count(db, unit, "give_up") == 1, 10, "the give_up row")

starts = count(db, unit, "start")
crashes = db_rows(db, "SELECT exit_code, exit_status, result, source FROM transitions "
                      "WHERE unit = ? AND event = 'crash'", (unit,))
# Every run that started crashed with status 3, and each crash is stored once.
check(len(crashes) == starts, f"{len(crashes)} crash rows for {starts} starts")
check(all(c == ("exited", 3, "exit-code", "systemd") for c in crashes),
      f"crash rows do not all say exited/3/exit-code: {crashes}")
check(count(db, unit, "stop") == 0, "a crashing unit must not store clean stops")
check(count(db, unit, "fail") >= 1, "entering failed must be stored")

# Rows come in the order systemd went through them.
events = [r[0] for r in db_rows(db, "SELECT event FROM transitions WHERE unit = ? ORDER BY id",
                                (unit,))]
check(events[0] == "start" and events[-1] == "give_up", f"unexpected order: {events}")

# `cerberus history` shows the same rows; the view has readable UTC times.
rows = history_json(db, "--unit", unit, "--limit", "1000")
check(len(rows) == len(events), f"history --json shows {len(rows)} rows, table has {len(events)}")
check([r["event"] for r in rows] == events, "history --json order differs from the table")
only_crashes = history_json(db, "--unit", "crash*", "--event", "crash", "--since", "1h")
check(len(only_crashes) == len(crashes), "history --event crash --since 1h misses crash rows")
times = db_rows(db, "SELECT time FROM history WHERE unit = ?", (unit,))
check(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t[0]) for t in times),
      f"history view times are not ISO 8601 UTC: {times[:2]}")

# The README's queries run on this real database.
queries = open(os.path.join(SOURCE_ROOT, "examples", "queries.sql")).read()
for block in queries.split("-- name:")[1:]:
    name = block.split("\n", 1)[0].strip()
    sql = block.replace("demo-crashloop.service", unit)
    out = subprocess.run(["sqlite3", db], input=sql.split("\n", 1)[1], capture_output=True, text=True)
    check(out.returncode == 0 and "Error" not in out.stderr,
          f"query '{name}' failed on a real database: {out.stderr}")

check(cerberus.stop() == 0, f"cerberus did not exit 0 on SIGTERM: {cerberus.output()}")
check(os.stat(db).st_mode & 0o777 == 0o600, "the database is not mode 0600")
print(f"ok: {restarts} restarts, {len(crashes)} crashes, 1 give_up recorded")
