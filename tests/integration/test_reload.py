"""What every systemd host does daily leaves the record true: a first start on a host whose
units restarted before (a baseline, no rows), daemon-reload and daemon-reexec with units
running, crash-looping, failed and waiting in auto-restart, a unit file edited then reloaded,
reset-failed, template instances and transient units, an operator's stop between two
crashes, and a re-exec and a new unit's loop while cerberus was down. Afterwards every
unit's restart rows equal its NRestarts change since cerberus first saw it, units that never
failed while watched have no crash/restart/fail rows, and the shipped rules fire only for
the real loops."""
import json
import os
import signal
import subprocess

from harness import (SOURCE_ROOT, Cerberus, UserManager, check, count, crashloop_unit, db_rows,
                     fix, require_root, restart_numbers, tempdir, wait_for)

require_root()
um = UserManager("reload")
work = tempdir("reload")
os.chown(work, um.uid, um.uid)
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
rules = json.load(open(os.path.join(SOURCE_ROOT, "rules", "default.json")))
rules.pop("$schema", None)
json.dump(rules, open(rules_path, "w"))


def flag(name):
    return os.path.join(work, name + ".fixed")


def settled(unit):
    props = um.show(unit, "SubState", "Job")
    return props["SubState"] == "running" and props["Job"] == ""


def rows(unit, *events):
    marks = ",".join("?" * len(events))
    return db_rows(db, f"SELECT count(*) FROM transitions WHERE unit = ? AND event IN ({marks})",
                   (unit,) + events)[0][0]


def alerts(unit):
    return db_rows(db, "SELECT rule, state, count FROM alerts WHERE unit = ? ORDER BY id", (unit,))


um.add_units({
    "healthy.service": "[Unit]\nDescription=healthy\n[Service]\nExecStart=/bin/sleep infinity\n",
    "past.service": crashloop_unit(fixed=flag("past"), restart_sec="100ms"),
    "failed.service": "[Service]\nExecStart=/bin/sh -c 'exit 1'\n",
    "loop.service": crashloop_unit(fixed=flag("loop"), restart_sec="300ms"),
    "waiting.service": crashloop_unit(exit_status=5, restart_sec="1h"),
    "stopme.service": crashloop_unit(exit_status=6, restart_sec="2s"),
    "tpl@.service": crashloop_unit(fixed=flag("tpl"), restart_sec="300ms"),
    "late.service": crashloop_unit(fixed=flag("late"), restart_sec="100ms"),
})

# Before cerberus ever ran: past.service restarts, then runs for good; failed.service fails.
um.start("past.service", "healthy.service", "failed.service")
wait_for(lambda: um.n_restarts("past.service") >= 4, 30, "past.service to restart 4 times")
fix(flag("past"))
wait_for(lambda: settled("past.service"), 30, "past.service to run for good")
past_restarts = um.n_restarts("past.service")
wait_for(lambda: um.show("failed.service", "ActiveState")["ActiveState"] == "failed", 15,
         "failed.service to fail")

# First start on a new database: what happened before is a baseline.
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", "none"]).start()
for unit in ("past.service", "healthy.service", "failed.service"):
    check(rows(unit, "crash", "restart", "fail", "give_up", "stop") == 0,
          f"{unit}: rows for what happened before the first start: "
          f"{db_rows(db, 'SELECT event, source FROM transitions WHERE unit = ?', (unit,))}")

transient = "transient-loop.service"
um.start("loop.service", "waiting.service", "tpl@a.service", "tpl@b-c.service")
um.units.append(transient)
subprocess.run(["runuser", "-u", um.user, "--"] + um._env() +
               ["systemd-run", "--user", "--unit", transient, "-p", "Restart=always",
                "-p", "RestartSec=300ms", "-p", "StartLimitIntervalSec=0",
                "/bin/sh", "-c", f"test -e {flag('transient')} && exec sleep infinity; exit 7"],
               check=True, capture_output=True)
looping = ["loop.service", "tpl@a.service", "tpl@b-c.service", transient]
for unit in looping:
    wait_for(lambda: count(db, unit, "restart") >= 2, 30, f"two restarts of {unit} recorded")
wait_for(lambda: um.show("waiting.service", "SubState")["SubState"] == "auto-restart", 15,
         "waiting.service to wait in auto-restart")


def reload_and_go_on(*args):
    before = count(db, "loop.service", "restart")
    um.systemctl(*args)
    wait_for(lambda: count(db, "loop.service", "restart") >= before + 2, 30,
             f"restarts recorded after {' '.join(args)}")


reload_and_go_on("daemon-reload")
reload_and_go_on("daemon-reload")
reload_and_go_on("daemon-reexec")
um.write_unit("healthy.service",
              "[Unit]\nDescription=healthy, edited\n[Service]\nExecStart=/bin/sleep infinity\n")
reload_and_go_on("daemon-reload")
um.systemctl("reset-failed", "failed.service")
reload_and_go_on("daemon-reexec")
check(cerberus.alive(), f"cerberus exited: {cerberus.output()}")
# Nothing re-counted: each loop's restart rows so far are 1..k once, the rest have none.
for unit in looping:
    numbers = restart_numbers(db, unit)
    check(numbers == list(range(1, len(numbers) + 1)),
          f"after the reloads the restart rows of {unit} are numbered {numbers}")
for unit in ("past.service", "healthy.service", "failed.service", "waiting.service"):
    check(rows(unit, "restart", "give_up") == 0,
          f"after the reloads {unit} has rows: "
          f"{db_rows(db, 'SELECT event, source FROM transitions WHERE unit = ?', (unit,))}")

# An operator stops a unit between two crashes: the stop is recorded and resolves its alert.
um.start("stopme.service")
wait_for(lambda: alerts("stopme.service"), 30, "the crashloop alert of stopme.service")
wait_for(lambda: um.show("stopme.service", "SubState")["SubState"] == "auto-restart", 15,
         "stopme.service to wait in auto-restart")
um.systemctl("stop", "stopme.service")
wait_for(lambda: rows("stopme.service", "stop") == 1, 15, "the operator's stop of stopme.service")
wait_for(lambda: alerts("stopme.service")[-1][1] == "resolved", 30,
         "the crashloop alert of stopme.service to resolve after the operator's stop")

# cerberus goes away; while it is down systemd re-executes and a new unit loops.
cerberus.proc.send_signal(signal.SIGKILL)
cerberus.proc.wait()
um.systemctl("daemon-reexec")
um.start("late.service")
wait_for(lambda: um.n_restarts("late.service") >= 5, 30, "late.service to restart 5 times")
fix(flag("late"))
wait_for(lambda: settled("late.service"), 30, "late.service to run for good")
late_restarts = um.n_restarts("late.service")
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", "none"]).start()
check(count(db, "late.service", "restart", source="reconcile") == late_restarts,
      f"late.service restarted {late_restarts} times while cerberus was down; stored "
      f"{count(db, 'late.service', 'restart', source='reconcile')} reconcile restart rows")
# Down for seconds only: that loop fits the rule's window, so it pages now.
wait_for(lambda: alerts("late.service"), 10, "the crashloop alert of late.service")

for name, unit in (("loop", "loop.service"), ("tpl", "tpl@a.service"),
                   ("tpl", "tpl@b-c.service"), ("transient", transient)):
    fix(flag(name))
for unit in looping:
    wait_for(lambda: settled(unit), 30, f"{unit} to run for good once fixed")

# The record: restart rows equal NRestarts, numbered like systemd's counter.
for unit in looping + ["late.service"]:
    target = um.n_restarts(unit)
    wait_for(lambda: count(db, unit, "restart") == target, 15,
             f"{target} restart rows of {unit} (have {count(db, unit, 'restart')})")
    numbers = restart_numbers(db, unit)
    check(numbers == list(range(1, target + 1)),
          f"restart rows of {unit} are numbered {numbers}, expected 1..{target}")
check(um.n_restarts("past.service") == past_restarts, "past.service's NRestarts changed")
for unit in ("past.service", "healthy.service", "failed.service"):
    check(rows(unit, "crash", "restart", "fail", "give_up") == 0,
          f"{unit} never failed while watched, yet has rows: "
          f"{db_rows(db, 'SELECT event, source FROM transitions WHERE unit = ?', (unit,))}")
check(rows("waiting.service", "crash") == 1 and rows("waiting.service", "restart") == 0,
      "waiting.service crashed once and waits: "
      f"{db_rows(db, 'SELECT event, source FROM transitions WHERE unit = ?', ('waiting.service',))}")

# The alerts: crashloop for the real loops only, none for the rest, no give-up anywhere.
fired = {r[0] for r in db_rows(db, "SELECT DISTINCT unit FROM alerts")}
expected = set(looping) | {"stopme.service", "late.service"}
check(fired == expected, f"alerts fired for {sorted(fired)}, expected {sorted(expected)}")
check(db_rows(db, "SELECT count(*) FROM alerts WHERE rule != 'crashloop'")[0][0] == 0,
      f"alerts other than crashloop: {db_rows(db, 'SELECT rule, unit FROM alerts')}")
for unit in looping:
    check(len(alerts(unit)) == 1, f"{unit} fired more than once: {alerts(unit)}")
    # COUNT is the qualifying crashes since it fired: every crash of the loop, those found
    # after the seconds cerberus was down included.
    crashes = count(db, unit, "crash")
    wait_for(lambda: alerts(unit)[0][2] == crashes, 10,
             f"the alert of {unit} to count {crashes} crashes (has {alerts(unit)[0][2]})")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {len(looping)} loops through 2 reloads, 2 re-execs, an edit and reset-failed; "
      f"{past_restarts} past restarts kept as a baseline, {late_restarts} restarts recovered")
