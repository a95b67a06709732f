"""Where an alert's events came from, on a real user manager. A member of --emit-group cannot
forge a crash loop for a unit systemd follows: `cerberus emit` refuses a systemd unit name
(exit 2), and the daemon refuses one sent to its socket directly (an error reply, logged once
per unit), so no row is stored and the shipped-style `*.service` rule stays quiet. An
emitted crash loop of another job fires, and the webhook body, its summary and the log line
say the events came from emit; a rule that accepts only systemd's events ignores them."""
import json
import os
import socket

from harness import (Cerberus, UserManager, check, db_rows, require_root, run_cli, tempdir,
                     wait_for)
from sink import Sink

require_root()
um = UserManager("sources")
work = tempdir("sources")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
sink = Sink({"/hook": ["200"]})
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"hook": {"type": "webhook", "url": sink.url("/hook")},
                         "log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["*.service"], "severity": "critical",
                      "when": {"event": "crash", "count": 3, "within": "5m"},
                      "notify": ["hook", "log"]},
                     {"name": "jobs", "units": ["upstart-*"],
                      "when": {"event": "crash", "count": 3, "within": "5m"},
                      "notify": ["hook", "log"]},
                     {"name": "jobs-from-systemd", "units": ["upstart-*"],
                      "when": {"event": "crash", "count": 3, "within": "5m",
                               "sources": ["systemd", "reconcile"]},
                      "notify": ["log"]}]}, open(rules_path, "w"))
# A real unit systemd follows, healthy: the target of the forgery.
um.add_units({"real.service": "[Service]\nExecStart=/bin/sleep infinity\n"})
um.start("real.service")
wait_for(lambda: um.show("real.service", "ActiveState")["ActiveState"] == "active", 10,
         "real.service to run")
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", sock]).start()


def emit(unit, event, *extra):
    return run_cli("emit", "--unit", unit, "--event", event, "--socket", sock, "--db", db,
                   *extra)


def ask(request):
    """One request line straight to the daemon's socket, past the client's own checks."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
        s.settimeout(10)
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


def rows(unit):
    return db_rows(db, "SELECT event, source FROM transitions WHERE unit = ? ORDER BY id",
                   (unit,))


# The client refuses the name before it sends anything (and before any --db fallback).
out = emit("real.service", "stopping", "--exit-status", "1")
check(out.returncode == 2 and "--unit 'real.service'" in out.stderr and
      "like a systemd unit" in out.stderr, f"emit of a systemd unit: {out.returncode} {out.stderr}")

# The daemon refuses it too, from a client that skips those checks: three forged crashes.
for _ in range(3):
    for request in ({"event": "started"}, {"event": "stopping", "exit_status": 1}):
        reply = ask(dict(request, unit="real.service"))
        check(reply["ok"] is False and "unit 'real.service'" in reply["error"] and
              "like a systemd unit" in reply["error"], f"the daemon answered {reply}")
check([r for r in rows("real.service") if r[1] == "emit"] == [],
      f"forged rows were stored: {rows('real.service')}")
check(cerberus.output().count("refused an event for 'real.service'") == 1,
      f"the refusal is logged once per unit:\n{cerberus.output()}")

# An emitted crash loop of an Upstart job: fires, and says where its events came from.
unit = "upstart-web"
check(emit(unit, "started").returncode == 0, "emit started")
for _ in range(3):
    out = emit(unit, "stopping", "--exit-status", "1")
    check(out.returncode == 0, f"emit stopping: {out.stderr}")
wait_for(lambda: sink.received("/hook", "firing"), 10, "the emitted loop's webhook")
bodies = [json.loads(r["body"]) for r in sink.received("/hook", "firing")]
check(len(bodies) == 1 and bodies[0]["rule"] == "jobs" and bodies[0]["unit"] == unit,
      f"one trigger, for the jobs rule: {bodies}")
check(bodies[0]["sources"] == ["emit"], f"the webhook names the source: {bodies[0]}")
wait_for(lambda: f"alert firing: rule 'jobs' unit '{unit}'" in cerberus.output(), 10,
         "the log line")
line = next(l for l in cerberus.output().splitlines() if f"rule 'jobs' unit '{unit}'" in l)
check(line.endswith("(via emit)"), f"the log line says where the events came from: {line}")
check("rule 'jobs-from-systemd'" not in cerberus.output(),
      "a rule that accepts only systemd's events fired on emitted ones")
check(db_rows(db, "SELECT rule, unit FROM alerts") == [("jobs", unit)],
      f"only the emitted loop's alert: {db_rows(db, 'SELECT rule, unit FROM alerts')}")
check(cerberus.stop() == 0, "cerberus stops cleanly")
sink.stop()
print("ok")
