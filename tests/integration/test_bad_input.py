"""Bad input: one clear sentence on stderr, the documented exit code, nothing written."""
import os
import sqlite3
import subprocess

from harness import CERBERUS, check, require_root, run_cli, tempdir

work = tempdir("badinput")


def expect(args, code, words, env=None):
    out = run_cli(*args, env=env)
    check(out.returncode == code,
          f"cerberus {' '.join(args)}: exit {out.returncode}, expected {code}; stderr: {out.stderr}")
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    check(len(lines) == 1, f"cerberus {' '.join(args)}: expected one line, got {out.stderr!r}")
    for w in words:
        check(w in out.stderr, f"cerberus {' '.join(args)}: '{w}' not in {out.stderr!r}")
    return out


expect(["run", "--no-such-flag"], 2, ["--no-such-flag"])
expect(["frobnicate"], 2, ["frobnicate"])
expect(["run", "--keep", "forever", "--db", os.path.join(work, "k.db")], 2, ["--keep", "forever"])
expect(["history", "--db", os.path.join(work, "none.db"), "--event", "explode"], 2, ["explode"])
expect(["history", "--db", os.path.join(work, "none.db"), "--since", "soon"], 2, ["--since", "soon"])
expect(["silence", "add", "--db", os.path.join(work, "none.db"), "-u", "x", "--for", "5"], 2,
       ["--for", "5", "unit"])

# No bus there: exit 4 and no database left behind.
nobus_db = os.path.join(work, "nobus.db")
expect(["run", "--bus", "unix:path=" + os.path.join(work, "no-bus"), "--db", nobus_db], 4,
       ["bus"])
check(not os.path.exists(nobus_db), "a failed bus connection left a database behind")

# No systemd user manager (a user without a session): one sentence saying what is missing
# and what to do, exit 4, nothing before it (no line about the emit socket), no database.
quiet = {k: v for k, v in os.environ.items()
         if k not in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")}
nomgr_db = os.path.join(work, "nomgr.db")
fix = "run as root to follow the system manager, or start a user manager and run in its session"
expect(["run", "--bus", "user", "--db", nomgr_db], 4,
       [f"no systemd user manager for uid {os.geteuid()}: XDG_RUNTIME_DIR is not set", fix,
        "loginctl enable-linger"], env=quiet)
empty_runtime = os.path.join(work, "runtime")
os.mkdir(empty_runtime, 0o700)
expect(["run", "--bus", "user", "--db", nomgr_db], 4,
       [f"no systemd user manager for uid {os.geteuid()}: its bus {empty_runtime}/bus does not "
        "exist", fix], env=dict(quiet, XDG_RUNTIME_DIR=empty_runtime))
check(not os.path.exists(nomgr_db), "a run without a user manager left a database behind")

# The remaining cases need a bus that answers; a missing bus would win.
require_root()

# As a user who has no manager, the default bus is the user bus: the same sentence.
out = subprocess.run(["runuser", "-u", "nobody", "--", "env", "-u", "XDG_RUNTIME_DIR", "-u",
                      "DBUS_SESSION_BUS_ADDRESS", CERBERUS, "run", "--db", nomgr_db],
                     capture_output=True, text=True)
check(out.returncode == 4 and out.stderr.count("\n") == 1 and
      "no systemd user manager for uid 65534: XDG_RUNTIME_DIR is not set" in out.stderr and
      "loginctl enable-linger nobody" in out.stderr,
      f"run as nobody without a manager: exit {out.returncode}: {out.stderr!r}")
from harness import UserManager  # noqa: E402  (starts a manager only when root)

um = UserManager("badinput")
missing = os.path.join(work, "missing", "x.db")
expect(["run", "--bus", um.bus, "--db", missing], 3, [os.path.dirname(missing)])
check(not os.path.exists(os.path.dirname(missing)), "cerberus created the missing directory")

# A read-only directory, as an unprivileged user (root ignores directory permissions).
ro = os.path.join(work, "ro")
os.mkdir(ro, 0o555)
out = subprocess.run(["runuser", "-u", "nobody", "--", CERBERUS, "run", "--bus", um.bus,
                      "--db", os.path.join(ro, "x.db")], capture_output=True, text=True)
check(out.returncode in (3, 4), f"read-only directory: exit {out.returncode}: {out.stderr}")
check(not os.listdir(ro), "something was written into the read-only directory")

# A database from a newer cerberus is refused before anything is written.
newer = os.path.join(work, "newer.db")
con = sqlite3.connect(newer)
con.execute("CREATE TABLE transitions (id INTEGER PRIMARY KEY)")
con.execute("PRAGMA user_version = 999")
con.commit()
con.close()
before = open(newer, "rb").read()
expect(["run", "--bus", um.bus, "--db", newer], 3, ["999"])
expect(["history", "--db", newer], 3, ["999"])
check(open(newer, "rb").read() == before, "a newer database was modified")
check(not os.path.exists(newer + "-wal") or os.path.getsize(newer + "-wal") == 0,
      "a newer database got a WAL")

# A cerberus database with damaged pages: refused at start-up, its bytes left alone.
damaged = os.path.join(work, "damaged.db")
check(run_cli("silence", "--db", damaged, "add", "--unit", "x*", "--for", "1h").returncode == 0,
      "cannot create a database to damage")
con = sqlite3.connect(damaged)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
with open(damaged, "r+b") as f:
    f.seek(3 * 4096)
    f.write(b"\xff" * 3 * 4096)
before = open(damaged, "rb").read()
expect(["run", "--bus", um.bus, "--db", damaged, "--emit-socket", "none"], 3,
       [damaged, "malformed"])
check(open(damaged, "rb").read() == before, "a damaged database was written to")

# Not a database at all.
junk = os.path.join(work, "junk.db")
open(junk, "w").write("this is not sqlite\n" * 100)
expect(["history", "--db", junk], 3, [junk])
expect(["history", "--db", os.path.join(work, "absent.db")], 3, ["absent.db"])
print("ok")
