"""RSS of `cerberus run` with 500 units tracked (goal < 12 MB), and its wakeups while idle
(goal: none without a watchdog; nothing polls). Needs root: starts a real user manager."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Cerberus, UserManager, check, tempdir, wait_for  # noqa: E402

if os.geteuid() != 0:
    print("footprint: skipped, needs root to start a systemd user manager")
    sys.exit(0)

UNITS = 500
um = UserManager("footprint")
um.add_units({"idle@.service": "[Service]\nExecStart=/bin/sleep infinity\n"})
units = [f"idle@{i}.service" for i in range(UNITS)]
for i in range(0, UNITS, 100):
    um.systemctl("start", *units[i:i + 100])
db = os.path.join(tempdir("footprint"), "history.db")
cerberus = Cerberus(db, um.bus).start()
check("units tracked" in cerberus.output(), "cerberus did not report its units")


def status(field):
    with open(f"/proc/{cerberus.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def switches():
    return status("voluntary_ctxt_switches") + status("nonvoluntary_ctxt_switches")


# Let the start-up work settle, then count wakeups over an idle window.
time.sleep(1)
before = switches()
IDLE_SECONDS = 5
time.sleep(IDLE_SECONDS)
wakeups = switches() - before
rss_kb = status("VmRSS")
tracked = [l for l in cerberus.output().splitlines() if "units tracked" in l][-1]
print(f"footprint: {tracked.split(': ', 1)[1]}")
print(f"footprint: RSS {rss_kb / 1024:.1f} MB with {UNITS} units loaded; "
      f"ratio {rss_kb / 1024 / 12:.2f} of the 12 MB limit: "
      f"{'met' if rss_kb < 12 * 1024 else 'NOT met'}")
print(f"footprint: {wakeups} wakeups in {IDLE_SECONDS} s idle (no watchdog configured; goal 0): "
      f"{'met' if wakeups == 0 else 'NOT met'}")
cerberus.stop()
