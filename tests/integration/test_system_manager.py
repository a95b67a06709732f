"""cerberus as a system service under a real systemd PID 1 (a container, tests/harness/
sysmgr.sh), with the shipped unit file and the shipped rules.

(b) First install on a host whose units restarted before: no rows and no alert for the
    past restarts; the next real crash is recorded.
(a) daemon-reload and daemon-reexec with units running, crash-looping, failed (start limit
    hit) and in auto-restart, template instances and a transient unit: afterwards every
    unit's restart rows equal its NRestarts change since cerberus first saw it, units that
    never failed have no crash/restart/fail rows, and crashloop fires only for real loops.
(c) cerberus.service stopped while a respawn loop (exit 0) goes on: at its next start the
    reconcile reads how each unseen run ended from PID 1's journal messages: clean stops,
    each with its InvocationID, the respawn alert and no crashloop page."""
import os
import time

from harness import SOURCE_ROOT, check, crashloop_unit, fail
from sysmgr import SystemManager, require_container, wait_until

require_container()

FLAGS = "/run/cerberus-test"


def flag(unit):
    return f"{FLAGS}/fixed-{unit}"


LOOPS = ["loop.service", "loop@a.service", "loop@b.service", "transient-loop.service"]
units = {
    # Crash-looped 5 times before cerberus was installed, then fixed.
    "past.service": crashloop_unit(fixed=flag("past.service"), description="past restarts"),
    "healthy.service": "[Unit]\nDescription=never fails\n[Service]\nExecStart=/bin/sleep infinity\n",
    "loop.service": crashloop_unit(fixed=flag("loop.service")),
    "loop@.service": crashloop_unit(fixed=f"{FLAGS}/fixed-loop@%i.service"),
    # Gives up after 3 restarts and rests in 'failed' through the reload and re-exec.
    "failed.service": crashloop_unit(burst=3, description="start limit"),
    # (c): its first run waits for `go`, then each exits 0 after 0.1 s, until fixed.
    "respawn.service": "[Unit]\nDescription=respawns\nStartLimitIntervalSec=0\n[Service]\n"
                       f"ExecStart=/bin/sh -c 'test -e {flag('respawn.service')} && exec sleep "
                       f"infinity; while ! test -e {FLAGS}/go; do sleep 0.05; done; sleep 0.1; "
                       "exit 0'\nRestart=always\nRestartSec=200ms\n",
    # One crash, then waits long enough in auto-restart for the reload and the re-exec.
    "autorestart.service": crashloop_unit(fixed=flag("autorestart.service"), restart_sec="15s",
                                          description="auto-restart"),
}
sm = SystemManager("sysmgr", units, os.path.join(SOURCE_ROOT, "rules", "default.json"))
sm.run("mkdir", "-p", FLAGS)


def sub_state(unit):
    return sm.show(unit, "SubState")["SubState"]


def runs_for_good(unit):
    """Running for half a second: a broken run of these units exits at once, so a poll
    that lands inside one is not taken for a fixed unit. The container shares the host's
    CLOCK_MONOTONIC."""
    props = sm.show(unit, "ActiveState", "SubState", "Job", "ExecMainStartTimestampMonotonic")
    started_usec = int(props["ExecMainStartTimestampMonotonic"] or 0)
    return (props["ActiveState"] == "active" and props["SubState"] == "running"
            and props["Job"] == "" and started_usec > 0
            and time.monotonic() * 1e6 - started_usec > 500_000)


def rows(unit, *events):
    quoted = ",".join(f"'{e}'" for e in events)
    return sm.sql(f"SELECT event, n_restarts FROM transitions WHERE unit = '{unit}' "
                  f"AND event IN ({quoted}) ORDER BY id")


def restart_rows(unit):
    return [r["n_restarts"] for r in rows(unit, "restart")]


def alerts():
    return sm.sql("SELECT rule, unit, state, count FROM alerts ORDER BY id")


# --- (b) first install on a host whose units restarted before --------------------------
sm.systemctl("start", "past.service")
wait_until(lambda: sm.n_restarts("past.service") >= 5, 60, "past.service to restart 5 times")
sm.touch(flag("past.service"))
wait_until(lambda: runs_for_good("past.service"), 30, "past.service to run once fixed")
past_before = sm.n_restarts("past.service")
check(sm.run("test", "-e", "/var/lib/cerberus", check=False).returncode != 0,
      "the container's /var/lib/cerberus exists before cerberus was ever started")

# Baselines: what each loaded service had restarted when cerberus first saw it. Units
# loaded later start at 0 (each one's first load is after this point).
sm.systemctl("start", "cerberus.service")  # Type=notify: returns once READY=1 was sent
baseline = sm.services()
main_pid = sm.show("cerberus.service", "MainPID")["MainPID"]
check(sm.show("cerberus.service", "ActiveState")["ActiveState"] == "active",
      f"cerberus.service is not active: {sm.journal('cerberus.service')}")
check(baseline.get("past.service") == past_before,
      f"past.service restarted while cerberus started: {baseline.get('past.service')} "
      f"vs {past_before}")

past_rows = rows("past.service", "crash", "restart", "fail", "give_up")
check(past_rows == [], f"first install: past.service's {past_before} restarts before cerberus "
      f"existed were stored as history: {past_rows}")
check(alerts() == [], f"first install: alerts fired for the past: {alerts()}")

# The next real crash is history: one crash, one restart numbered after the baseline.
sm.systemctl("kill", "--signal=SIGKILL", "past.service")
wait_until(lambda: sm.n_restarts("past.service") == past_before + 1 and
           runs_for_good("past.service"), 30, "past.service to be restarted after its crash")
wait_until(lambda: restart_rows("past.service") == [past_before + 1], 15,
           f"one restart row numbered {past_before + 1} for past.service "
           f"(have {restart_rows('past.service')})")
crashes = rows("past.service", "crash")
check(len(crashes) == 1, f"past.service's one crash after install is stored as {crashes}")
check(alerts() == [], f"one crash raised alerts: {alerts()}")
print(f"ok (b): {past_before} restarts before install: no rows, no alert; the next crash: "
      f"1 crash row, restart row numbered {past_before + 1}")

# --- (a) daemon-reload and daemon-reexec with units in every state ---------------------
sm.systemctl("start", "healthy.service", "loop.service", "loop@a.service", "loop@b.service",
             "failed.service", "autorestart.service")
sm.run("systemd-run", "--unit=transient-loop.service", "-p", "Restart=always",
       "-p", "RestartSec=100ms", "-p", "StartLimitIntervalSec=0", "/bin/sh", "-c",
       # No ';': systemd 252 reads it back as '\;' from the transient unit file after a
       # daemon-reload, and the command then fails for another reason.
       f"test -e {flag('transient-loop.service')} && exec sleep infinity || exit 3")
wait_until(lambda: sub_state("failed.service") == "failed", 60, "failed.service to give up")
wait_until(lambda: sub_state("autorestart.service") == "auto-restart", 30,
           "autorestart.service to wait in auto-restart")
for unit in LOOPS:
    wait_until(lambda: sm.n_restarts(unit) >= 5, 60, f"{unit} to restart 5 times")
check(runs_for_good("healthy.service"), "healthy.service is not running")

before = sm.services()
started = time.monotonic()
sm.systemctl("daemon-reload")
sm.systemctl("daemon-reexec")
wait_until(lambda: sm.run("systemctl", "is-system-running", check=False).stdout.strip()
           in ("running", "degraded"), 30, "the manager to be back after daemon-reexec")
print(f"daemon-reload and daemon-reexec took {time.monotonic() - started:.1f}s")
check(sub_state("autorestart.service") == "auto-restart" and
      sm.n_restarts("autorestart.service") == 0,
      "autorestart.service left auto-restart before the reload and re-exec were done; "
      "the test did not cover a unit in auto-restart")
check(sub_state("failed.service") == "failed", "failed.service left 'failed' on its own")
after = sm.services()
for unit, n in before.items():
    check(after.get(unit, n) >= n,
          f"{unit}: NRestarts went from {n} to {after.get(unit)} across reload and re-exec")

# Fix everything, let the last restart happen, then compare with systemd's own figures.
for unit in LOOPS + ["autorestart.service"]:
    sm.touch(flag(unit))
for unit in LOOPS + ["autorestart.service", "healthy.service", "past.service"]:
    wait_until(lambda: runs_for_good(unit), 60, f"{unit} to run for good once fixed")
check(sm.show("cerberus.service", "MainPID")["MainPID"] == main_pid and
      sm.n_restarts("cerberus.service") == 0,
      f"cerberus.service was restarted during the test: {sm.journal('cerberus.service')}")

final = sm.services()
expected = {unit: n - baseline.get(unit, 0) for unit, n in final.items()}


def mismatches():
    """{unit: (restart rows, NRestarts change)} where they differ; cerberus's own unit is
    not followed."""
    counts = {r["unit"]: r["n"] for r in sm.sql(
        "SELECT unit, count(*) AS n FROM transitions WHERE event = 'restart' GROUP BY unit")}
    units = (set(counts) | set(expected)) - {"cerberus.service"}
    return {unit: (counts.get(unit, 0), expected.get(unit, 0)) for unit in units
            if counts.get(unit, 0) != expected.get(unit, 0)}


def by_source(unit):
    return ", ".join(f"{r['n']} {r['source']}" for r in sm.sql(
        "SELECT source, count(*) AS n FROM transitions WHERE event = 'restart' "
        f"AND unit = '{unit}' GROUP BY source"))


def repeated(unit):
    """The restart numbers stored more than once, as ranges: where the history repeats."""
    numbers = restart_rows(unit)
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    ranges = []
    for n in twice:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges) or "none"


# A bounded wait for cerberus to catch up; then every unit is judged at once.
deadline = time.monotonic() + 20
while (wrong := mismatches()) and time.monotonic() < deadline:
    time.sleep(0.2)

# Units that failed while watched; every other service must have no failure rows.
failed_units = {"failed.service", "autorestart.service", "past.service"} | set(LOOPS)
noisy = {r["unit"]: r["n"] for r in sm.sql(
    "SELECT unit, count(*) AS n FROM transitions WHERE event IN "
    "('crash', 'restart', 'fail', 'give_up') GROUP BY unit")
    if r["unit"] not in failed_units}
# Only the loops (and the unit that gave up) may page; past.service and
# autorestart.service crashed once each.
looping = set(LOOPS) | {"failed.service"}
false_pages = [a for a in alerts() if a["unit"] not in looping]

report = [f"{unit}: {have} restart rows ({by_source(unit) or 'none'}) for an NRestarts change "
          f"of {want} (NRestarts {before.get(unit, '-')} just before the reload; numbers "
          f"stored twice: {repeated(unit)})"
          for unit, (have, want) in sorted(wrong.items())]
report += [f"{unit} never failed but has {n} crash/restart/fail/give_up rows"
           for unit, n in sorted(noisy.items())]
report += [f"{a['rule']} fired for {a['unit']} (count {a['count']}, {a['state']}), "
           "which is no loop" for a in false_pages]
if report:
    fail("after daemon-reload and daemon-reexec:\n  " + "\n  ".join(report))
print(f"ok (a): {len(expected)} services after reload and re-exec: restart rows equal "
      f"NRestarts changes ({', '.join(f'{u} {expected[u]}' for u in LOOPS)}), "
      "no failure rows for units that never failed, alerts only for loops")

# --- (c) a respawn loop while cerberus.service is stopped ----------------------------------
sm.systemctl("start", "respawn.service")
wait_until(lambda: rows("respawn.service", "start"), 15, "respawn.service's start stored")
sm.systemctl("stop", "cerberus.service")
seen = sm.n_restarts("respawn.service")
sm.touch(f"{FLAGS}/go")
wait_until(lambda: sm.n_restarts("respawn.service") >= seen + 6, 30,
           "six respawns while cerberus is stopped")
sm.touch(flag("respawn.service"))
wait_until(lambda: runs_for_good("respawn.service"), 30, "respawn.service to run once fixed")
unseen = sm.n_restarts("respawn.service") - seen
sm.systemctl("start", "cerberus.service")
wait_until(lambda: len(restart_rows("respawn.service")) == seen + unseen, 15,
           f"{seen + unseen} restart rows of respawn.service")
ends = sm.sql("SELECT event, result, invocation_id FROM transitions WHERE unit = "
              "'respawn.service' AND event IN ('stop', 'crash') AND source = 'reconcile'")
check(len(ends) == unseen and all(e["event"] == "stop" and e["result"] == "success" and
                                  len(e["invocation_id"] or "") == 32 for e in ends) and
      len({e["invocation_id"] for e in ends}) == unseen,
      f"{unseen} runs of respawn.service ended unseen, each exit 0; stored: {ends}")
wait_until(lambda: any(a["rule"] == "respawn" and a["unit"] == "respawn.service"
                       for a in alerts()), 15, "the respawn alert of respawn.service")
check(not [a for a in alerts() if a["rule"] == "crashloop" and a["unit"] == "respawn.service"],
      f"a crashloop page for respawn.service, which exits 0: {alerts()}")
print(f"ok (c): {unseen} respawns while cerberus.service was stopped: {unseen} clean stops "
      "named by their InvocationID, the respawn alert, no crashloop page")
