"""`cerberus supervisor-listener` under the real supervisord: a program that dies before
startsecs is retried until FATAL, one that runs and exits 5 is respawned forever; both are
stored with source supervisor (crash, restart, give_up) and the crash loop fires a rule. A
program named like a systemd unit (api.service) is refused by the listener: logged once,
with the name, and nothing stored."""
import json
import os
import signal
import subprocess

from harness import (CERBERUS, Cerberus, UserManager, at_exit, check, db_rows, require_root,
                     tempdir, wait_for)

require_root()
um = UserManager("supervisor")
work = tempdir("supervisor")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "supervised-loop", "units": ["supervisor:*"],
                      "when": {"event": "crash", "count": 3, "within": "5m",
                               "uptime_below": "30s"},
                      "resolve_when_up_for": "10m", "severity": "critical",
                      "notify": ["log"]}]}, open(rules_path, "w"))
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", sock]).start()

conf = os.path.join(work, "supervisord.conf")
open(conf, "w").write(f"""[supervisord]
nodaemon=true
logfile={work}/supervisord.log
pidfile={work}/supervisord.pid
childlogdir={work}

[program:fragile]
command=/bin/sh -c "sleep 0.1; exit 3"
startsecs=1
startretries=2
autorestart=true

[program:api.service]
command=/bin/sh -c "sleep 0.1; exit 4"
startsecs=1
startretries=2
autorestart=true

[program:loopy]
command=/bin/sh -c "sleep 0.3; exit 5"
startsecs=0
autorestart=true

[eventlistener:cerberus]
command={CERBERUS} supervisor-listener --socket {sock} --db {db}
events=PROCESS_STATE
stderr_logfile={work}/listener.err
""")
supervisord = subprocess.Popen(["supervisord", "-n", "-c", conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)


def stop_supervisord():
    if supervisord.poll() is None:
        supervisord.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(15)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()


at_exit(stop_supervisord)


def events(unit):
    return [r[0] for r in db_rows(db, "SELECT event FROM transitions WHERE unit = ? ORDER BY "
                                      "ts_usec, id", (unit,))]


def listener_log():
    path = os.path.join(work, "listener.err")
    return open(path).read() if os.path.exists(path) else ""


# BACKOFF (died before startsecs) is a crash, each retry a restart, FATAL a give-up.
fragile = "supervisor:fragile"
wait_for(lambda: "give_up" in events(fragile), 30,
         f"the give-up of {fragile} (rows {events(fragile)}, listener: {listener_log()})")
rows = events(fragile)
check(rows == ["crash", "restart", "crash", "restart", "crash", "give_up"],
      f"{fragile} stored {rows}")

# RUNNING then EXITED unexpectedly: crash; the respawn's RUNNING: restart and start.
loopy = "supervisor:loopy"
wait_for(lambda: events(loopy).count("crash") >= 3, 30, f"three crashes of {loopy}")
rows = events(loopy)
check(rows[:6] == ["start", "crash", "restart", "start", "crash", "restart"],
      f"{loopy} stored {rows[:6]}")
sources = db_rows(db, "SELECT DISTINCT source FROM transitions WHERE unit LIKE 'supervisor:%'")
check(sources == [("supervisor",)], f"rows not from source supervisor: {sources}")
check(events("supervisor:cerberus") == [], "the listener recorded itself")
refused = "ignoring the events of 'supervisor:api.service': the name ends in '.service' like a " \
          "systemd unit"
wait_for(lambda: refused in listener_log(), 30, f"the refusal of api.service ({listener_log()})")
check(events("supervisor:api.service") == [], "events of a systemd-like name were stored")
for unit in (fragile, loopy):
    wait_for(lambda: f"alert firing: rule 'supervised-loop' unit '{unit}'" in cerberus.output(),
             10, f"the alert on {unit}")
stop_supervisord()
check(listener_log().count("supervisor:api.service") == 1,
      f"the refusal is logged once, not per event: {listener_log()}")
check(cerberus.stop() == 0, "cerberus did not stop cleanly")
print(f"ok: {fragile} {events(fragile)}; {loopy} crash-looped and alerted")
