"""One writer per database. A second `cerberus run` on the database a running daemon holds
exits 5 with one sentence naming the holder's PID, before it writes anything (no socket, no
row); the first keeps running and recording, with no duplicate rows. Readers (history,
alerts, replay, sqlite3) and `silence add` keep working beside it. `cerberus emit` appends
nothing while a daemon that does not listen on its socket holds the database (exit 5), and
appends once the daemon has stopped. A daemon killed with SIGKILL leaves no stale lock."""
import os
import stat

from harness import (Cerberus, UserManager, await_recorded_restarts, check, count,
                     crashloop_unit, db_rows, fix, require_root, run_cli, tempdir, wait_for)

require_root()
um = UserManager("onewriter")
work = tempdir("onewriter")
db = os.path.join(work, "history.db")
lock = db + ".lock"
sock = os.path.join(work, "emit.sock")
other_sock = os.path.join(work, "second.sock")
flag = os.path.join(work, "fixed")
unit = "loop.service"
um.add_units({unit: crashloop_unit(exit_status=3, fixed=flag, restart_sec="150ms")})

first = Cerberus(db, um.bus, ["--emit-socket", sock]).start()
check(stat.S_IMODE(os.stat(lock).st_mode) == 0o600, "the lock file is not 0600")
check(open(lock).read().split() == [str(first.proc.pid)],
      f"the lock file does not hold the daemon's PID: {open(lock).read()!r}")
um.start(unit)
wait_for(lambda: count(db, unit, "restart") >= 2, 30, "two restarts recorded by the first daemon")

# The second daemon: refused, before it listens or writes.
second = run_cli("run", "--db", db, "--bus", um.bus, "--emit-socket", other_sock)
check(second.returncode == 5, f"a second daemon exited {second.returncode}, expected 5: "
      f"{second.stderr}")
message = second.stderr.strip()
check(len(message.splitlines()) == 1, f"the refusal is not one line: {message!r}")
check(f"held by cerberus PID {first.proc.pid}" in message and f"'{db}'" in message,
      f"the refusal does not name the database and the holder's PID: {message}")
check(not os.path.exists(other_sock), "the refused daemon created its emit socket")
check("following" not in message, f"the refused daemon started following systemd: {message}")
check(first.alive(), f"the first daemon died when a second one started: {first.output()}")

# Readers and silences work beside the running daemon.
for reader in (["history", "--db", db, "--unit", unit], ["alerts", "--db", db, "--state", "all"],
               ["replay", "--db", db]):
    out = run_cli(*reader)
    check(out.returncode == 0, f"cerberus {reader[0]} beside the daemon exited {out.returncode}: "
          f"{out.stderr}")
check(db_rows(db, "SELECT count(*) FROM transitions WHERE unit = ?", (unit,))[0][0] > 0,
      "sqlite3 cannot read the database beside the daemon")
out = run_cli("silence", "--db", db, "add", "--unit", "quiet-*", "--for", "1h")
check(out.returncode == 0, f"silence add beside the daemon exited {out.returncode}: {out.stderr}")

# An emit that misses the daemon's socket must not append rows it would not evaluate.
out = run_cli("emit", "--unit", "job", "--event", "started", "--socket", other_sock, "--db", db)
check(out.returncode == 5, f"emit beside a daemon on another socket exited {out.returncode}, "
      f"expected 5: {out.stderr}")
check(f"cerberus PID {first.proc.pid}" in out.stderr and "--socket" in out.stderr,
      f"emit does not name the holder and the fix: {out.stderr}")
check(count(db, "job", "start") == 0, "emit appended beside a running daemon")
out = run_cli("emit", "--unit", "job", "--event", "started", "--socket", sock, "--db", db)
check(out.returncode == 0 and count(db, "job", "start") == 1,
      f"emit through the daemon's socket failed ({out.returncode}): {out.stderr}")

fix(flag)
wait_for(lambda: um.show(unit, "SubState")["SubState"] == "running"
         and um.show(unit, "Job")["Job"] == "", 30, f"{unit} to run for good once fixed")
# Numbered 1..NRestarts, each once: nothing duplicated, nothing lost.
restarts = await_recorded_restarts(um, db, unit)
starts = count(db, unit, "start")
check(starts == restarts + 1, f"{starts} start rows for {restarts} restarts and a first start")
check(first.stop() == 0, f"the first daemon did not exit 0: {first.output()}")

# The lock went with the daemon: emit appends now, and a new daemon starts.
out = run_cli("emit", "--unit", "job", "--event", "stopped", "--socket", other_sock, "--db", db)
check(out.returncode == 0 and "appended" in out.stderr,
      f"emit with no daemon did not append ({out.returncode}): {out.stderr}")
killed = Cerberus(db, um.bus, ["--emit-socket", sock]).start()
killed.proc.kill()
killed.proc.wait()
check(open(lock).read().split() == [str(killed.proc.pid)], "the killed daemon's PID is not in the "
      "lock file, so this test does not show that a stale file does not block")
again = Cerberus(db, um.bus, ["--emit-socket", sock]).start()
check(again.alive(), "a daemon could not start after one was killed with SIGKILL")
check(again.stop() == 0, f"the last daemon did not exit 0: {again.output()}")
print(f"ok: second daemon refused (exit 5), {restarts} restarts stored once each")
