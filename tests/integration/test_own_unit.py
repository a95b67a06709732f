"""cerberus running as a unit of the manager it watches never records its own unit, and
still records the others."""
import os
import shutil

from harness import (CERBERUS, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     db_rows, fix, require_root, tempdir, wait_for)

require_root()
um = UserManager("ownunit")
work = tempdir("ownunit")
os.chown(work, um.uid, um.uid)
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
# The manager's user runs cerberus, so it gets a copy it can execute.
binary = os.path.join(work, "cerberus")
shutil.copy(CERBERUS, binary)
os.chmod(binary, 0o755)
unit = "loop.service"
me = "cerberus-self.service"
um.add_units({
    unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="150ms"),
    me: f"[Service]\nType=notify\nExecStart={binary} run --bus {um.bus} --db {db}\n",
})
um.systemctl("start", me)  # Type=notify: returns once cerberus sent READY=1
um.start(unit)
wait_for(lambda: os.path.exists(db) and count(db, unit, "restart") >= 3, 30,
         "three restarts recorded by cerberus running as a unit")
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
await_recorded_restarts(um, db, unit)
um.systemctl("restart", me)  # its own stop and start must not show up either
wait_for(lambda: um.show(me, "SubState")["SubState"] == "running", 20, "cerberus to run again")
um.systemctl("stop", me)
own = db_rows(db, "SELECT count(*) FROM transitions WHERE unit = ?", (me,))[0][0]
check(own == 0, f"cerberus recorded {own} rows about its own unit")
print("ok")
