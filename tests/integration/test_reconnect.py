"""The session bus is restarted and systemd re-executes while a service crash-loops:
cerberus reconnects without exiting and loses no restart."""
import os
import signal

from harness import (fix, Cerberus, UserManager, await_recorded_restarts, check, count, crashloop_unit,
                     require_root, tempdir, wait_for)

require_root()
um = UserManager("reconnect")
work = tempdir("reconnect")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="200ms")})
cerberus = Cerberus(db, um.bus).start()
um.start(unit)
wait_for(lambda: count(db, unit, "restart") >= 2, 30, "two restarts recorded")

# Kill the bus daemon. The socket stays with the manager, so the next client re-activates it.
bus_pid = int(um.show("dbus.service", "MainPID")["MainPID"])
check(bus_pid > 0, "the session bus is not running as dbus.service")
os.kill(bus_pid, signal.SIGKILL)
wait_for(lambda: "lost the" in cerberus.output(), 15, "cerberus to notice the lost bus")
wait_for(lambda: "reconnected" in cerberus.output(), 30, "cerberus to reconnect")
before = count(db, unit, "restart")
wait_for(lambda: count(db, unit, "restart") >= before + 2, 30, "restarts recorded after reconnect")

# systemd re-executes itself: it drops off the bus and comes back.
um.systemctl("daemon-reexec")
before = count(db, unit, "restart")
wait_for(lambda: count(db, unit, "restart") >= before + 2, 30, "restarts recorded after reexec")

check(cerberus.alive(), f"cerberus exited: {cerberus.output()}")
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit)
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {restarts} restarts across a bus restart and a reexec")
