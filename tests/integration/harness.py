"""Shared pieces of the integration tests: a real systemd user manager (tests/harness/
usermgr.sh), a real cerberus process with a notify socket, and the real database.

Each test owns its user, its manager and its temp dir, so tests may run in parallel.
Everything started here is stopped by PID when the test ends."""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

CERBERUS = os.environ.get("CERBERUS", "cerberus")
SOURCE_ROOT = os.environ.get("CERBERUS_SOURCE_ROOT",
                             os.path.dirname(os.path.dirname(os.path.dirname(
                                 os.path.abspath(__file__)))))
USERMGR = os.path.join(SOURCE_ROOT, "tests", "harness", "usermgr.sh")

_cleanups = []


def at_exit(fn):
    _cleanups.append(fn)


@atexit.register
def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up the rest
            print(f"cleanup failed: {e}", file=sys.stderr)


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def require_root():
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        fail("integration tests need root to start a systemd user manager, and under CI=true "
             "they must run, not skip")
    print("SKIP: needs root to start a real systemd user manager; run 'make test' as root")
    sys.exit(77)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


METRIC_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
METRIC_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_metrics(text):
    """Prometheus text format to {(name, frozenset of (label, value)): float}, label values
    unescaped; fails on a line that is neither a comment nor a sample."""
    def unescape(value):
        return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = METRIC_SAMPLE.match(line)
        check(match, f"a sample line in the text format: {line!r}")
        labels = frozenset((k, unescape(v)) for k, v in METRIC_LABEL.findall(match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def wait_for(predicate, timeout, what, interval=0.02):
    """Polls `predicate` every `interval` seconds until it returns a true value; fails after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tempdir(prefix):
    path = tempfile.mkdtemp(prefix=f"cerberus-{prefix}-")
    os.chmod(path, 0o755)
    if not os.environ.get("CERBERUS_KEEP_TMP"):
        at_exit(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


class UserManager:
    """A real `systemd --user` for a dedicated user, with its own session bus."""

    def __init__(self, test_name, journal=False):
        # CERBERUS_TEST_USER_PREFIX keeps two checkouts testing at once off each other's users.
        prefix = os.environ.get("CERBERUS_TEST_USER_PREFIX", "cb-")
        self.user = (prefix + test_name.replace("_", ""))[:30]
        self.state = tempdir("um-" + test_name)
        env = dict(os.environ, UM_JOURNAL="1" if journal else "0")
        out = subprocess.run(["bash", USERMGR, "start", self.user, self.state], env=env,
                             capture_output=True, text=True)
        at_exit(self.stop)
        if out.returncode != 0:
            fail(f"could not start the user manager: {out.stderr.strip()}")
        info = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
        self.uid = int(info["UM_UID"])
        self.bus = info["UM_BUS"]
        self.unitdir = info["UM_UNITDIR"]
        self.runtime = info["UM_RUNTIME"]
        self.pid = int(info["UM_SYSTEMD_PID"])
        self.units = []

    def stop(self):
        for unit in self.units:
            self.systemctl("stop", unit, check=False)
        subprocess.run(["bash", USERMGR, "stop", self.state], capture_output=True)

    def _env(self):
        return ["env", f"XDG_RUNTIME_DIR={self.runtime}", f"DBUS_SESSION_BUS_ADDRESS={self.bus}"]

    def systemctl(self, *args, check=True):
        out = subprocess.run(["runuser", "-u", self.user, "--"] + self._env() +
                             ["systemctl", "--user", "--no-ask-password"] + list(args),
                             capture_output=True, text=True)
        if check and out.returncode != 0:
            fail(f"systemctl --user {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def show(self, unit, *props):
        out = self.systemctl("show", unit, "-p", ",".join(props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def n_restarts(self, unit):
        return int(self.show(unit, "NRestarts")["NRestarts"])

    def write_unit(self, name, text):
        path = os.path.join(self.unitdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, self.uid, self.uid)

    def add_units(self, units):
        """units: {file name: text}. Writes them and reloads the manager."""
        for name, text in units.items():
            self.write_unit(name, text)
        self.systemctl("daemon-reload")

    def start(self, *units):
        self.units.extend(units)
        self.systemctl("start", "--no-block", *units)


def crashloop_unit(exit_status=3, run_for="0", restart_sec="100ms", burst=None, fixed=None,
                   description="crash loop"):
    """A Restart=always service that exits `exit_status` after `run_for` seconds. When the
    file `fixed` exists it runs for good instead: a test "fixes" the unit that way and then
    reads NRestarts, which a stop would lose (a stopped unit is unloaded; reloaded, its
    counter starts at 0)."""
    limit = "StartLimitIntervalSec=0\n" if burst is None else \
        f"StartLimitIntervalSec=60\nStartLimitBurst={burst}\n"
    fix = f"test -e {fixed} && exec sleep infinity; " if fixed else ""
    return (f"[Unit]\nDescription={description}\n{limit}\n[Service]\n"
            f"ExecStart=/bin/sh -c '{fix}sleep {run_for}; exit {exit_status}'\n"
            f"Restart=always\nRestartSec={restart_sec}\n")


def fix(flag):
    open(flag, "w").close()


class Cerberus:
    """`cerberus run` as a real process; start() returns once it has sent READY=1."""

    def __init__(self, db, bus, args=(), wrapper=()):
        self.db = db
        self.bus = bus
        self.args = list(args)
        self.wrapper = list(wrapper)  # a command that runs cerberus, e.g. prlimit
        self.proc = None
        self.dir = tempdir("run")
        self.log_path = os.path.join(self.dir, "cerberus.log")
        at_exit(self.kill)

    def start(self, timeout=20):
        notify_path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.wrapper + [CERBERUS, "run", "--db", self.db,
                                                     "--bus", self.bus] + self.args, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    message = sock.recv(4096).decode()
                except socket.timeout:
                    if self.proc.poll() is not None:
                        fail(f"cerberus exited with {self.proc.returncode} before it was "
                             f"ready: {self.output()}")
                    continue
                if "READY=1" in message.split("\n"):
                    return self
            fail(f"cerberus did not send READY=1 within {timeout}s: {self.output()}")
        finally:
            sock.close()

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail(f"cerberus did not exit within {timeout}s of SIGTERM")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def run_cli(*args, env=None):
    return subprocess.run([CERBERUS] + list(args), capture_output=True, text=True, env=env)


def db_rows(db, sql, params=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def count(db, unit, event, source=None):
    sql = "SELECT count(*) FROM transitions WHERE unit = ? AND event = ?"
    params = [unit, event]
    if source:
        sql += " AND source = ?"
        params.append(source)
    return db_rows(db, sql, params)[0][0]


def restart_numbers(db, unit):
    return [r[0] for r in db_rows(
        db, "SELECT n_restarts FROM transitions WHERE unit = ? AND event = 'restart' ORDER BY id",
        (unit,))]


def await_recorded_restarts(um, db, unit, timeout=15):
    """Waits until the stored restart rows of `unit` equal systemd's NRestarts, and checks
    they are numbered like systemd's counter (1..N, nothing twice). Call once the unit has
    stopped restarting."""
    target = um.n_restarts(unit)
    wait_for(lambda: count(db, unit, "restart") == target, timeout,
             f"{target} restart rows of {unit} (have {count(db, unit, 'restart')})")
    numbers = restart_numbers(db, unit)
    check(numbers == list(range(1, target + 1)),
          f"restart rows of {unit} are numbered {numbers}, expected 1..{target}")
    return target


def history_json(db, *args):
    out = run_cli("history", "--db", db, "--json", *args)
    check(out.returncode == 0, f"cerberus history failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)
