"""Another process holds a write lock on the database while services crash: cerberus keeps
the events queued, says so once, and stores every one of them when the lock goes."""
import os
import sqlite3

from harness import (fix, Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     require_root, tempdir, wait_for)

require_root()
um = UserManager("locked")
work = tempdir("locked")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="150ms")})
cerberus = Cerberus(db, um.bus).start()

locker = sqlite3.connect(db, timeout=1, isolation_level=None)
locker.execute("BEGIN IMMEDIATE")
um.start(unit)
wait_for(lambda: um.n_restarts(unit) >= 4, 30, "four restarts while the database is locked")
# busy_timeout is 5 s: the first flush gives up after it and logs.
wait_for(lambda: "cannot write" in cerberus.output(), 20, "cerberus to report the locked database")
check(cerberus.alive(), "cerberus died on a locked database")
locker.execute("COMMIT")
locker.close()

fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit, timeout=30)
check(cerberus.output().count("cannot write") == 1, "the lock must be reported once, not per retry")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {restarts} restarts stored after the lock was released")
