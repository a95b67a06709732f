"""The database file deleted or replaced while cerberus runs a crash loop.

Deleted (the file alone, then with its -wal and -shm): cerberus puts a copy of what its open
connection holds back at the path, says so once per deletion, and writes on there: every
restart before and after is stored once, an emit answered "stored" is in the file, and the
firing alert is still firing, and not told again, after a restart of cerberus.
Replaced by another file: one clear error, nothing written to the stranger, an emit is not
told "stored"; once the stranger is removed, cerberus restores its own file and the queue
catches up."""
import json
import os
import sqlite3

from harness import (Cerberus, UserManager, await_recorded_restarts, check, count,
                     crashloop_unit, db_rows, fix, require_root, run_cli, tempdir, wait_for)

require_root()
um = UserManager("dbdeleted")
work = tempdir("dbdeleted")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
flag = os.path.join(work, "fixed")
unit = "loop.service"
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["*.service", "job"],
                      "when": {"event": "crash", "count": 3, "within": "5m",
                               "uptime_below": "30s"},
                      "resolve_when_up_for": "10m", "severity": "critical",
                      "notify": ["log"]}]}, open(rules_path, "w"))
args = ["--rules", rules_path, "--emit-socket", sock]
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="300ms")})


def firing():
    return db_rows(db, "SELECT count(*) FROM alerts WHERE unit = ? AND state = 'firing'",
                   (unit,))[0][0]


def told(cerberus):
    return cerberus.output().count(f"alert firing: rule 'crashloop' unit '{unit}'")


def emit(event, *extra):
    return run_cli("emit", "--unit", "job", "--event", event, "--socket", sock, "--db", db,
                   *extra)


def restored(cerberus, times):
    return cerberus.output().count("was deleted while cerberus ran; restored it") == times


cerberus = Cerberus(db, um.bus, args).start()
um.start(unit)
wait_for(lambda: firing() == 1, 30, "the crashloop alert to fire")
before = count(db, unit, "restart")

# 1. The file alone, as `rm cerberus.db` does: its -wal and -shm stay behind.
os.unlink(db)
out = emit("started")
check(out.returncode == 0, f"emit while the file was deleted exited {out.returncode}: {out.stderr}")
wait_for(lambda: restored(cerberus, 1), 30, "cerberus to restore the deleted file")
wait_for(lambda: count(db, unit, "restart") > before + 1, 30, "restarts stored after the restore")
check(count(db, "job", "start") == 1, "the emit answered 'stored' is not in the restored file")
check(firing() == 1, "the firing alert is not in the restored file")

# 2. All three files, as `rm cerberus.db*` would (the lock file aside).
middle = count(db, unit, "restart")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(db + suffix):
        os.unlink(db + suffix)
wait_for(lambda: restored(cerberus, 2), 30, "cerberus to restore the file and its WAL")
wait_for(lambda: count(db, unit, "restart") > middle + 1, 30, "restarts stored after it")
check(db_rows(db, "PRAGMA integrity_check") == [("ok",)], "the restored database is damaged")

# 3. Replaced by a stranger's file: not written, not claimed as stored.
stranger = os.path.join(work, "stranger.db")
con = sqlite3.connect(stranger)
con.execute("CREATE TABLE mine (x)")
con.commit()
con.close()
os.rename(stranger, db)
wait_for(lambda: "was replaced by another file" in cerberus.output(), 30,
         "cerberus to report the replaced file")
out = emit("stopped", "--exit-status", "1")
check(out.returncode == 1, f"an emit was answered {out.returncode} while the file was replaced: "
      f"{out.stderr}")
check(db_rows(db, "SELECT name FROM sqlite_master") == [("mine",)],
      "cerberus wrote into a file that is not its own")
check(cerberus.output().count("was replaced by another file") == 1,
      "the replaced file must be reported once, not per retry")
os.unlink(db)
wait_for(lambda: restored(cerberus, 3), 30, "cerberus to restore its own file")
wait_for(lambda: count(db, "job", "crash") == 1, 30, "the queued emit to be stored")

fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
# Numbered 1..NRestarts, each once: nothing lost in three faults, nothing stored twice.
restarts = await_recorded_restarts(um, db, unit, timeout=30)
check(cerberus.stop() == 0, f"cerberus did not exit 0: {cerberus.output()}")
check(told(cerberus) == 1, f"the alert was told {told(cerberus)} times")

again = Cerberus(db, um.bus, args).start()
check(firing() == 1, "the alert stopped firing after a restart of cerberus")
check(count(db, unit, "restart") == restarts, "the restart of cerberus changed the history")
check(told(again) == 0, "the firing alert was told again after the restart")
check(again.stop() == 0, f"cerberus did not exit 0 after the restart: {again.output()}")
print(f"ok: {restarts} restarts stored once each across two deletions and a replacement")
