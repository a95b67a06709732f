"""An operator starts, stops and restarts a healthy service by hand: starts and stops,
never a crash or an automatic restart. Template instances and escaped names come out
exactly as systemd names them."""
import os

from harness import (Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     db_rows, require_root, tempdir, wait_for)

require_root()
um = UserManager("manual")
db = os.path.join(tempdir("manual"), "history.db")
healthy = "healthy.service"
template = "tpl@.service"
instance = "tpl@a-b.service"
escaped = "esc\\x2dname.service"  # the unit name holds a literal \x2d, as systemd-escape writes
um.add_units({
    healthy: "[Service]\nExecStart=/bin/sleep infinity\n",
    template: crashloop_unit(exit_status=7, burst=3),
    escaped: crashloop_unit(exit_status=9, burst=3),
})
cerberus = Cerberus(db, um.bus).start()

um.systemctl("start", healthy)
wait_for(lambda: count(db, healthy, "start") == 1, 10, "the first start row")
um.systemctl("stop", healthy)
wait_for(lambda: count(db, healthy, "stop") == 1, 10, "the stop row")
um.systemctl("start", healthy)
um.systemctl("restart", healthy)
wait_for(lambda: count(db, healthy, "start") == 3, 10, "three start rows")
wait_for(lambda: count(db, healthy, "stop") == 2, 10, "two stop rows")
for event in ("crash", "restart", "fail", "give_up"):
    check(count(db, healthy, event) == 0, f"a manual restart stored a '{event}' row")
stop_rows = db_rows(db, "SELECT result, exit_code, exit_status FROM transitions WHERE unit = ? "
                        "AND event = 'stop'", (healthy,))
check(all(r[0] == "success" for r in stop_rows), f"manual stops must be Result=success: {stop_rows}")

um.start(instance, escaped)
for unit, status in ((instance, 7), (escaped, 9)):
    wait_for(lambda: um.show(unit, "ActiveState")["ActiveState"] == "failed"
             and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to give up")
    await_recorded_restarts(um, db, unit)
    statuses = {r[0] for r in db_rows(db, "SELECT exit_status FROM transitions WHERE unit = ? "
                                          "AND event = 'crash'", (unit,))}
    check(statuses == {status}, f"{unit}: crash statuses {statuses}, expected {{{status}}}")
    wait_for(lambda: count(db, unit, "give_up") == 1, 10, f"the give_up row of {unit}")

names = {r[0] for r in db_rows(db, "SELECT DISTINCT unit FROM transitions")}
check({healthy, instance, escaped} <= names, f"stored unit names: {sorted(names)}")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print("ok")
