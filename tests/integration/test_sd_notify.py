"""systemd's notify protocol, read from a datagram socket this test owns, as a service
manager would: READY=1 once the units are read, a STATUS= naming units tracked and alerts
firing that follows a new crash loop, WATCHDOG=1 from the loop at half of WATCHDOG_USEC
(never a gap that would get cerberus killed), RELOADING=1 then READY=1 around a SIGHUP,
STOPPING=1 then exit 0 on SIGTERM. The shipped examples/cerberus.service passes
`systemd-analyze verify` without a warning and `systemd-analyze security` rates it 1.5 or
lower."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import (CERBERUS, SOURCE_ROOT, UserManager, at_exit, check, crashloop_unit,
                     require_root, tempdir, wait_for)

WATCHDOG_USEC = 200000

require_root()
um = UserManager("sdnotify")
work = tempdir("sdnotify")
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["looping.service"],
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "notify": ["log"]}]}, open(rules_path, "w"))
um.add_units({"looping.service": crashloop_unit(exit_status=3)})
os.chown(work, um.uid, um.uid)

notify_path = os.path.join(work, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(notify_path)
at_exit(sock.close)
messages = []  # (CLOCK_MONOTONIC seconds, one assignment such as "READY=1")


def receive(timeout):
    """Reads what arrives within `timeout` seconds into `messages`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return
        now = time.monotonic()
        messages.extend((now, line) for line in data.decode().split("\n") if line)


def arrived(predicate, timeout, what, seen=None):
    """Waits for a message matching `predicate` among those from index `seen` on (default:
    the ones still to come); returns its time, its text and the index after it."""
    seen = len(messages) if seen is None else seen
    deadline = time.monotonic() + timeout
    while True:
        for i in range(seen, len(messages)):
            at, line = messages[i]
            if predicate(line):
                return at, line, i + 1
        seen = len(messages)
        if time.monotonic() > deadline:
            tail = [line for _, line in messages[-10:]]
            check(False, f"timed out after {timeout}s waiting for {what}; last: {tail}")
        receive(0.1)


log = open(os.path.join(work, "cerberus.log"), "w")
env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
proc = subprocess.Popen([CERBERUS, "run", "--db", db, "--bus", um.bus, "--rules", rules_path],
                        env=env, stdout=log, stderr=log)
at_exit(lambda: proc.poll() is None and (proc.kill(), proc.wait()))

ready_at, _, _ = arrived(lambda line: line == "READY=1", 20, "READY=1")
STATUS = re.compile(r"STATUS=Tracking (\d+) units?, (\d+) alerts? firing")
_, status, _ = arrived(STATUS.match, 5, "a STATUS= with units and alerts", seen=0)
units, firing = map(int, STATUS.match(status).groups())
check(units > 0 and firing == 0, f"the status counts units and alerts: {status}")

# The watchdog: pings from the loop every WATCHDOG_USEC / 2, over a quiet second.
receive(1.0)
pings = [at for at, line in messages if line == "WATCHDOG=1" and at > ready_at]
check(len(pings) >= 5, f"at least 5 WATCHDOG=1 in a second at WATCHDOG_USEC=200ms: {len(pings)}")
gaps = [b - a for a, b in zip(pings, pings[1:])]
check(max(gaps) < WATCHDOG_USEC / 1e6,
      f"no gap between pings reaches WATCHDOG_USEC: largest {max(gaps) * 1000:.0f} ms")

# STATUS= follows what changes: a crash loop fires the rule.
um.start("looping.service")
_, status, _ = arrived(lambda line: STATUS.match(line) and line.endswith(", 1 alert firing"), 20,
                       "a STATUS= with the alert firing")
check(int(STATUS.match(status).group(1)) >= units, f"the units are still counted: {status}")

# SIGHUP: RELOADING=1, then READY=1 once the rules are in force.
proc.send_signal(signal.SIGHUP)
_, _, after_reloading = arrived(lambda line: line == "RELOADING=1", 5, "RELOADING=1")
arrived(lambda line: line == "READY=1", 5, "READY=1 after RELOADING=1", seen=after_reloading)

proc.send_signal(signal.SIGTERM)
arrived(lambda line: line == "STOPPING=1", 5, "STOPPING=1")
code = proc.wait(15)
check(code == 0, f"cerberus exits 0 on SIGTERM, got {code}")

# The example unit: every directive known to this systemd, the command path existing.
unit_dir = tempdir("unit")
unit_path = os.path.join(unit_dir, "cerberus.service")
text = open(os.path.join(SOURCE_ROOT, "examples", "cerberus.service")).read()
check("ExecStart=/usr/local/bin/cerberus run" in text, "the example runs the installed binary")
open(unit_path, "w").write(text.replace("/usr/local/bin/cerberus", os.path.abspath(CERBERUS)))
analyze = shutil.which("systemd-analyze")
check(analyze, "systemd-analyze is installed (Debian package systemd)")
out = subprocess.run([analyze, "verify", unit_path], capture_output=True, text=True)
# Documentation= names the manual pages the package installs; from a source tree they are
# not on the man path, which is the only thing verify may say.
unfound = re.compile(r"cerberus\.service: Command 'man cerberus(-rules)?\([15]\)' failed with code 16")
lines = out.stderr.splitlines()
out.stderr = "\n".join(line for line in lines if not unfound.fullmatch(line))
man_only = out.returncode == 1 and len(lines) > len(out.stderr.splitlines())
check((out.returncode == 0 or man_only) and out.stderr.strip() == "" and out.stdout.strip() == "",
      f"systemd-analyze verify is silent about examples/cerberus.service: "
      f"{out.returncode} {out.stdout} {out.stderr}")
for directive in ("Type=notify", "WatchdogSec=", "Restart=always", "StateDirectory=cerberus",
                  "ExecReload=/bin/sh -c 'kill -HUP $MAINPID'", "ProtectSystem=strict",
                  "User=cerberus", "SupplementaryGroups=systemd-journal",
                  "CapabilityBoundingSet=\n", "AmbientCapabilities=\n",
                  "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
    check(f"\n{directive}" in text, f"the example unit sets {directive}")
# The sandbox's exposure as systemd rates it (docs/OPERATIONS.md): 1.5 at most.
out = subprocess.run([analyze, "security", "--offline=true", unit_path], capture_output=True,
                     text=True)
score = re.search(r"Overall exposure level for cerberus\.service: ([0-9.]+)", out.stdout)
check(score and float(score.group(1)) <= 1.5,
      f"systemd-analyze security rates examples/cerberus.service above 1.5: "
      f"{score.group(1) if score else out.stdout[-500:] + out.stderr}")
print(f"systemd-analyze security --offline=true: {score.group(1)}")
print("ok")
