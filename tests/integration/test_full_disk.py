"""The disk fills up while services crash: cerberus keeps the transitions queued, says so
once, stays up, and stores every one of them once space is back, leaving an intact
database."""
import os
import subprocess

from harness import (Cerberus, UserManager, at_exit, await_recorded_restarts, check, count,
                     crashloop_unit, db_rows, fail, fix, require_root, tempdir, wait_for)

require_root()
um = UserManager("fulldisk")
work = tempdir("fulldisk")
flag = os.path.join(work, "fixed")
disk = os.path.join(work, "disk")
os.mkdir(disk)
out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk],
                     capture_output=True, text=True)
if out.returncode != 0:
    fail(f"cannot mount a small tmpfs to fill up: {out.stderr.strip()}")
at_exit(lambda: subprocess.run(["umount", "-l", disk]))
db = os.path.join(disk, "history.db")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="150ms")})
cerberus = Cerberus(db, um.bus).start()

filler = os.path.join(disk, "filler")
with open(filler, "wb") as f:
    try:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    except OSError:
        pass  # the disk is full
um.start(unit)
wait_for(lambda: "cannot write" in cerberus.output(), 30, "cerberus to report the full disk")
wait_for(lambda: um.n_restarts(unit) >= 4, 30, "four restarts on a full disk")
check(cerberus.alive(), f"cerberus died on a full disk: {cerberus.output()}")

os.unlink(filler)
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit, timeout=30)
check(count(db, unit, "crash") >= restarts, "crashes were lost on the full disk")
check(cerberus.output().count("cannot write") == 1, "the full disk must be reported once")
check(db_rows(db, "PRAGMA integrity_check") == [("ok",)], "the database is damaged")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print(f"ok: {restarts} restarts stored after space came back")
