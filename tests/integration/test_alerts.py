"""The shipped rules on a real user manager: they fire on a service that crashes every
second and on one that exits 0 and is respawned forever; they stay quiet on five operator
restarts, on one crash followed by a healthy run and on a deploy. A firing alert survives
a restart of cerberus without being told twice; SIGHUP with broken rules keeps the old
ones; SIGHUP with good rules takes them, and a fixed unit's alert resolves."""
import json
import os
import signal

from harness import (SOURCE_ROOT, Cerberus, UserManager, check, count, crashloop_unit, db_rows,
                     fix, require_root, tempdir, wait_for)

require_root()
um = UserManager("alerts")
work = tempdir("alerts")
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
default_rules = json.load(open(os.path.join(SOURCE_ROOT, "rules", "default.json")))
default_rules.pop("$schema", None)
json.dump(default_rules, open(rules_path, "w"))
flag = os.path.join(work, "fixed")
once = os.path.join(work, "crashed-once")

um.add_units({
    "crashing.service": crashloop_unit(exit_status=3, fixed=flag, restart_sec="1s"),
    "respawning.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
                          "ExecStart=/bin/sh -c 'sleep 0.2; exit 0'\nRestart=always\n"
                          "RestartSec=200ms\n",
    "operated.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep infinity\n",
    "deployed.service": "[Service]\nExecStart=/bin/sleep infinity\n",
    "oncecrash.service": "[Service]\nExecStart=/bin/sh -c "
                         f"'if [ -e {once} ]; then exec sleep infinity; fi; touch {once}; exit 3'\n"
                         "Restart=on-failure\nRestartSec=200ms\n",
    "later.service": crashloop_unit(exit_status=4, restart_sec="300ms"),
})
os.chown(work, um.uid, um.uid)


def alerts(unit, rule=None, state=None):
    sql = "SELECT rule, state, count FROM alerts WHERE unit = ?"
    params = [unit]
    if rule:
        sql += " AND rule = ?"
        params.append(rule)
    if state:
        sql += " AND state = ?"
        params.append(state)
    return db_rows(db, sql, params)


def fired_lines(cerberus, rule, unit):
    return cerberus.output().count(f"alert firing: rule '{rule}' unit '{unit}'")


cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
um.start("crashing.service", "respawning.service", "operated.service", "deployed.service",
         "oncecrash.service")

# Operator restarts, a deploy: stop + start, never a restart row.
for _ in range(5):
    um.systemctl("restart", "operated.service")
um.systemctl("stop", "deployed.service")
um.systemctl("start", "deployed.service")

wait_for(lambda: alerts("crashing.service", "crashloop", "firing"), 30,
         "the crashloop alert of crashing.service")
wait_for(lambda: alerts("respawning.service", "respawn", "firing"), 30,
         "the respawn alert of respawning.service")
check(fired_lines(cerberus, "crashloop", "crashing.service") == 1,
      "the crashloop alert must be logged once")
check(not alerts("respawning.service", "crashloop"), "an exit-0 respawn is not a crash loop")
check(not alerts("crashing.service", "respawn"), "a crash loop is not a clean respawn")

# The quiet ones: once their transitions are stored, their (absent) alerts are decided.
wait_for(lambda: count(db, "operated.service", "start") == 6, 20, "six starts of operated.service")
wait_for(lambda: count(db, "deployed.service", "start") == 2, 20, "two starts of deployed.service")
wait_for(lambda: count(db, "oncecrash.service", "crash") == 1
         and count(db, "oncecrash.service", "start") == 2, 20,
         "one crash and a healthy second run of oncecrash.service")
for unit in ("operated.service", "deployed.service", "oncecrash.service"):
    check(not alerts(unit), f"{unit} must not alert: {alerts(unit)}")

# cerberus is killed and started again while the alert fires: still firing, not told again.
cerberus.proc.kill()
cerberus.proc.wait()
before = count(db, "crashing.service", "crash")
cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
wait_for(lambda: count(db, "crashing.service", "crash") >= before + 2, 30,
         "two more crashes after the restart of cerberus")
check(fired_lines(cerberus, "crashloop", "crashing.service") == 0,
      f"the firing alert was told again after a restart: {cerberus.output()}")
check(len(alerts("crashing.service", "crashloop")) == 1, "the alert was duplicated")
check(alerts("crashing.service", "crashloop", "firing"), "the alert stopped firing")

# Broken rules on SIGHUP are refused; the old rules keep working.
open(rules_path, "w").write('{"rules": [{"name": "x", "when": {"event": "crash", "count": 0}}')
cerberus.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "reload refused" in cerberus.output(), 10, "the refused reload")
check(cerberus.alive(), "cerberus died on a broken rules file")
um.start("later.service")
wait_for(lambda: alerts("later.service", "crashloop", "firing"), 30,
         "the old rules to still fire after a refused reload")

# Good rules on SIGHUP are taken: here the crash loop resolves after 1 s up.
default_rules["rules"][0]["resolve_when_up_for"] = "1s"
json.dump(default_rules, open(rules_path, "w"))
cerberus.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "rules reloaded" in cerberus.output(), 10, "the reload")
check(alerts("crashing.service", "crashloop", "firing"), "the reload lost the firing alert")
fix(flag)
wait_for(lambda: alerts("crashing.service", "crashloop", "resolved"), 30,
         "the crashloop alert to resolve once the unit stays up")
check("alert resolved: rule 'crashloop' unit 'crashing.service'" in cerberus.output(),
      "the resolve was not logged")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print("ok")
