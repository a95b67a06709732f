"""cerberus is killed with SIGKILL in the middle of a crash loop and started again: the
restarts it missed are stored with source 'reconcile', and the stored restart count still
equals the change of systemd's NRestarts."""
import os

from harness import (fix, Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     require_root, tempdir, wait_for)

require_root()
um = UserManager("sigkill")
work = tempdir("sigkill")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="150ms")})
cerberus = Cerberus(db, um.bus).start()
um.start(unit)
wait_for(lambda: count(db, unit, "restart") >= 3, 30, "three restarts recorded live")

cerberus.proc.kill()
cerberus.proc.wait()
missed_from = um.n_restarts(unit)
wait_for(lambda: um.n_restarts(unit) >= missed_from + 4, 30, "four restarts while cerberus is dead")

cerberus = Cerberus(db, um.bus).start()
reconciled = count(db, unit, "restart", source="reconcile")
check(reconciled >= 4, f"only {reconciled} restarts stored by reconcile after the SIGKILL")
wait_for(lambda: count(db, unit, "restart", source="systemd") > missed_from, 30,
         "live restarts after the restart of cerberus")
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit)
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {restarts} restarts, {reconciled} of them reconciled")
