"""Runs that ended while cerberus was not running are stored as they ended, not guessed.
cerberus is stopped while a respawn loop (exit 0) and a crash loop (exit 3) go on
restarting; at its next start it reads, from the manager's own journal messages ("Scheduled
restart job", "Failed with result", "Main process exited"), how each unseen run ended. The
respawn loop gets stops (result success, each with its own run's InvocationID) and its
respawn alert; the crash loop gets crashes with exit status 3 and its crashloop alert;
neither gets a row or an alert of the other kind; each row is timed as it happened;
/metrics counts them as read from the journal.

The same outage under a manager whose messages do not reach the journal: the ends are
guessed, /metrics counts them as guessed, and cerberus says so once, naming the fix."""
import os
import re
import time
import urllib.request

from harness import (SOURCE_ROOT, Cerberus, UserManager, await_recorded_restarts, check, count,
                     db_rows, fix, free_port, parse_metrics, require_root, tempdir, wait_for)

require_root()
UNSEEN = 6  # restarts of each unit while cerberus is stopped
RULES = os.path.join(SOURCE_ROOT, "rules", "default.json")
RESPAWN, LOOP = "respawn.service", "loop.service"
GUESSED_SAID = "the manager's journal does not say how"


class Outage:
    """Both loops seen running, cerberus stopped while they restart UNSEEN times or more,
    both fixed, cerberus started again and caught up."""

    def __init__(self, name, journal):
        self.um = um = UserManager(name, journal=journal)
        work = tempdir(name)
        os.chown(work, um.uid, um.uid)
        self.db = db = os.path.join(work, "history.db")
        self.flags = {u: os.path.join(work, "fixed-" + u) for u in (RESPAWN, LOOP)}
        self.go = os.path.join(work, "go")
        um.add_units({RESPAWN: self.looping(RESPAWN, 0), LOOP: self.looping(LOOP, 3)})
        self.address = f"127.0.0.1:{free_port()}"
        args = ["--rules", RULES, "--metrics", self.address]

        cerberus = Cerberus(db, um.bus, args).start()
        um.start(RESPAWN, LOOP)
        wait_for(lambda: count(db, RESPAWN, "start") >= 1 and count(db, LOOP, "start") >= 1, 20,
                 "both units seen running")
        check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
        self.stopped_at = time.time()

        seen = {u: um.n_restarts(u) for u in (RESPAWN, LOOP)}
        fix(self.go)
        wait_for(lambda: all(um.n_restarts(u) >= seen[u] + UNSEEN for u in seen), 30,
                 f"{UNSEEN} restarts of each unit while cerberus is stopped")
        for u in seen:
            fix(self.flags[u])
        for u in seen:
            wait_for(lambda: self.runs_for_good(u), 30, f"{u} to run for good once fixed")
        self.unseen = {u: um.n_restarts(u) - seen[u] for u in seen}

        self.restarted_at = time.time()
        self.cerberus = Cerberus(db, um.bus, args).start()
        for u in seen:
            await_recorded_restarts(um, db, u)

    def looping(self, unit, status):
        # The first run waits for `go`: when cerberus stops, all it has seen is a run that
        # never ended, so no exit in view tells how the unseen ones ended.
        return ("[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
                f"ExecStart=/bin/sh -c 'test -e {self.flags[unit]} && exec sleep infinity; "
                f"while ! test -e {self.go}; do sleep 0.05; done; sleep 0.1; exit {status}'\n"
                "Restart=always\nRestartSec=200ms\n")

    def runs_for_good(self, unit):
        """Its main process is the fixed one (a run past its flag test still exits)."""
        try:
            with open(f"/proc/{self.um.show(unit, 'MainPID')['MainPID']}/cmdline", "rb") as f:
                return f.read().split(b"\0")[:2] == [b"sleep", b"infinity"]
        except OSError:
            return False

    def ends(self, unit, event):
        return db_rows(self.db, "SELECT result, invocation_id, exit_code, exit_status FROM "
                                "transitions WHERE unit = ? AND event = ? AND source = "
                                "'reconcile' ORDER BY id", (unit, event))

    def alerts(self, unit, rule):
        return db_rows(self.db, "SELECT started_usec FROM alerts WHERE unit = ? AND rule = ?",
                       (unit, rule))

    def unseen_ends_metric(self):
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=5) as response:
            samples = parse_metrics(response.read().decode())
        return {how: samples.get(("cerberus_unseen_run_ends_total", frozenset({("how", how)})))
                for how in ("journal", "guessed")}

    def said_guessed(self):
        return [line for line in self.cerberus.output().splitlines() if GUESSED_SAID in line]


def runs(rows):
    ids = [r[1] for r in rows]
    return all(re.fullmatch(r"[0-9a-f]{32}", i or "") for i in ids) and len(set(ids)) == len(ids)


# === with the journal ========================================================================
told = Outage("unseen", journal=True)
unseen, db = told.unseen, told.db

# --- the respawn loop: clean stops, each run named ------------------------------------------
stops = told.ends(RESPAWN, "stop")
check(count(db, RESPAWN, "crash") == 0,
      f"{RESPAWN} exits 0, yet {count(db, RESPAWN, 'crash')} crash rows: "
      f"{told.ends(RESPAWN, 'crash')}")
check(len(stops) == unseen[RESPAWN],
      f"{unseen[RESPAWN]} runs ended unseen, {len(stops)} reconciled stops: {stops}")
check(all(r[0] == "success" for r in stops), f"reconciled stops of {RESPAWN}: {stops}")
check(runs(stops), f"each unseen run of {RESPAWN} is named by its own InvocationID: {stops}")

# --- the crash loop: crashes with their exit --------------------------------------------------
crashes = told.ends(LOOP, "crash")
check(count(db, LOOP, "stop") == 0, f"{LOOP} exits 3, yet stop rows: {told.ends(LOOP, 'stop')}")
check(len(crashes) == unseen[LOOP],
      f"{unseen[LOOP]} runs ended unseen, {len(crashes)} reconciled crashes: {crashes}")
check(all(r[0] == "exit-code" and r[2] == "exited" and r[3] == 3 for r in crashes),
      f"reconciled crashes of {LOOP} carry the journal's result and exit: {crashes}")
check(runs(crashes), f"each unseen run of {LOOP} is named by its own InvocationID: {crashes}")

# --- when: each at the time the manager logged it, in order, while cerberus was stopped ----
for u in unseen:
    times = [r[0] / 1e6 for r in db_rows(
        db, "SELECT ts_usec FROM transitions WHERE unit = ? AND source = 'reconcile' AND "
            "event IN ('stop', 'crash', 'restart') ORDER BY id", (u,))]
    check(times == sorted(times) and told.stopped_at <= times[0] and
          times[-1] <= told.restarted_at and len(set(times)) >= unseen[u],
          f"{u}: the reconciled ends and restarts are not timed as they happened between the "
          f"stop ({told.stopped_at:.3f}) and the start ({told.restarted_at:.3f}): {times}")

# --- the alerts: each loop its own, from the reconciled rows -------------------------------
wait_for(lambda: told.alerts(RESPAWN, "respawn") and told.alerts(LOOP, "crashloop"), 15,
         "the respawn alert of respawn.service and the crashloop alert of loop.service")
check(all(a[0] / 1e6 >= told.stopped_at
          for a in told.alerts(RESPAWN, "respawn") + told.alerts(LOOP, "crashloop")),
      "the alerts fired from what was reconciled, after the stop")
check(not told.alerts(RESPAWN, "crashloop"), f"a crashloop alert for {RESPAWN}, which exits 0")
check(not told.alerts(LOOP, "respawn"), f"a respawn alert for {LOOP}, which exits 3")

# --- what /metrics and the log say -----------------------------------------------------------
metric = told.unseen_ends_metric()
check(metric == {"journal": sum(unseen.values()), "guessed": 0},
      f"cerberus_unseen_run_ends_total after {sum(unseen.values())} unseen ends, all in the "
      f"journal: {metric}")
check(told.said_guessed() == [], f"cerberus said it guessed: {told.said_guessed()}")
check(told.cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")

# === without the journal: guessed, counted and said ==========================================
guessed = Outage("unseenguess", journal=False)
total = sum(guessed.unseen.values())
metric = guessed.unseen_ends_metric()
check(metric == {"journal": 0, "guessed": total},
      f"cerberus_unseen_run_ends_total after {total} unseen ends the journal does not hold: "
      f"{metric}")
said = guessed.said_guessed()
check(len(said) == 1 and f"{total} runs ended" in said[0] and "systemd-journal" in said[0],
      f"cerberus tells once that {total} ends were guessed, and the fix: {said}")
check(guessed.cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {unseen[RESPAWN]} unseen respawns stored as stops, {unseen[LOOP]} unseen crashes "
      f"with their exit, timed as logged, each loop its own alert; without the journal "
      f"{total} ends guessed, counted and said once")
