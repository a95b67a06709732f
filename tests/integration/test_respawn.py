"""A service that exits 0 and is respawned forever: restarts and clean stops, no crash."""
import os

from harness import (fix, Cerberus, UserManager, await_recorded_restarts, check, count, db_rows,
                     require_root, tempdir, wait_for)

require_root()
um = UserManager("respawn")
work = tempdir("respawn")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
unit = "respawn.service"
um.add_units({unit: "[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
                    f"ExecStart=/bin/sh -c 'test -e {flag} && exec sleep infinity; sleep 0.1; exit 0'\n"
                    "Restart=always\nRestartSec=100ms\n"})
cerberus = Cerberus(db, um.bus).start()
um.start(unit)
wait_for(lambda: um.n_restarts(unit) >= 5, 30, f"{unit} to respawn 5 times")
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit)

check(count(db, unit, "crash") == 0, "an exit 0 respawn is not a crash")
stops = db_rows(db, "SELECT exit_code, exit_status, result FROM transitions "
                    "WHERE unit = ? AND event = 'stop'", (unit,))
check(len(stops) >= restarts, f"{len(stops)} stop rows for {restarts} respawns")
exited = [s for s in stops if s[0] == "exited"]
check(len(exited) >= restarts and all(s[1] == 0 and s[2] == "success" for s in exited),
      f"respawned runs must be stored as exited 0 / success: {stops}")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {restarts} respawns recorded")
