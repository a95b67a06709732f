"""`make demo` (tools/demo.sh) tells its story and no lie: the crash loop's alert reaches the
sink with a verified signature, the history is shown, the fix (a unit edit and a
daemon-reload) resolves the alert, no alert, row or resolve appears that the scenario did not
cause, the demo exits 0 in under a minute and leaves nothing running but its kept history
and report, whose paths it prints with the commands to try next."""
import importlib.util
import os
import re
import signal
import subprocess
import time

from harness import CERBERUS, SOURCE_ROOT, check, db_rows, fail, require_root, tempdir

DEMO = os.path.join(SOURCE_ROOT, "tools", "demo.sh")
DEMO_USER = "cerberus-demo"
TIME_LIMIT = 60


def load_sink():
    spec = importlib.util.spec_from_file_location(
        "demo_sink", os.path.join(SOURCE_ROOT, "tools", "demo_sink.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sink_verifier_tells_good_from_bad():
    """"signature verified" means something only if a bad signature is told apart: the
    Standard Webhooks test vector verifies, the same request with one byte changed does not."""
    verify = load_sink().verify
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    ok, why = verify(secret, headers, b'{"test": 2432232314}', 1614265330)
    check(ok, f"the Standard Webhooks test vector does not verify: {why}")
    ok, _ = verify(secret, headers, b'{"test": 2432232315}', 1614265330)
    check(not ok, "a tampered body verifies")
    ok, _ = verify(secret, headers, b'{"test": 2432232314}', 1614265330 + 3600)
    check(not ok, "a signature an hour old verifies")


def run_demo(out_dir):
    started = time.monotonic()
    proc = subprocess.Popen(["bash", DEMO, CERBERUS, out_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the demo's trap stops what it started.
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        fail(f"the demo did not finish within {TIME_LIMIT} s:\n{out}")
    return proc.returncode, out, time.monotonic() - started


def section(out, header_start):
    """The demo's output under the '== ' header that starts with `header_start`."""
    for part in out.split("\n== "):
        if part.startswith(header_start):
            return part
    fail(f"the demo printed no section '{header_start}':\n{out}")


def pid_after(out, pattern):
    found = re.search(pattern, out)
    check(found, f"the demo did not print /{pattern}/:\n{out}")
    return int(found.group(1))


def running(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


require_root()
sink_verifier_tells_good_from_bad()
out_dir = os.path.join(tempdir("demo-out"), "kept")
status, out, seconds = run_demo(out_dir)
check(status == 0, f"the demo exited with {status}:\n{out}")

alert = section(out, "Waiting for the crash loop's alert")
for needle in ('"status": "firing"', '"rule": "crashloop"', '"unit": "demo-crashloop.service"',
               '"exit_status": 3'):
    check(needle in alert, f"the crash loop's alert as received lacks {needle}:\n{alert}")
check("}\nsignature verified\n" in alert,
      f"the crash loop's alert was not shown as 'signature verified':\n{alert}")
check("firing respawn demo-respawn.service" in out and
      "respawned 5 times in 5min (signature verified)" in out,
      f"the respawn loop's alert was not shown as received and verified:\n{out}")

history = section(out, "What cerberus recorded")
crashes = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (?:[+-]\d\d:\d\d|UTC)\s+"
                     r"demo-crashloop\.service\s+crash\s+failed/failed\s+exit-code\s+exited 3",
                     history, re.M)
check(crashes, f"the history shows no crash of demo-crashloop.service:\n{history}")
replay = section(out, "Backtest")
check(re.search(r"^crashloop\s+1\s+1\s", replay, re.M),
      f"the replay summary does not show crashloop fired once for one unit:\n{replay}")

resolve = section(out, "Waiting for the resolve")
for needle in ('"status": "resolved"', '"rule": "crashloop"', '"unit": "demo-crashloop.service"'):
    check(needle in resolve, f"the resolve as received lacks {needle}:\n{resolve}")
check("signature verified" in resolve, f"the resolve's signature was not verified:\n{resolve}")
final = section(out, "All alerts now")
check(re.search(r"^crashloop\s+demo-crashloop\.service\s+resolved\s", final, re.M),
      f"cerberus alerts does not show the crash loop resolved:\n{final}")

# Nothing but what the scenario caused: the crash loop fired and resolved, the respawn loop
# fired; no other alert (a crashloop for the unit that only exits 0, a give-up for a unit
# whose start limit is 1000), no other resolve, no failure rows for the healthy unit.
alerts_now = set(re.findall(r"^(\S+)\s+(demo-\S+\.service)\s+(firing|resolved)\s", final, re.M))
check(alerts_now == {("crashloop", "demo-crashloop.service", "resolved"),
                     ("respawn", "demo-respawn.service", "firing")},
      f"cerberus alerts shows alerts the demo did not cause: {sorted(alerts_now)}:\n{final}")
told = re.findall(r"alert (\w+): rule '([^']+)' unit '([^']+)'", out)
check(sorted(set(told)) == [("firing", "crashloop", "demo-crashloop.service"),
                            ("firing", "respawn", "demo-respawn.service"),
                            ("resolved", "crashloop", "demo-crashloop.service")],
      f"the log receiver told changes the demo did not cause: {sorted(set(told))}")
check(len(told) == 3, f"the log receiver told a change twice: {told}")
counts = section(out, "The same history is plain SQLite")
healthy = re.search(r"^demo-healthy\.service\s+(\d+)\s+(\d+)", counts, re.M)
check(healthy and healthy.groups() == ("0", "0"),
      f"demo-healthy.service only runs, yet has restarts or crashes:\n{counts}")
respawn = re.search(r"^demo-respawn\.service\s+(\d+)\s+(\d+)", counts, re.M)
check(respawn and int(respawn.group(1)) >= 5 and respawn.group(2) == "0",
      f"demo-respawn.service exits 0: restarts but no crash expected:\n{counts}")
check(re.search(r"^give-up\s+0\s", replay, re.M),
      f"the replay finds a give-up the demo did not cause:\n{replay}")

# Nothing the demo started is left running.
for name, pattern in (("cerberus", r"cerberus is PID (\d+)"), ("the sink", r"the sink is PID (\d+)"),
                      ("the user manager", r"systemd --user is PID (\d+)")):
    if name == "the user manager" and "systemd --user is PID" not in out:
        continue  # the demo used the invoking user's own manager
    pid = pid_after(out, pattern)
    check(not running(pid), f"{name} (PID {pid}) is still running after the demo")
leftover = subprocess.run(["pgrep", "-u", DEMO_USER, "-a"], capture_output=True, text=True).stdout
check(leftover == "", f"processes of '{DEMO_USER}' are still running: {leftover}")
# What it keeps: the history (the same rows it showed) and the report beside it, with the
# commands to try next naming them.
kept = os.path.join(out_dir, "demo.db")
report = os.path.join(out_dir, "demo-report.html")
check(f"history kept: {kept}" in out and f"report:       {report}" in out,
      f"the demo did not print where it kept the history and the report:\n{out}")
check(db_rows(kept, "SELECT count(*) FROM transitions WHERE unit = 'demo-crashloop.service' "
                    "AND event = 'crash'")[0][0] >= 3,
      "the kept history lacks the crash loop's crashes")
check(db_rows(kept, "SELECT state FROM alerts WHERE rule = 'crashloop'") == [("resolved",)],
      "the kept history lacks the crash loop's resolved alert")
html = open(report, encoding="utf-8").read()
check(html.startswith("<!DOCTYPE html>") and 'data-unit="demo-crashloop.service"' in html and
      'data-kind="alert"' in html, "the demo's report does not draw the crash loop and its alert")
try_next = section(out, "Try next")
for command in ("history --db", "--timeline", "replay --db", "report --db"):
    check(command in try_next and kept in try_next,
          f"the demo does not suggest '{command}' on the kept history:\n{try_next}")
tried = subprocess.run([CERBERUS, "history", "--db", kept, "--timeline"], capture_output=True,
                       text=True)
check(tried.returncode == 0 and "demo-crashloop.service" in tried.stdout,
      f"the suggested history --timeline fails on the kept history: {tried.stderr}")
print(f"ok: the demo told the whole story in {seconds:.1f} s and kept {kept}")
