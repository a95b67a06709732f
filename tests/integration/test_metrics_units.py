"""/metrics as Prometheus and an operator read it, on a real user manager: a unit crash-loops
until systemd gives up while another runs healthy. `promtool check metrics` accepts the
scrape (types, HELP, escaping, naming). The per-unit counters equal the unit's rows in the
database, with the host label; the healthy unit counts no crash and no restart; no unit is
left out. The process_* series describe the daemon's own process. A SIGHUP with a bad rule
file sets cerberus_rules_reload_success to 0 and keeps the last reload's time; a good one
sets it back to 1 and moves the time."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from harness import (CERBERUS, Cerberus, UserManager, check, crashloop_unit, db_rows, fail,
                     free_port, parse_metrics, require_root, tempdir, wait_for)

require_root()
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    if os.environ.get("CI") == "true":
        fail("promtool is missing (Debian package prometheus); under CI=true the test must run")
    print("SKIP: promtool is missing; install the Debian package prometheus")
    raise SystemExit(77)

um = UserManager("metrics_units")
work = tempdir("metricsunits")
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
good_rules = {"receivers": {"log": {"type": "log"}},
              "rules": [{"name": "crashloop", "units": ["looping.service"],
                         "when": {"event": "crash", "count": 3, "within": "1m"},
                         "notify": ["log"]}]}
json.dump(good_rules, open(rules_path, "w"))
# A unit name with a systemd escape: its backslash must be escaped in the label value.
HEALTHY = "healthy\\x2done.service"
um.add_units({"looping.service": crashloop_unit(exit_status=3, burst=5),
              HEALTHY: "[Unit]\nDescription=healthy\n[Service]\nExecStart=/bin/sleep infinity\n"})
os.chown(work, um.uid, um.uid)


address = f"127.0.0.1:{free_port()}"
started = time.time()
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--metrics", address]).start()
ready = time.time()
host = socket.gethostname()

def scrape():
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return parse_metrics(text), text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def unit_value(samples, name, unit):
    return value(samples, name, unit=unit, host=host)


def rows(unit, event):
    return db_rows(db, "SELECT count(*) FROM transitions WHERE unit = ? AND event = ?",
                   (unit, event))[0][0]


# The reload series at start: the rules start-up loaded are in force.
samples, _ = scrape()
check(value(samples, "cerberus_rules_reload_success") == 1, "reload_success is 1 at start")
first_load = value(samples, "cerberus_rules_last_reload_timestamp_seconds")
check(first_load is not None and started - 1 <= first_load <= ready + 1,
      f"the start-up load's time: {first_load}, started {started}, ready {ready}")

um.start("looping.service", HEALTHY)
wait_for(lambda: rows("looping.service", "give_up") == 1, 30, "systemd to give up the loop")
wait_for(lambda: um.show(HEALTHY, "SubState")["SubState"] == "running", 10, "the healthy unit")


def counters_match():
    samples, text = scrape()
    return (samples, text) if (
        unit_value(samples, "cerberus_unit_crashes_total", "looping.service") ==
        rows("looping.service", "crash") and
        unit_value(samples, "cerberus_unit_restarts_total", "looping.service") ==
        rows("looping.service", "restart")) else None


samples, text = wait_for(counters_match, 10, "the per-unit counters to equal the stored rows")
crashes = rows("looping.service", "crash")
restarts = rows("looping.service", "restart")
check(crashes >= 3 and restarts == um.n_restarts("looping.service"),
      f"the loop crashed ({crashes}) and restarted as systemd counts it ({restarts})")
check(rows(HEALTHY, "crash") == 0 and rows(HEALTHY, "restart") == 0 and rows(HEALTHY, "start"),
      "the healthy unit started and never crashed")
check(unit_value(samples, "cerberus_unit_crashes_total", HEALTHY) == 0 and
      unit_value(samples, "cerberus_unit_restarts_total", HEALTHY) == 0,
      f"the healthy unit is listed with no crash and no restart:\n{text}")
check('unit="healthy\\\\x2done.service"' in text, f"the backslash is escaped:\n{text}")
for (name, labels), v in samples.items():
    if name.startswith("cerberus_unit_") and name != "cerberus_unit_series_dropped_total":
        check(dict(labels).get("host") == host and
              (v == 0 or dict(labels)["unit"] == "looping.service"),
              f"only the loop counts anything, every series names the host: {name} {labels}")
check(value(samples, "cerberus_unit_series_dropped_total") == 0, "no unit left out")
for family, kind in (("cerberus_unit_restarts_total", "counter"),
                     ("cerberus_unit_crashes_total", "counter"),
                     ("cerberus_unit_series_dropped_total", "counter"),
                     ("cerberus_rules_reload_success", "gauge"),
                     ("cerberus_rules_last_reload_timestamp_seconds", "gauge"),
                     ("process_cpu_seconds_total", "counter"),
                     ("process_resident_memory_bytes", "gauge"),
                     ("process_start_time_seconds", "gauge")):
    check(f"# TYPE {family} {kind}\n" in text and f"# HELP {family} " in text,
          f"{family} has HELP and TYPE {kind} lines")

# The process series describe the daemon's process, as /proc and ps see it.
pid = cerberus.proc.pid
start_time = value(samples, "process_start_time_seconds")
check(start_time is not None and started - 2 <= start_time <= ready + 1,
      f"process_start_time_seconds is when the daemon started: {start_time}, launched {started}")
rss = value(samples, "process_resident_memory_bytes")
status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
vm_rss = int(status["VmRSS"].split()[0]) * 1024
check(rss is not None and 0.5 * vm_rss <= rss <= 2 * vm_rss,
      f"resident memory {rss} is close to VmRSS {vm_rss}")
check(value(samples, "process_virtual_memory_bytes") >= rss, "virtual memory >= resident")
open_fds = value(samples, "process_open_fds")
check(open_fds is not None and 3 <= open_fds <= len(os.listdir(f"/proc/{pid}/fd")) + 2,
      f"open fds {open_fds}")
soft = int(open(f"/proc/{pid}/limits").read().split("Max open files")[1].split()[0])
check(value(samples, "process_max_fds") == soft, f"max fds is the soft limit {soft}")
check(value(samples, "process_cpu_seconds_total") is not None, "cpu seconds are listed")

out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
check(out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(),
      f"promtool check metrics accepts the scrape: {out.returncode} {out.stdout} {out.stderr}")
# promtool is not lenient: a counter without its suffix is refused.
out = subprocess.run([PROMTOOL, "check", "metrics"], capture_output=True, text=True,
                     input="# HELP x_seconds a\n# TYPE x_seconds counter\nx_seconds 1\n")
check(out.returncode != 0, "promtool check metrics refuses a counter without _total")

# A refused reload: 0, and the time of the last accepted load stays.
json.dump({"rules": [{"name": "y", "windw": "1m"}]}, open(rules_path, "w"))
cerberus.proc.send_signal(signal.SIGHUP)
samples = wait_for(lambda: (lambda s: s if value(s, "cerberus_rules_reload_success") == 0
                            else None)(scrape()[0]), 10, "reload_success to be 0")
check("reload refused" in cerberus.output(), "the refused reload is logged")
check(value(samples, "cerberus_rules_last_reload_timestamp_seconds") == first_load,
      "a refused reload keeps the time of the last accepted one")

# An accepted reload: 1 again, and the time moves.
time.sleep(0.01)  # the timestamp has millisecond resolution
json.dump(good_rules, open(rules_path, "w"))
before = time.time()
cerberus.proc.send_signal(signal.SIGHUP)
samples = wait_for(lambda: (lambda s: s if value(s, "cerberus_rules_reload_success") == 1
                            else None)(scrape()[0]), 10, "reload_success to be 1 again")
reloaded = value(samples, "cerberus_rules_last_reload_timestamp_seconds")
check(reloaded > first_load and before - 0.01 <= reloaded <= time.time() + 0.01,
      f"the accepted reload's time: {reloaded}, first load {first_load}, sent at {before}")
check(cerberus.alive(), "cerberus keeps running through both reloads")
check(cerberus.stop() == 0, "cerberus stops cleanly")
print("ok")
