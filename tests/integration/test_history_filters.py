"""`cerberus history` as an operator used to journalctl reads it, on a database a real
`cerberus run` writes from a real user manager, with TZ=Europe/Berlin: a local --since and
--until select exactly the rows of their span, tables print local times with their offset
(--utc: UTC), -u takes a bare name as journalctl -u does, --event takes a comma list, global
options stand before or after the command, and `history -f` prints what is stored after it
started, and nothing else."""
import datetime
import json
import os
import select
import signal
import subprocess
import zoneinfo

from harness import (CERBERUS, Cerberus, UserManager, at_exit, check, crashloop_unit, db_rows, fail,
                     history_json, require_root, run_cli, tempdir, wait_for)

require_root()
TZ = "Europe/Berlin"
berlin = zoneinfo.ZoneInfo(TZ)
env = dict(os.environ, TZ=TZ)
um = UserManager("histfilters")
work = tempdir("histfilters")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
um.add_units({
    "tick.service": crashloop_unit(exit_status=3, burst=3),
    "ticker.service": "[Service]\nExecStart=/bin/sleep infinity\n",
    "late.service": "[Service]\nExecStart=/bin/sleep infinity\n",
})
cerberus = Cerberus(db, um.bus, ["--emit-socket", sock]).start()


def emit(unit, event):
    out = run_cli("emit", "--unit", unit, "--event", event, "--socket", sock, "--db", db)
    check(out.returncode == 0, f"emit {unit} {event} failed: {out.stderr}")


def stored(sql, params=()):
    return [r[0] for r in db_rows(db, sql, params)]


def ids(rows):
    return [r["id"] for r in rows]


# Rows to select from: a crash loop that gives up, a healthy unit, a job with no suffix.
um.start("tick.service", "ticker.service")
wait_for(lambda: stored("SELECT count(*) FROM transitions WHERE unit = 'tick.service' "
                        "AND event = 'give_up'") == [1], 30, "tick.service to give up")
wait_for(lambda: stored("SELECT count(*) FROM transitions WHERE unit = 'ticker.service'") != [0],
         10, "ticker.service's start")
emit("tick", "started")
emit("tick", "stopped")
all_ids = stored("SELECT id FROM transitions ORDER BY ts_usec, id")

# -u with a bare name: tick.service and the emitted job tick, never ticker.service.
rows = history_json(db, "-u", "tick", "-n", "1000")
expected = stored("SELECT id FROM transitions WHERE unit IN ('tick', 'tick.service') "
                  "ORDER BY ts_usec, id")
check(ids(rows) == expected, f"-u tick: ids {ids(rows)}, expected {expected}")
check({r["unit"] for r in rows} == {"tick", "tick.service"}, f"-u tick units: {rows}")
rows = history_json(db, "-u", "tick", "-u", "ticker", "-n", "1000")
check({r["unit"] for r in rows} == {"tick", "tick.service", "ticker.service"},
      f"-u tick -u ticker: {sorted({r['unit'] for r in rows})}")

# --event as a comma list, and repeated.
for args in (["--event", "crash,give_up"], ["--event", "crash", "--event", "give_up"]):
    rows = history_json(db, *args, "-n", "1000")
    expected = stored("SELECT id FROM transitions WHERE event IN ('crash', 'give_up') "
                      "ORDER BY ts_usec, id")
    check(expected and ids(rows) == expected, f"{args}: ids {ids(rows)}, expected {expected}")
out = run_cli("history", "--db", db, "--event", "crash,explode")
check(out.returncode == 2 and "explode" in out.stderr, f"--event explode: {out.returncode} {out.stderr}")

# A local time in Berlin: --since and --until given as the wall-clock times of two rows
# select exactly the rows from the first up to (not including) the second.
times = db_rows(db, "SELECT id, ts_usec FROM transitions ORDER BY ts_usec, id")
distinct = sorted({ts for _, ts in times})
check(len(distinct) >= 6, f"too few distinct times to split: {times}")
since_ts, until_ts = distinct[len(distinct) // 3], distinct[2 * len(distinct) // 3]


def berlin_text(ts_usec):
    moment = datetime.datetime.fromtimestamp(ts_usec / 1e6, berlin)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


out = run_cli("history", "--db", db, "--json", "-n", "1000", "-S", berlin_text(since_ts),
              "-U", berlin_text(until_ts), env=env)
check(out.returncode == 0, f"history with a local --since failed: {out.stderr}")
rows = json.loads(out.stdout)
expected = [i for i, ts in times if since_ts <= ts < until_ts]
check(expected and ids(rows) == expected,
      f"local --since/--until: ids {ids(rows)}, expected {expected}")
check(all(since_ts <= r["ts_usec"] < until_ts for r in rows), "a row outside the span appeared")
# Relative times: everything is from the last hour, nothing from before it.
check(ids(history_json(db, "--since", "1 hour ago", "-n", "1000")) == all_ids,
      "--since '1 hour ago' does not show every row")
out = run_cli("history", "--db", db, "--until", "-1h")
check(out.returncode == 0 and out.stdout == "", f"--until -1h printed rows: {out.stdout}")

# Tables print Berlin's local time with its offset; --utc prints UTC.
first_id, first_ts = times[0]
moment = datetime.datetime.fromtimestamp(first_ts / 1e6, berlin)
offset = moment.strftime("%z")
local_cell = (moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} "
              + offset[:3] + ":" + offset[3:])
utc_moment = moment.astimezone(datetime.timezone.utc)
utc_cell = utc_moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc_moment.microsecond // 1000:03d} UTC"
out = run_cli("history", "--db", db, "-n", "1000", env=env)
lines = out.stdout.splitlines()
check(out.returncode == 0 and lines[0].startswith("TIME") and lines[1].startswith(local_cell),
      f"table's first row does not start with {local_cell!r}: {lines[:2]}")
out = run_cli("--utc", "history", "--db", db, "-n", "1000", env=env)
check(out.stdout.splitlines()[1].startswith(utc_cell),
      f"--utc table's first row does not start with {utc_cell!r}: {out.stdout.splitlines()[:2]}")
check(history_json(db, "-n", "1")[0]["time"].endswith("Z"), "JSON times are not UTC ISO 8601")

# Global options before or after the command.
out = run_cli("silence", "add", "--db", db, "-u", "tick", "--for", "1h 30min")
check(out.returncode == 0, f"silence add --db: {out.returncode} {out.stderr}")
out = run_cli("--db", db, "--json", "silence", "list")
check(out.returncode == 0, f"--db before silence list: {out.returncode} {out.stderr}")
silence = json.loads(out.stdout)[0]
check(silence["ends_usec"] - silence["starts_usec"] == 90 * 60 * 10**6,
      f"--for '1h 30min' made a silence of {silence['ends_usec'] - silence['starts_usec']} us")
out = run_cli("--db", db, "history", "-u", "ticker", "--json")
check(out.returncode == 0 and json.loads(out.stdout), f"--db before history: {out.stderr}")

# history -f: only what is stored after it started, as it is stored.
follow = subprocess.Popen([CERBERUS, "history", "--db", db, "-f", "-n", "0", "-u", "late",
                           "--event", "start,crash"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def stop_follow():
    if follow.poll() is None:
        follow.kill()
        follow.wait()


at_exit(stop_follow)


def next_line(timeout, what):
    ready, _, _ = select.select([follow.stdout], [], [], timeout)
    if not ready:
        fail(f"history -f printed no line within {timeout}s; waited for {what}")
    line = follow.stdout.readline()
    if not line:
        fail(f"history -f ended while waiting for {what}: {follow.stderr.read()}")
    return line.rstrip("\n")


header = next_line(10, "its header")
check(header.startswith("TIME") and "UNIT" in header, f"history -f header: {header!r}")
emit("other", "started")          # another unit: never shown
um.start("late.service")          # real systemd: late.service start
line = next_line(10, "late.service's start")
check(line.split()[3:5] == ["late.service", "start"], f"history -f line: {line!r}")
check(line.startswith(datetime.datetime.now(berlin).strftime("%Y-%m-%d")) and
      (" +01:00 " in line or " +02:00 " in line), f"history -f time is not Berlin's: {line!r}")
emit("late", "stopped")           # the bare name, but a stop: not shown
emit("late", "started")           # shown
line = next_line(10, "the emitted late start")
check(line.split()[3:5] == ["late", "start"], f"history -f line: {line!r}")
follow.send_signal(signal.SIGTERM)
try:
    rest, err = follow.communicate(timeout=5)
except subprocess.TimeoutExpired:
    fail("history -f did not exit within 5 s of SIGTERM")
check(follow.returncode == 0, f"history -f exited {follow.returncode} on SIGTERM: {err}")
check(rest == "", f"history -f printed more than it should: {rest!r}")

check(cerberus.stop() == 0, f"cerberus did not exit 0 on SIGTERM: {cerberus.output()}")
print(f"ok: {len(all_ids)} rows; a Berlin-time span, -u tick, --event lists and -f select "
      "exactly their rows")
