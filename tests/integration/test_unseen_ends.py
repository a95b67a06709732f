"""Runs that ended while cerberus was not running are stored as they ended, not guessed.
cerberus is stopped while a respawn loop (exit 0) and a crash loop (exit 3) go on
restarting; at its next start it reads, from the manager's own journal messages ("Scheduled
restart job", "Failed with result", "Main process exited"), how each unseen run ended. The
respawn loop gets stops (result success, each with its own run's InvocationID) and its
respawn alert; the crash loop gets crashes with exit status 3 and its crashloop alert;
neither gets a row or an alert of the other kind."""
import os
import re
import time

from harness import (SOURCE_ROOT, Cerberus, UserManager, await_recorded_restarts, check, count,
                     db_rows, fix, require_root, tempdir, wait_for)

require_root()
UNSEEN = 6  # restarts of each unit while cerberus is stopped
RULES = os.path.join(SOURCE_ROOT, "rules", "default.json")

um = UserManager("unseen", journal=True)
work = tempdir("unseen")
os.chown(work, um.uid, um.uid)
db = os.path.join(work, "history.db")
respawn, loop = "respawn.service", "loop.service"
flags = {u: os.path.join(work, "fixed-" + u) for u in (respawn, loop)}
go = os.path.join(work, "go")


def looping(unit, status):
    # The first run waits for `go`: when cerberus stops, all it has seen is a run that never
    # ended, so no exit in view tells how the unseen ones ended.
    return ("[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
            f"ExecStart=/bin/sh -c 'test -e {flags[unit]} && exec sleep infinity; "
            f"while ! test -e {go}; do sleep 0.05; done; sleep 0.1; exit {status}'\n"
            "Restart=always\nRestartSec=200ms\n")


um.add_units({respawn: looping(respawn, 0), loop: looping(loop, 3)})

cerberus = Cerberus(db, um.bus, ["--rules", RULES]).start()
um.start(respawn, loop)
wait_for(lambda: count(db, respawn, "start") >= 1 and count(db, loop, "start") >= 1, 20,
         "both units seen running")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
stopped_at = time.time()

seen = {u: um.n_restarts(u) for u in (respawn, loop)}
fix(go)
wait_for(lambda: all(um.n_restarts(u) >= seen[u] + UNSEEN for u in seen), 30,
         f"{UNSEEN} restarts of each unit while cerberus is stopped")
for u in seen:
    fix(flags[u])


def runs_for_good(unit):
    """Its main process is the fixed one (a run past its flag test still exits)."""
    try:
        with open(f"/proc/{um.show(unit, 'MainPID')['MainPID']}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:2] == [b"sleep", b"infinity"]
    except OSError:
        return False


for u in seen:
    wait_for(lambda: runs_for_good(u), 30, f"{u} to run for good once fixed")
unseen = {u: um.n_restarts(u) - seen[u] for u in seen}

restarted_at = time.time()
cerberus = Cerberus(db, um.bus, ["--rules", RULES]).start()
for u in seen:
    await_recorded_restarts(um, db, u)


def ends(unit, event):
    return db_rows(db, "SELECT result, invocation_id, exit_code, exit_status FROM transitions "
                       "WHERE unit = ? AND event = ? AND source = 'reconcile' ORDER BY id",
                   (unit, event))


def runs(rows):
    ids = [r[1] for r in rows]
    return all(re.fullmatch(r"[0-9a-f]{32}", i or "") for i in ids) and len(set(ids)) == len(ids)


# --- the respawn loop: clean stops, each run named ------------------------------------------
stops = ends(respawn, "stop")
check(count(db, respawn, "crash") == 0,
      f"{respawn} exits 0, yet {count(db, respawn, 'crash')} crash rows: {ends(respawn, 'crash')}")
check(len(stops) == unseen[respawn],
      f"{unseen[respawn]} runs ended unseen, {len(stops)} reconciled stops: {stops}")
check(all(r[0] == "success" for r in stops), f"reconciled stops of {respawn}: {stops}")
check(runs(stops), f"each unseen run of {respawn} is named by its own InvocationID: {stops}")

# --- the crash loop: crashes with their exit --------------------------------------------------
crashes = ends(loop, "crash")
check(count(db, loop, "stop") == 0, f"{loop} exits 3, yet stop rows: {ends(loop, 'stop')}")
check(len(crashes) == unseen[loop],
      f"{unseen[loop]} runs ended unseen, {len(crashes)} reconciled crashes: {crashes}")
check(all(r[0] == "exit-code" and r[2] == "exited" and r[3] == 3 for r in crashes),
      f"reconciled crashes of {loop} carry the journal's result and exit: {crashes}")
check(runs(crashes), f"each unseen run of {loop} is named by its own InvocationID: {crashes}")


# --- when: each at the time the manager logged it, in order, while cerberus was stopped ----
for u in seen:
    times = [r[0] / 1e6 for r in db_rows(
        db, "SELECT ts_usec FROM transitions WHERE unit = ? AND source = 'reconcile' AND "
            "event IN ('stop', 'crash', 'restart') ORDER BY id", (u,))]
    check(times == sorted(times) and stopped_at <= times[0] and times[-1] <= restarted_at and
          len(set(times)) >= unseen[u],
          f"{u}: the reconciled ends and restarts are not timed as they happened between the "
          f"stop ({stopped_at:.3f}) and the start ({restarted_at:.3f}): {times}")

# --- the alerts: each loop its own, from the reconciled rows -------------------------------
def alerts(unit, rule):
    return db_rows(db, "SELECT started_usec FROM alerts WHERE unit = ? AND rule = ?",
                   (unit, rule))


wait_for(lambda: alerts(respawn, "respawn") and alerts(loop, "crashloop"), 15,
         "the respawn alert of respawn.service and the crashloop alert of loop.service")
check(all(a[0] / 1e6 >= stopped_at for a in alerts(respawn, "respawn") + alerts(loop, "crashloop")),
      "the alerts fired from what was reconciled, after the stop")
check(not alerts(respawn, "crashloop"), f"a crashloop alert for {respawn}, which exits 0")
check(not alerts(loop, "respawn"), f"a respawn alert for {loop}, which exits 3")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {unseen[respawn]} unseen respawns stored as stops, {unseen[loop]} unseen crashes "
      "with their exit, each loop its own alert")
