"""/metrics on a real user manager: a unit crash-loops until systemd gives up, a rule fires
and its webhook reaches a local sink. A scrape then says what the database says: the
transitions by event and source equal the stored rows, the alert is firing for its rule,
the notification is counted as sent for its receiver, the outbox is empty, units are
tracked. Only GET (and HEAD) /metrics answers, in Prometheus text format. A bad --metrics value is a
usage error; a port in use (even by another cerberus) stops the start-up."""
import json
import os
import socket
import time
import urllib.error
import urllib.request

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, free_port,
                     parse_metrics, require_root, run_cli, tempdir, wait_for)
from sink import Sink

require_root()
um = UserManager("metrics")
work = tempdir("metrics")
db = os.path.join(work, "history.db")
sink = Sink({"/hook": ["200"]})
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"hook": {"type": "webhook", "url": sink.url("/hook")},
                         "log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["looping.service"], "severity": "critical",
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "notify": ["hook"]},
                     {"name": "quiet", "units": ["nothing.service"],
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "notify": ["log"]}]},
          open(rules_path, "w"))
# Five starts in a minute, then systemd gives up: the history stops growing.
um.add_units({"looping.service": crashloop_unit(exit_status=3, burst=5)})
os.chown(work, um.uid, um.uid)


port = free_port()
address = f"127.0.0.1:{port}"
started = time.time()
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--metrics", address]).start()
check(f"serving metrics at http://{address}/metrics" in cerberus.output(),
      f"the log names the metrics address: {cerberus.output()}")

def scrape():
    """The text format parsed: {(name, frozenset of labels): value}, plus the raw text."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        check(response.status == 200, f"GET /metrics answers 200, not {response.status}")
        content_type = response.headers["Content-Type"]
        check(content_type.startswith("text/plain; version=0.0.4"),
              f"Prometheus text format 0.0.4: {content_type}")
        text = response.read().decode()
    return parse_metrics(text), text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def stored_transitions():
    return {(event, source): n for event, source, n in db_rows(
        db, "SELECT event, source, count(*) FROM transitions GROUP BY event, source")}


def scraped_transitions(samples):
    return {(dict(labels)["event"], dict(labels)["source"]): int(v)
            for (name, labels), v in samples.items()
            if name == "cerberus_transitions_total" and v > 0}


um.start("looping.service")
wait_for(lambda: db_rows(db, "SELECT count(*) FROM transitions WHERE unit = 'looping.service' "
                             "AND event = 'give_up'")[0][0] == 1, 30, "systemd to give up")
wait_for(lambda: db_rows(db, "SELECT status FROM notifications WHERE receiver = 'hook'") ==
         [("sent",)], 20, "the trigger stored as sent")
check(len(sink.received("/hook", "firing")) == 1, "one trigger at the sink")


def settled():
    samples, _ = scrape()
    ok = (scraped_transitions(samples) == stored_transitions() and
          value(samples, "cerberus_outbox_pending") == 0)
    return samples if ok else None


samples = wait_for(settled, 10, "the scraped transitions to equal the stored rows")
_, text = scrape()
crashes = value(samples, "cerberus_transitions_total", event="crash", source="systemd")
check(crashes is not None and crashes >= 3, f"the crashes are counted: {crashes}\n{text}")
check(value(samples, "cerberus_transitions_total", event="give_up", source="emit") == 0,
      "every event and source is listed, 0 until it happens")
check(value(samples, "cerberus_alerts_firing", rule="crashloop") == 1,
      f"the alert is firing for its rule:\n{text}")
check(value(samples, "cerberus_alerts_firing", rule="quiet") == 0,
      f"a rule with nothing firing shows 0:\n{text}")
check(value(samples, "cerberus_notifications_total", receiver="hook", outcome="sent") == 1,
      f"the trigger counted as sent for its receiver:\n{text}")
check(value(samples, "cerberus_notifications_total", receiver="hook", outcome="failed") == 0 and
      value(samples, "cerberus_notifications_total", receiver="log", outcome="sent") == 0,
      f"every receiver and outcome is listed:\n{text}")
check(value(samples, "cerberus_outbox_pending") == 0, f"the outbox is empty:\n{text}")
units = value(samples, "cerberus_units_tracked")
check(units is not None and units > 0, f"units are tracked: {units}")
check(value(samples, "cerberus_bus_connected") == 1, "connected to the bus")
reconciled = value(samples, "cerberus_last_reconcile_timestamp_seconds")
check(reconciled is not None and started - 1 <= reconciled <= time.time(),
      f"the last reconcile happened during this run: {reconciled}, started {started}")
check(value(samples, "cerberus_build_info", version=run_cli("--version").stdout.split()[-1]) == 1,
      f"build info with the version:\n{text}")
for family in ("cerberus_transitions_total", "cerberus_notifications_total"):
    check(f"# TYPE {family} counter\n" in text and f"# HELP {family} " in text,
          f"{family} has HELP and TYPE counter lines")
for family in ("cerberus_alerts_firing", "cerberus_outbox_pending", "cerberus_units_tracked"):
    check(f"# TYPE {family} gauge\n" in text and f"# HELP {family} " in text,
          f"{family} has HELP and TYPE gauge lines")


def status_of(path, method="GET"):
    request = urllib.request.Request(f"http://{address}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code




def blocked(task):
    """The signals a thread blocks, from /proc (SigBlk, a hex mask: bit N-1 is signal N)."""
    for line in open(f"/proc/{cerberus.proc.pid}/task/{task}/status"):
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    return 0


# Every thread (the loop's and the HTTP server's) blocks SIGTERM, so it reaches the loop's
# signalfd instead of killing the process.
tasks = os.listdir(f"/proc/{cerberus.proc.pid}/task")
check(len(tasks) > 2, f"the HTTP server runs on threads of its own: {tasks}")
for task in tasks:
    check(blocked(task) & (1 << (15 - 1)), f"thread {task} blocks SIGTERM")

for path, method in (("/", "GET"), ("/metrics/x", "GET"), ("/", "POST")):
    check(status_of(path, method) == 404, f"{method} {path} answers 404")
check(status_of("/metrics", "POST") == 405, "POST /metrics answers 405 (GET and HEAD only)")
check(status_of("/metrics?x=1", "HEAD") == 200, "HEAD /metrics with a query answers 200")

# Another cerberus on the same port: refused before READY=1 (no silent port sharing).
other_db = os.path.join(work, "other.db")
out = run_cli("run", "--db", other_db, "--bus", um.bus, "--rules", rules_path,
              "--metrics", address)
check(out.returncode == 1 and f"cannot serve --metrics on {address}: the port is in use"
      in out.stderr, f"a port in use is a start-up failure: {out.returncode} {out.stderr}")
check(not os.path.exists(other_db), "nothing was written for the refused start")
check(cerberus.stop() == 0, "cerberus stops cleanly")

# A port held by something else.
with socket.socket() as holder:
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    held = f"127.0.0.1:{holder.getsockname()[1]}"
    out = run_cli("run", "--db", other_db, "--bus", um.bus, "--rules", rules_path,
                  "--metrics", held)
    check(out.returncode == 1 and f"cannot serve --metrics on {held}: the port is in use"
          in out.stderr, f"a port in use: {out.returncode} {out.stderr}")

for bad in ("9469", "localhost", "127.0.0.1:0", "127.0.0.1:70000", "::1:9469"):
    out = run_cli("run", "--db", other_db, "--bus", um.bus, "--rules", rules_path,
                  "--metrics", bad)
    check(out.returncode == 2 and f"--metrics '{bad}' is not HOST:PORT; use e.g. 127.0.0.1:9469"
          in out.stderr, f"--metrics {bad}: usage error, got {out.returncode} {out.stderr}")
out = run_cli("run", "--help")
check("--metrics HOST:PORT" in out.stdout, f"run --help documents --metrics: {out.stdout}")
sink.stop()
print("ok")
