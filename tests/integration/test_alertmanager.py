"""Alertmanager, the real one from Debian, on 127.0.0.1: a crash loop's alert reaches it
(checked with amtool), is posted again every `resend_every` with endsAt ahead to every
listed member (a local sink stands for the second), and resolves with endsAt = now once
the unit is fixed."""
import calendar
import json
import os
import shutil
import subprocess
import time
import urllib.request

from harness import (Cerberus, UserManager, at_exit, check, crashloop_unit, fail, fix,
                     free_port, require_root, tempdir, wait_for)
from sink import Sink

require_root()
if not shutil.which("prometheus-alertmanager"):
    fail("prometheus-alertmanager is not installed (make deps installs it)")
um = UserManager("alertmanager")
work = tempdir("alertmanager")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")

port = free_port()
am_url = f"http://127.0.0.1:{port}"
config = os.path.join(work, "am.yml")
open(config, "w").write('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
am_log = open(os.path.join(work, "am.log"), "w")
am = subprocess.Popen(["prometheus-alertmanager", f"--config.file={config}",
                       f"--storage.path={os.path.join(work, 'am-data')}",
                       f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                      stdout=am_log, stderr=am_log)


def stop_am():
    if am.poll() is None:
        am.terminate()
        am.wait(10)


at_exit(stop_am)


def am_ready():
    try:
        return urllib.request.urlopen(am_url + "/-/ready", timeout=1).status == 200
    except OSError:
        return False


wait_for(am_ready, 20, "Alertmanager ready")

sink = Sink({"/api/v2/alerts": ["200"]})
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"am": {"type": "alertmanager", "resend_every": "1s",
                                "urls": [am_url, sink.url("")]}},
           "rules": [{"name": "crashloop", "units": ["looping.service"],
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "resolve_when_up_for": "2s", "severity": "critical",
                      "labels": {"team": "platform"}, "notify": ["am"]}]},
          open(rules_path, "w"))
um.add_units({"looping.service": crashloop_unit(exit_status=3, fixed=flag, restart_sec="300ms")})
os.chown(work, um.uid, um.uid)

cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
um.start("looping.service")


def ends_at(alert):
    return calendar.timegm(time.strptime(alert["endsAt"][:19], "%Y-%m-%dT%H:%M:%S"))


def amtool(*args):
    out = subprocess.run(["amtool", f"--alertmanager.url={am_url}", "alert", "query", "-o",
                          "json"] + list(args), capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


wait_for(lambda: amtool("alertname=crashloop"), 20, "the alert in Alertmanager")
alert = amtool("alertname=crashloop")[0]
check(alert["labels"] == {"alertname": "crashloop", "unit": "looping.service",
                          "host": alert["labels"]["host"], "severity": "critical",
                          "source": "systemd", "team": "platform"} and
      alert["status"]["state"] == "active",
      f"Alertmanager holds the alert with its labels: {alert}")

# Re-sent every second to every member, with endsAt ahead.
wait_for(lambda: len(sink.received("/api/v2/alerts")) >= 3, 10, "two re-sends at the member")
posts = sink.received("/api/v2/alerts")
for post in posts:
    body = json.loads(post["body"])
    ends = ends_at(body[0])
    check(ends > post["time"] + 1, f"endsAt is ahead of the post: {body[0]['endsAt']}")

fix(flag)
wait_for(lambda: not amtool("alertname=crashloop"), 30, "the alert resolved in Alertmanager")


def resolved_post():
    for post in sink.received("/api/v2/alerts"):
        body = json.loads(post["body"])
        ends = ends_at(body[0])
        if ends <= post["time"] + 1:
            return True
    return False


check(resolved_post(), "the member got the resolve with endsAt = now")
count = len(sink.received("/api/v2/alerts"))
time.sleep(2.5)  # two re-send periods: a resolved alert is no longer posted
check(len(sink.received("/api/v2/alerts")) == count, "no re-send after the resolve")
check(cerberus.stop() == 0, "cerberus stops cleanly")
stop_am()
sink.stop()
print("ok")
