"""The database cerberus cannot write, at start-up and while it runs a crash loop.

At start-up, a file marked immutable (chattr +i: even root gets EPERM) and a database on a
read-only mount each stop the start with exit 3 and one sentence naming the file and the
fix, before anything is written; once writable, the next start reconciles the restarts it
missed. While running (a read-only remount is refused by the kernel while the database is
open for writing, so the file is made immutable instead): one error, the transitions stay
queued, and they are stored once it is writable again. Every restart is stored once."""
import os
import subprocess

from harness import (Cerberus, UserManager, at_exit, await_recorded_restarts, check, count,
                     crashloop_unit, db_rows, fail, fix, require_root, run_cli, tempdir,
                     wait_for)

require_root()
um = UserManager("dbreadonly")
work = tempdir("dbreadonly")
flag = os.path.join(work, "fixed")
# A small ext4 of its own: immutable files (chattr +i) refuse writes through fds already
# open only where the file system checks it on write (ext4 does, tmpfs does not), whatever
# /tmp is here; and a read-only bind mount of it.
disk = os.path.join(work, "disk")
image = os.path.join(work, "disk.img")
os.mkdir(disk)
with open(image, "wb") as f:
    f.truncate(32 << 20)
for command in (["mkfs.ext4", "-q", "-F", image], ["mount", "-o", "loop", image, disk]):
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{' '.join(command)} failed: {out.stderr.strip()}")
at_exit(lambda: subprocess.run(["umount", "-d", disk]))
db = os.path.join(disk, "history.db")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="200ms")})


def immutable(on):
    # Not the -shm file: SQLite maps it, and it holds no data.
    for path in (db, db + "-wal"):
        if os.path.exists(path):
            out = subprocess.run(["chattr", "+i" if on else "-i", path], capture_output=True,
                                 text=True)
            if out.returncode != 0:
                fail(f"chattr {'+i' if on else '-i'} {path} failed: {out.stderr.strip()}")


at_exit(lambda: immutable(False))


def run_refused(path, words):
    out = run_cli("run", "--db", path, "--bus", um.bus, "--emit-socket", "none")
    message = out.stderr.strip()
    check(out.returncode == 3, f"cerberus run on {path} exited {out.returncode}, expected 3: "
          f"{message}")
    check(len(message.splitlines()) == 1, f"not one sentence: {message!r}")
    check(f"'{path}" in message and all(w in message for w in words),
          f"the refusal does not name the file and say {words}: {message}")


cerberus = Cerberus(db, um.bus, ["--emit-socket", "none"]).start()
um.start(unit)
wait_for(lambda: count(db, unit, "restart") >= 2, 30, "two restarts recorded")

# While running: the file becomes impossible to write.
immutable(True)
before = um.n_restarts(unit)
wait_for(lambda: "cannot write" in cerberus.output(), 30, "cerberus to report the failed write")
wait_for(lambda: um.n_restarts(unit) >= before + 3, 30, "three restarts while it cannot write")
check(cerberus.alive(), f"cerberus died on a database it cannot write: {cerberus.output()}")
immutable(False)
wait_for(lambda: "writing to" in cerberus.output(), 30, "cerberus to write again")
wait_for(lambda: count(db, unit, "restart") >= before + 3, 30, "the queued restarts stored")
check(cerberus.output().count("cannot write") == 1, "the failure must be reported once")
check(cerberus.stop() == 0, f"cerberus did not exit 0: {cerberus.output()}")

# At start-up: an immutable file.
immutable(True)
stored = count(db, unit, "restart")
run_refused(db, ["for writing", "chattr -i"])
immutable(False)
check(count(db, unit, "restart") == stored, "the refused start changed the history")

# At start-up: a read-only mount of the same directory.
view = os.path.join(work, "ro")
os.mkdir(view)
for args in (["--bind", disk, view], ["-o", "remount,bind,ro", view]):
    out = subprocess.run(["mount"] + args, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"mount {' '.join(args)} failed: {out.stderr.strip()}")
at_exit(lambda: subprocess.run(["umount", "-l", view]))
run_refused(os.path.join(view, "history.db"), ["read-only", "--db"])
check(count(db, unit, "restart") == stored, "the refused start changed the history")
missed_from = um.n_restarts(unit)
wait_for(lambda: um.n_restarts(unit) >= missed_from + 2, 30, "restarts while nothing records")

# Writable again: the next start reconciles what it missed.
cerberus = Cerberus(db, um.bus, ["--emit-socket", "none"]).start()
check(count(db, unit, "restart", source="reconcile") >= 2,
      "the restarts missed while the database was read-only were not reconciled")
fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
restarts = await_recorded_restarts(um, db, unit, timeout=30)
check(db_rows(db, "PRAGMA integrity_check") == [("ok",)], "the database is damaged")
check(cerberus.stop() == 0, f"cerberus did not exit 0: {cerberus.output()}")
print(f"ok: {restarts} restarts stored once each through a read-only file and mount")
