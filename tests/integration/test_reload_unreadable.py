"""SIGHUP while the history cannot be read (another program renamed its table): the new
rules are valid, but the replay that rebuilds their windows fails, so the reload is refused
with one sentence naming the database. The daemon keeps running, the rules in force stay
(the new rule never shows on /metrics), /metrics says the reload was refused, and nothing
is lost: a crash loop that goes on meanwhile is queued and stored once the table is back,
every restart once, its alert told once. A later crash loop fires the old rule, and the
next SIGHUP is taken."""
import json
import os
import signal
import sqlite3
import urllib.request

from harness import (Cerberus, UserManager, await_recorded_restarts, check, crashloop_unit,
                     db_rows, fix, free_port, parse_metrics, require_root, tempdir, wait_for)

require_root()
um = UserManager("reload_unreadable")
work = tempdir("reloadunreadable")
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
address = f"127.0.0.1:{free_port()}"
crashloop = {"name": "crashloop", "units": ["*loop.service"],
             "when": {"event": "crash", "count": 3, "within": "1m"}, "notify": ["log"]}
extra = {"name": "extra", "units": ["*.service"],
         "when": {"event": "start", "count": 1, "within": "1m"}, "notify": ["log"]}


def write_rules(*rules):
    json.dump({"receivers": {"log": {"type": "log"}}, "rules": list(rules)},
              open(rules_path, "w"))


def rename(table, to):
    con = sqlite3.connect(db, timeout=10)
    try:
        con.execute(f"ALTER TABLE {table} RENAME TO {to}")
        con.commit()
    finally:
        con.close()


def metrics():
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return parse_metrics(response.read().decode())


def reload_success():
    return metrics()[("cerberus_rules_reload_success", frozenset())]


def alerts(unit):
    return db_rows(db, "SELECT rule, state FROM alerts WHERE unit = ?", (unit,))


def told(unit):
    return cerberus.output().count(f"alert firing: rule 'crashloop' unit '{unit}'")


def rules_on_metrics():
    return {dict(labels)["rule"] for name, labels in metrics() if name == "cerberus_alerts_firing"}


write_rules(crashloop)
early_fixed = os.path.join(work, "early.fixed")
um.add_units({"steady.service": "[Service]\nExecStart=/bin/sleep infinity\n",
              "early-loop.service": crashloop_unit(exit_status=3, restart_sec="300ms",
                                                   fixed=early_fixed),
              "loop.service": crashloop_unit(exit_status=3, restart_sec="300ms")})
os.chown(work, um.uid, um.uid)
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", "none",
                                 "--metrics", address]).start()
um.start("steady.service", "early-loop.service")
wait_for(lambda: alerts("early-loop.service") == [("crashloop", "firing")], 30,
         "the crashloop alert of early-loop.service")
stored = db_rows(db, "SELECT * FROM transitions ORDER BY id")

# Valid new rules, a history that cannot be read: refused, said once, the daemon runs on.
hidden_at = um.n_restarts("early-loop.service")
rename("transitions", "hidden_transitions")
write_rules(crashloop, extra)
cerberus.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "reload refused" in cerberus.output() or not cerberus.alive(), 10,
         "the reload to be refused")
check(cerberus.alive(), f"cerberus stopped on a SIGHUP it could not replay: {cerberus.output()}")
refused = [line for line in cerberus.output().splitlines() if "reload refused" in line]
check(len(refused) == 1, f"the refused reload is said once: {refused}")
check("the current rules stay in force: " in refused[0] and f"database '{db}'" in refused[0]
      and "no such table: transitions" in refused[0],
      f"the refusal names the database and why: {refused[0]!r}")
check("rules reloaded" not in cerberus.output(), f"a reload was taken: {cerberus.output()}")
wait_for(lambda: reload_success() == 0, 5, "/metrics to say the reload was refused")
check(rules_on_metrics() == {"crashloop"}, f"rules in force on /metrics: {rules_on_metrics()}")
# The loop goes on meanwhile: what it does cannot be written now and stays queued.
wait_for(lambda: um.n_restarts("early-loop.service") >= hidden_at + 2, 15,
         "early-loop.service to restart twice while the table is hidden")
wait_for(lambda: "keeping" in cerberus.output(), 10, "the failed write to be said")

# The table back: what early-loop.service did meanwhile is stored, every restart once; the
# old rule still fires for a new loop and tells; the new one was never in force.
rename("hidden_transitions", "transitions")
fix(early_fixed)
wait_for(lambda: um.show("early-loop.service", "SubState")["SubState"] == "running", 30,
         "early-loop.service to run for good")
restarts = await_recorded_restarts(um, db, "early-loop.service")
kept = db_rows(db, f"SELECT * FROM transitions WHERE id <= {stored[-1][0]} ORDER BY id")
check(kept == stored, f"rows stored before the refused reload changed: {stored} -> {kept}")
check(alerts("early-loop.service") == [("crashloop", "firing")] and told("early-loop.service") == 1,
      f"early-loop.service fired once: {alerts('early-loop.service')}, told "
      f"{told('early-loop.service')} times")
um.start("loop.service")
wait_for(lambda: alerts("loop.service") == [("crashloop", "firing")], 30,
         "the crashloop alert of loop.service")
wait_for(lambda: told("loop.service") == 1, 10, "the crashloop alert of loop.service told")
check(db_rows(db, "SELECT count(*) FROM alerts WHERE rule = 'extra'")[0][0] == 0,
      f"the refused rule fired: {db_rows(db, 'SELECT rule, unit FROM alerts')}")

# Readable again: the same rules are taken at the next SIGHUP.
cerberus.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "rules reloaded: 2 rules," in cerberus.output(), 10, "the reload to be taken")
wait_for(lambda: reload_success() == 1, 5, "/metrics to say the reload was taken")
check(rules_on_metrics() == {"crashloop", "extra"},
      f"rules in force on /metrics: {rules_on_metrics()}")
check(cerberus.stop() == 0, f"cerberus did not exit 0 on SIGTERM: {cerberus.output()}")
print(f"ok: refused while unreadable; {len(stored)} rows kept, {restarts} restarts stored once, "
      "the old rule fired")
