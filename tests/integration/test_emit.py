"""`cerberus emit` for inits other than systemd, against a running daemon on a real user
manager: an Upstart-style crash loop is stored with source emit and fires a rule like a
systemd unit; a user outside the configured group is refused, one inside it is taken; a
garbage line gets an error reply and the daemon runs on; with the daemon stopped, emit
appends to the database and the next start fires the alert for those rows, once."""
import json
import os
import socket
import subprocess

from harness import (CERBERUS, SOURCE_ROOT, Cerberus, UserManager, at_exit, check, db_rows, require_root,
                     run_cli, tempdir, wait_for)

require_root()
um = UserManager("emit")
work = tempdir("emit")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "upstart-loop", "units": ["upstart-*"],
                      "when": {"event": "crash", "count": 3, "within": "5m",
                               "uptime_below": "30s"},
                      "resolve_when_up_for": "10m", "severity": "critical",
                      "notify": ["log"]}]}, open(rules_path, "w"))
group = os.environ.get("CERBERUS_TEST_USER_PREFIX", "cb-") + "emitfeed"


def daemon(*extra):
    return Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", sock] +
                    list(extra)).start()


def emit(unit, event, *extra, user=None):
    args = ["emit", "--unit", unit, "--event", event, "--socket", sock, "--db", db] + list(extra)
    if user is None:
        return run_cli(*args)
    return subprocess.run(["runuser", "-u", user, "--", CERBERUS] + args, capture_output=True,
                          text=True)


def emitted(unit, event, *extra, user=None):
    out = emit(unit, event, *extra, user=user)
    check(out.returncode == 0, f"emit {unit} {event} exited {out.returncode}: {out.stderr}")
    return out


def events(unit):
    return [r[0] for r in db_rows(db, "SELECT event FROM transitions WHERE unit = ? ORDER BY "
                                      "ts_usec, id", (unit,))]


def fired(cerberus, unit):
    return cerberus.output().count(f"alert firing: rule 'upstart-loop' unit '{unit}'")


def ask(line):
    """Sends raw bytes to the socket and returns the parsed reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        # Connected blocking: with a timeout, a full backlog fails at once with EAGAIN
        # instead of waiting for the daemon to accept.
        s.connect(sock)
        s.settimeout(10)
        try:
            s.sendall(line)
        except BrokenPipeError:
            pass  # answered (busy, refused) and closed before the request: read the answer
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


cerberus = daemon()
check(os.stat(sock).st_mode & 0o777 == 0o600, "the socket without --emit-group is not 0600")

# An Upstart job in a crash loop: started once, then respawned, each run ending in stopping
# with status 1 and no starting in between.
unit = "upstart-web"
out = emitted(unit, "started")
check(out.stderr == "", f"emit to a listening daemon printed: {out.stderr}")
for _ in range(3):
    emitted(unit, "stopping", "--exit-status", "1")
# exit 0 means stored: the rows are there without waiting.
check(events(unit) == ["start", "crash", "restart", "crash", "restart", "crash"],
      f"unexpected rows: {events(unit)}")
sources = db_rows(db, "SELECT DISTINCT source FROM transitions WHERE unit = ?", (unit,))
check(sources == [("emit",)], f"rows not from source emit: {sources}")
wait_for(lambda: fired(cerberus, unit) == 1, 10, "the alert on the emitted crash loop")
check(db_rows(db, "SELECT state, count FROM alerts WHERE unit = ?", (unit,)) == [("firing", 3)],
      "the alert row is not firing with count 3")

# Garbage and an endless line get an error reply; the daemon runs on.
bad = ask(b"this is not json\n")
check(bad["ok"] is False and "JSON" in bad["error"], f"garbage reply: {bad}")
bad = ask(json.dumps({"unit": unit, "event": "exploded"}).encode() + b"\n")
check(bad["ok"] is False and "event" in bad["error"], f"bad event reply: {bad}")
long = ask(b"x" * 5000)
check(long["ok"] is False and "longer" in long["error"], f"long line reply: {long}")
check(cerberus.alive(), "cerberus died on a bad request")

# A client that sends half a line and waits stalls nobody, and is told off after 5 s.
slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
slow.connect(sock)
slow.sendall(b'{"unit": "upstart-slow",')
emitted("upstart-other", "started")
slow.settimeout(15)
told = json.loads(slow.recv(4096))
slow.close()
check(told["ok"] is False and "within 5s" in told["error"], f"the slow client was told: {told}")

# A time far from the daemon's clock is refused by name (it would overflow the windows).
far = ask(json.dumps({"unit": unit, "event": "started", "ts_usec": 2**62}).encode() + b"\n")
check(far["ok"] is False and "field 'ts_usec'" in far["error"], f"far future reply: {far}")

# Every connection slot taken, then clients that hang up before their "busy" answer: writing
# it to a closed socket must not kill the daemon (SIGPIPE).
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    held.append(s)
for _ in range(8):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
busy = ask(json.dumps({"unit": "upstart-busy", "event": "started"}).encode() + b"\n")
check(busy["ok"] is False and busy["error"].startswith("busy"), f"the 65th client was told {busy}")
check(cerberus.alive(), f"cerberus died answering closed connections: {cerberus.output()}")
for s in held:
    s.close()
emitted("upstart-busy", "started")
check(events("upstart-busy") == ["start"], "an emit after the busy spell was not stored")

# The shipped hooks, run as their init would run them (the socket from the environment).
hook_env = dict(os.environ, CERBERUS_EMIT_SOCKET=sock,
                PATH=os.path.dirname(CERBERUS) + ":" + os.environ["PATH"])
upstart = open(os.path.join(SOURCE_ROOT, "examples", "upstart", "cerberus.conf")).read()
script = upstart.split("\nscript\n", 1)[1].split("\nend script", 1)[0]
for upstart_env in [{"UPSTART_EVENTS": "started"},
                    {"UPSTART_EVENTS": "stopping", "RESULT": "failed", "EXIT_STATUS": "2"},
                    {"UPSTART_EVENTS": "stopping", "RESULT": "failed", "EXIT_SIGNAL": "SEGV"},
                    {"UPSTART_EVENTS": "stopping", "RESULT": "failed", "PROCESS": "respawn"}]:
    out = subprocess.run(["sh", "-c", script], env=dict(hook_env, JOB="upstart-job",
                                                       INSTANCE="tty1", **upstart_env),
                         capture_output=True, text=True)
    check(out.returncode == 0, f"the Upstart hook failed on {upstart_env}: {out.stderr}")
rows = db_rows(db, "SELECT event, exit_code, exit_status FROM transitions WHERE unit = ? "
                   "ORDER BY ts_usec, id", ("upstart-job@tty1",))
check(rows == [("start", "", None), ("crash", "exited", 2), ("restart", "exited", 2),
               ("crash", "killed", 11), ("give_up", "", None)],
      f"the Upstart hook stored {rows}")
service = os.path.join(work, "upstart-runit")
os.mkdir(service)
finish = os.path.join(SOURCE_ROOT, "examples", "runit", "finish")

def run_finish(*args):
    out = subprocess.run([finish] + list(args), cwd=service, env=hook_env, capture_output=True,
                         text=True)
    check(out.returncode == 0, f"the runit finish failed on {args}: {out.stderr}")


def runsv_wants(want):
    """supervise/status as runsv writes it: 20 bytes, byte 17 'u' or 'd' (what sv asked)."""
    os.makedirs(os.path.join(service, "supervise"), exist_ok=True)
    with open(os.path.join(service, "supervise", "status"), "wb") as f:
        f.write(bytes(17) + want.encode() + bytes(2))


run_finish("0", "0")
runsv_wants("u")
run_finish("-1", "139")  # SEGV with a core dump: the low byte of the wait status
# `sv down`: runsv sends TERM and wants the service down; that end is an operator's stop.
runsv_wants("d")
run_finish("-1", "15")
# `sv once` also wants it down while it runs: a crash there is still a crash.
run_finish("1", "0")
rows = db_rows(db, "SELECT event, exit_code, exit_status FROM transitions WHERE unit = ? "
                   "ORDER BY ts_usec, id", ("upstart-runit",))
check([r[0] for r in rows] == ["stop", "restart", "crash", "restart", "stop", "restart", "crash"],
      f"the runit finish stored {rows}")
check(rows[2][1:] == ("killed", 11), f"the core-dumping SEGV was stored as {rows[2]}")

# Bad arguments: exit 2 naming the flag.
for args, flag in [(("", "started"), "--unit"), (("a", "exploded"), "--event"),
                   (("a", "started", "--exit-status", "1"), "--exit-status"),
                   (("a", "stopped", "--exit-status", "300"), "--exit-status"),
                   (("a", "stopped", "--signal", "NOPE"), "--signal"),
                   (("a", "started", "--failed"), "--failed")]:
    out = emit(*args)
    check(out.returncode == 2 and flag in out.stderr,
          f"emit {args} exited {out.returncode}, stderr {out.stderr!r}")

out = run_cli("run", "--bus", um.bus, "--db", os.path.join(work, "unused.db"), "--rules",
              rules_path, "--emit-socket", os.path.join(work, "unused.sock"), "--emit-group",
              "cb-no-such-group")
check(out.returncode == 2 and "--emit-group 'cb-no-such-group'" in out.stderr,
      f"an unknown --emit-group: exit {out.returncode}, stderr {out.stderr!r}")
check(not os.path.exists(os.path.join(work, "unused.db")), "a usage error wrote a database")

# A user outside any allowed group: the file mode refuses it, and where an operator loosened
# the mode, the daemon refuses it by its credentials, logging the uid once.
out = emit("upstart-user", "started", user=um.user)
check(out.returncode == 1 and "Permission denied" in out.stderr,
      f"a stranger's emit exited {out.returncode}: {out.stderr}")
os.chmod(sock, 0o666)
for _ in range(2):
    out = emit("upstart-user", "started", user=um.user)
    check(out.returncode == 1 and f"uid {um.uid} is not root" in out.stderr,
          f"a stranger's emit on a 0666 socket exited {out.returncode}: {out.stderr}")
check(cerberus.output().count(f"refused uid {um.uid}") == 1,
      f"the refusal is not logged once: {cerberus.output()}")
check(events("upstart-user") == [], "a refused event was stored")
# A client mid-request when the daemon stops is told that nothing was stored (or reset, when
# it was still in the backlog), never left to guess: `cerberus emit` then appends it itself.
late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
late.connect(sock)
late.sendall(b'{"unit": "upstart-late",')
check(cerberus.stop() == 0, "cerberus did not stop cleanly")
check(not os.path.exists(sock), "the socket outlived the daemon")
late.settimeout(10)
try:
    told = json.loads(late.recv(4096))
    check(told["ok"] is False and told.get("stopping") is True,
          f"a client mid-request at the stop was told {told}")
except ConnectionResetError:
    pass
late.close()

# With --emit-group naming a group the user belongs to (a supplementary one), it may feed.
subprocess.run(["groupdel", group], capture_output=True)
check(subprocess.run(["groupadd", group]).returncode == 0, "groupadd failed")
at_exit(lambda: subprocess.run(["groupdel", group], capture_output=True))
check(subprocess.run(["gpasswd", "-a", um.user, group], capture_output=True).returncode == 0,
      "gpasswd failed")
cerberus = daemon("--emit-group", group)
st = os.stat(sock)
check(st.st_mode & 0o777 == 0o660 and st.st_gid == int(subprocess.check_output(
    ["getent", "group", group], text=True).split(":")[2]), "the socket is not 0660 with the group")
emitted("upstart-user", "started", user=um.user)
check(events("upstart-user") == ["start"], f"the member's event is missing: {events('upstart-user')}")
check(cerberus.stop() == 0, "cerberus did not stop cleanly")

# The daemon is down: emit appends to the database and says so.
down = "upstart-down"
out = emitted(down, "stopped", "--exit-status", "2")
check("appended" in out.stderr, f"the fallback did not say so: {out.stderr}")
for _ in range(2):
    emitted(down, "stopped", "--signal", "SEGV")
check(events(down) == ["crash", "restart", "crash", "restart", "crash"],
      f"unexpected rows while down: {events(down)}")
check(db_rows(db, "SELECT count(*) FROM unevaluated")[0][0] == 5, "the rows are not marked")
# Only into a database that exists: a mistyped --db does not swallow the event.
missing = os.path.join(work, "typo.db")
out = run_cli("emit", "--unit", down, "--event", "started", "--socket", sock, "--db", missing)
check(out.returncode == 3 and f"no database at '{missing}'" in out.stderr,
      f"emit into a missing database exited {out.returncode}: {out.stderr}")
check(not os.path.exists(missing), "the fallback created a database")

# The next start evaluates them: the alert fires once; a second restart does not repeat it.
cerberus = daemon()
wait_for(lambda: fired(cerberus, down) == 1, 10, "the alert for rows stored while down")
wait_for(lambda: db_rows(db, "SELECT count(*) FROM unevaluated")[0][0] == 0, 10,
         "the unevaluated marks to clear")
check(cerberus.stop() == 0, "cerberus did not stop cleanly")
cerberus = daemon()
emitted("upstart-other", "stopped", "--exit-status", "0")  # a round trip: the start is over
check(cerberus.stop() == 0, "cerberus did not stop cleanly")
check(fired(cerberus, down) == 0, f"the alert was told again: {cerberus.output()}")
check(db_rows(db, "SELECT count(*) FROM alerts WHERE unit = ?", (down,))[0][0] == 1,
      "a second alert row for the same loop")
print("ok: emitted crash loop alerted, permissions enforced, rows stored while down alerted once")
