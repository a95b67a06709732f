"""Twenty services crash-loop at once: for every one of them the stored restarts equal
systemd's NRestarts, and every crash keeps its exit status."""
import os

from harness import (fix, Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     db_rows, require_root, tempdir, wait_for)

require_root()
um = UserManager("many")
work = tempdir("many")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
um.add_units({"many@.service": crashloop_unit(exit_status=3, fixed=flag, restart_sec="100ms")})
units = [f"many@{i}.service" for i in range(20)]
cerberus = Cerberus(db, um.bus).start()
um.start(*units)
wait_for(lambda: all(count(db, u, "restart") >= 5 for u in units), 60,
         "five recorded restarts of each of the 20 units")
fix(flag)
for unit in units:
    wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
             and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
total = 0
for unit in units:
    total += await_recorded_restarts(um, db, unit)
    statuses = {r[0] for r in db_rows(db, "SELECT exit_status FROM transitions WHERE unit = ? AND "
                                          "event = 'crash'", (unit,))}
    check(statuses == {3}, f"{unit}: crash statuses {statuses}")
    check(count(db, unit, "crash") >= count(db, unit, "restart"),
          f"{unit}: fewer crashes than restarts")
check(cerberus.alive(), "cerberus died under load")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {total} restarts over 20 units")
