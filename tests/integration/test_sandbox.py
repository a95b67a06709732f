"""cerberus as shipped (examples/cerberus.service: the system user cerberus, no capability,
the sandbox) under a real systemd PID 1 in a container (tests/harness/sysmgr.sh), doing
everything it does: it runs unprivileged, records a crash-looping system unit, quotes the
crashed run's journal lines (through the systemd-journal group) in the alert it delivers to
a webhook on the container's 127.0.0.1, serves --metrics, takes root's `cerberus emit` and
`systemctl reload`. Its own log is journal-native: `journalctl -p err` picks only errors,
and `journalctl MESSAGE_ID=` lists each alert change with its unit and rule. Without the
group it says so once at start-up."""
import json
import os
import time
import urllib.request

from harness import check, tempdir
from sink import Sink
from sysmgr import SystemManager, require_container, wait_until

require_container()

# The ids documented in docs/OPERATIONS.md (src/notify/journal.hpp).
MESSAGE_ID_FIRE = "f8230600c1ff4f91ba27534e3f327682"
PORT = 18080  # the container's own loopback: nothing else listens there

units = {
    # Each run says which run it is, then crashes: the alert must quote these lines.
    "crash.service": "[Unit]\nDescription=crashes\nStartLimitIntervalSec=0\n[Service]\n"
                     "ExecStart=/bin/sh -c 'echo \"crash.service run is about to fail\"; "
                     "sleep 0.2; exit 3'\nRestart=always\nRestartSec=200ms\n",
}


def rules(extra_rules=()):
    return {
        "receivers": {
            "hook": {"type": "webhook", "url": f"http://127.0.0.1:{PORT}/hook"},
            # Answers 400: a refusal for good, which cerberus logs as an error.
            "refuses": {"type": "webhook", "url": f"http://127.0.0.1:{PORT}/refuses"},
        },
        "rules": [{
            "name": "crashloop", "units": ["crash.service"],
            "when": {"event": "crash", "count": 3, "within": "5m"},
            "resolve_when_up_for": "10m", "severity": "critical",
            "notify": ["hook", "refuses"], "summary": "{unit} crashed {count} times",
        }] + list(extra_rules),
    }


rules_path = os.path.join(tempdir("sandbox-rules"), "rules.json")
with open(rules_path, "w") as f:
    json.dump(rules(), f)
sm = SystemManager("sandbox", units, rules_path)

with sm.network():
    sink = Sink({"/hook": ["200"], "/refuses": ["400"]}, port=PORT)

# Type=notify: returns once READY=1 was sent.
started = sm.run("systemctl", "start", "cerberus.service", check=False)
check(started.returncode == 0, f"cerberus.service did not start: {started.stderr.strip()}\n"
      f"{sm.run('journalctl', '--no-pager', '-n', '40', check=False).stdout}")
pid = sm.show("cerberus.service", "MainPID")["MainPID"]
check(pid not in ("", "0") and sm.show("cerberus.service", "ActiveState")["ActiveState"] == "active",
      f"cerberus.service is not running: {sm.journal('cerberus.service')}")
invocation = sm.show("cerberus.service", "InvocationID")["InvocationID"]

# --- unprivileged ----------------------------------------------------------------------
status = dict(line.split(":", 1) for line in
              sm.run("cat", f"/proc/{pid}/status").stdout.splitlines() if ":" in line)
uids = status["Uid"].split()
gids = status["Groups"].split()
journal_gid = sm.run("getent", "group", "systemd-journal").stdout.split(":")[2]
check("0" not in uids, f"cerberus runs as root: Uid {uids}")
check(int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
      and int(status["CapBnd"], 16) == 0,
      f"cerberus holds capabilities: CapEff {status['CapEff'].strip()}, CapPrm "
      f"{status['CapPrm'].strip()}, CapBnd {status['CapBnd'].strip()}")
check(journal_gid in gids, f"cerberus is not in systemd-journal ({journal_gid}): groups {gids}")
sock = sm.run("stat", "-c", "%u %a", "/run/cerberus/emit.sock").stdout.split()
check(sock == [uids[0], "600"], f"the emit socket is {sock}, not owned by cerberus with mode 600")
print(f"ok: cerberus runs as uid {uids[0]}, no capability, groups {gids}; "
      f"emit socket {sock}")


def own_log(*matches):
    """This invocation's entries of cerberus.service, as (PRIORITY, MESSAGE)."""
    return [(int(e.get("PRIORITY", 6)), e.get("MESSAGE", "")) for e in sm.journal_entries(
        f"_SYSTEMD_INVOCATION_ID={invocation}", *matches)]


wait_until(lambda: any("following the system bus" in m for _, m in own_log()), 15,
           "the start-up line in the journal")
check(not any("cannot read the system journal" in m for _, m in own_log()),
      f"cerberus, in systemd-journal, says it cannot read the journal: {own_log()}")

# --- a crash-looping system unit: recorded, alerted, journal quoted --------------------
sm.systemctl("start", "crash.service")
wait_until(lambda: sink.received("/hook", status="firing"), 60, "the firing alert at the webhook")
alert = json.loads(sink.received("/hook", status="firing")[0]["body"])
quoted = [line for line in alert.get("journal", []) if "is about to fail" in line]
check(quoted, f"the alert quotes none of the crashed run's lines: {alert}\n" + sm.run(
    "setpriv", "--reuid=cerberus", "--regid=cerberus", "--init-groups", "journalctl", "-n", "5",
    "-o", "verbose", "-u", "crash.service", check=False).stdout + sm.journal("cerberus.service"))
crashes = sm.sql("SELECT count(*) AS n FROM transitions WHERE unit = 'crash.service' "
                 "AND event = 'crash'")[0]["n"]
check(crashes >= 3, f"{crashes} crash rows for crash.service in the history, want >= 3")
print(f"ok: crash.service: {crashes} crashes recorded, alert delivered quoting '{quoted[-1]}'")

# --- --metrics on the container's 127.0.0.1 --------------------------------------------
with sm.network():
    metrics = urllib.request.urlopen("http://127.0.0.1:9469/metrics", timeout=5).read().decode()
firing = [line for line in metrics.splitlines()
          if line.startswith('cerberus_alerts_firing{rule="crashloop"}')]
check(firing == ['cerberus_alerts_firing{rule="crashloop"} 1'],
      f"/metrics does not show the firing alert: {firing or metrics[:500]}")
print("ok: /metrics answers on 127.0.0.1:9469")

# --- root's `cerberus emit` reaches the unprivileged daemon over /run/cerberus/emit.sock ---
emitted = sm.run("/usr/local/bin/cerberus", "emit", "--unit", "nightly-job", "--event", "started",
                 check=False)
check(emitted.returncode == 0, f"cerberus emit failed ({emitted.returncode}): {emitted.stderr}")
rows = sm.sql("SELECT event, source FROM transitions WHERE unit = 'nightly-job'")
check(rows and all(r["source"] == "emit" for r in rows),
      f"the emitted event is stored as {rows}")
print(f"ok: cerberus emit as root: {rows}")

# --- journal-native: priorities and alert entries --------------------------------------
wait_until(lambda: any("was refused" in m for _, m in own_log()), 30,
           "the refused delivery in the journal")
errors = own_log("-p", "err")
check(errors and all(p <= 3 for p, _ in errors),
      f"journalctl -p err shows entries above err: {errors}")
check(any("receiver 'refuses'" in m and "was refused" in m for _, m in errors),
      f"journalctl -p err misses the refused delivery: {errors}")
check(not any("following the system bus" in m for _, m in errors),
      f"journalctl -p err shows the start-up line: {errors}")
everything = own_log()
check(any(p == 6 and "following the system bus" in m for p, m in everything),
      f"the start-up line is not logged at info: {everything}")
check(not any(m.startswith("<") for _, m in everything),
      f"a priority prefix reached the message text: {everything}")

fired = sm.journal_entries(f"MESSAGE_ID={MESSAGE_ID_FIRE}")
check(len(fired) == 1, f"journalctl MESSAGE_ID={MESSAGE_ID_FIRE} lists {len(fired)} entries")
entry = fired[0]
check(entry.get("UNIT") == "crash.service" and entry.get("CERBERUS_RULE") == "crashloop"
      and entry.get("CERBERUS_ALERT_ID", "").startswith("crashloop/crash.service/")
      and entry.get("PRIORITY") == "3" and entry.get("_SYSTEMD_UNIT") == "cerberus.service",
      f"the fire entry lacks its fields: { {k: v for k, v in entry.items() if not k.startswith('__')} }")
print(f"ok: journalctl -p err: {len(errors)} entries, all errors; MESSAGE_ID= fire entry "
      f"for {entry['UNIT']} rule {entry['CERBERUS_RULE']} id {entry['CERBERUS_ALERT_ID']}")

# --- systemctl reload applies a rule change --------------------------------------------
with open(rules_path, "w") as f:  # in place: the container sees the same file
    json.dump(rules([{"name": "any-crash", "units": ["other.service"],
                      "when": {"event": "crash", "count": 1}, "severity": "warning",
                      "notify": ["hook"]}]), f)
reloaded = sm.run("systemctl", "reload", "cerberus.service", check=False)  # waits for READY=1
check(reloaded.returncode == 0, f"systemctl reload cerberus failed: {reloaded.stderr.strip()}\n"
      f"{sm.journal('cerberus.service')}")
wait_until(lambda: any("rules reloaded: 2 rules" in m for _, m in own_log()), 15,
           "the reload in the journal")
check(sm.show("cerberus.service", "MainPID")["MainPID"] == pid,
      "cerberus.service was restarted instead of reloaded")
print("ok: systemctl reload applied the new rules")

# --- without the systemd-journal group: said once at start-up --------------------------
sm.run("mkdir", "-p", "/run/systemd/system/cerberus.service.d")
sm.run("sh", "-c", "printf '[Service]\\nSupplementaryGroups=\\n' > "
       "/run/systemd/system/cerberus.service.d/no-journal.conf")
sm.systemctl("daemon-reload")
sm.systemctl("restart", "cerberus.service")
invocation = sm.show("cerberus.service", "InvocationID")["InvocationID"]
wait_until(lambda: any("following the system bus" in m for _, m in own_log()), 15,
           "the start-up line of the run without the group")
said = [(p, m) for p, m in own_log() if "cannot read the system journal" in m]
check(len(said) == 1 and said[0][0] == 4 and "SupplementaryGroups=systemd-journal" in said[0][1],
      f"without the group, cerberus said {said} (want one warning naming the fix)")
print(f"ok: without the group: '{said[0][1]}'")
sink.stop()
