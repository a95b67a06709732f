"""A real system manager for the integration tests: systemd 252 booted as PID 1 in a
container (tests/harness/sysmgr.sh) with its own system bus, and cerberus installed in it as
a system service from examples/cerberus.service, running the freshly built binary.

The container's root file system is cached (the first run builds it with debootstrap, a
few minutes); each container runs on a throw-away overlay and is stopped by PID at exit."""
import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import time

from harness import CERBERUS, SOURCE_ROOT, at_exit, check, fail, tempdir, wait_for

SYSMGR = os.path.join(SOURCE_ROOT, "tests", "harness", "sysmgr.sh")
UNIT_DIR = "/usr/local/lib/systemd/system"
RULES = "/etc/cerberus/test-rules.json"
DB = "/var/lib/cerberus/cerberus.db"


def require_container():
    """Booting a container needs root, debootstrap and systemd-nspawn. Outside CI a machine
    without them skips, saying why; under CI=true it fails (make deps installs the tools)."""
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "nsenter")
               if shutil.which(tool) is None
               and not os.path.exists(os.path.join("/usr/sbin", tool))]
    reason = None
    if os.geteuid() != 0:
        reason = "needs root to boot systemd in a container (systemd-nspawn)"
    elif missing:
        reason = (f"{', '.join(missing)} missing; install debootstrap and systemd-container "
                  "(make deps)")
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        fail(f"{reason}; under CI=true this test must run, not skip")
    print(f"SKIP: {reason}")
    raise SystemExit(77)


def wait_until(predicate, timeout, what, interval=0.1):
    """harness.wait_for, polling less often: each poll enters the container."""
    return wait_for(predicate, timeout, what, interval=interval)


class Container:
    """systemd as PID 1 in a container booted from the cached root, with `binds`
    (systemd-nspawn --bind/--bind-ro arguments); stopped by PID at exit."""

    def __init__(self, test_name, binds):
        self.state = tempdir("sm-" + test_name)
        started = time.monotonic()
        # Built once per machine; its progress goes to the test's log.
        if subprocess.run(["bash", SYSMGR, "rootfs"], stdout=subprocess.DEVNULL).returncode != 0:
            fail("could not build the container's root file system (see above)")
        if time.monotonic() - started > 5:
            print(f"root file system built in {time.monotonic() - started:.0f}s")
        started = time.monotonic()
        out = subprocess.run(["bash", SYSMGR, "start", self.state] + binds,
                             capture_output=True, text=True)
        at_exit(self.stop)
        if out.returncode != 0:
            fail(f"could not boot the container: {out.stderr.strip()}")
        info = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
        self.init_pid = int(info["SM_INIT_PID"])
        self.nspawn_pid = int(info["SM_NSPAWN_PID"])
        self.root = f"/proc/{self.init_pid}/root"
        print(f"container booted ({info['SM_STATE']}) in {time.monotonic() - started:.1f}s, "
              f"PID 1 is {self.init_pid} on the host")

    def stop(self):
        subprocess.run(["bash", SYSMGR, "stop", self.state], capture_output=True)

    def run(self, *args, check=True, timeout=60):
        out = subprocess.run(["nsenter", "--target", str(self.init_pid), "--all"] + list(args),
                             capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            fail(f"'{' '.join(args)}' in the container failed ({out.returncode}): "
                 f"{out.stderr.strip()}")
        return out

    def systemctl(self, *args, check=True):
        return self.run("systemctl", "--no-ask-password", *args, check=check).stdout

    def show(self, unit, *props):
        out = self.systemctl("show", unit, "-p", ",".join(props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def n_restarts(self, unit):
        return int(self.show(unit, "NRestarts")["NRestarts"])

    def services(self):
        """Every loaded service unit with its NRestarts: {unit: n}."""
        names = [line.split()[0] for line in self.systemctl(
            "list-units", "--all", "--type=service", "--plain", "--no-legend").splitlines()
            if line.strip()]
        result = {}
        for block in self.systemctl("show", "-p", "Id,NRestarts", *names).split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if props.get("NRestarts", "") != "":
                result[props["Id"]] = int(props["NRestarts"])
        return result

    def touch(self, path):
        self.run("sh", "-c", f'mkdir -p "$(dirname "{path}")" && touch "{path}"')

    def sql(self, query):
        """Rows of `query` on cerberus's database, read inside the container (SQLite
        resolves /proc/PID/root to the host's /, so it cannot open it from outside)."""
        out = self.run("sqlite3", "-readonly", "-json", DB, query)
        return json.loads(out.stdout) if out.stdout.strip() else []

    @contextlib.contextmanager
    def network(self):
        """Sockets made in this block belong to the container's network (its 127.0.0.1):
        the calling thread enters the namespace and leaves it at the end. A server bound
        here keeps serving the container from a thread of the test."""
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        theirs = os.open(f"/proc/{self.init_pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(theirs, clone_newnet) != 0:
                fail(f"cannot enter the container's network: {os.strerror(ctypes.get_errno())}")
            try:
                yield
            finally:
                if libc.setns(own, clone_newnet) != 0:
                    fail(f"cannot leave the container's network: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(own)
            os.close(theirs)

    def journal_entries(self, *matches):
        """Journal entries (dicts of fields) matching `matches` (journalctl arguments)."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *matches, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def journal(self, unit, lines=30):
        return self.run("journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit,
                        check=False).stdout


class SystemManager(Container):
    """systemd as PID 1 in a container, with `units` ({file name: text}) installed in
    /usr/local/lib/systemd/system and cerberus.service ready but not started."""

    def __init__(self, test_name, units, rules):
        unitdir = tempdir("sm-units-" + test_name)
        for name, text in dict(units, **{"cerberus.service": cerberus_service()}).items():
            with open(os.path.join(unitdir, name), "w") as f:
                f.write(text)
        super().__init__(test_name, [
            f"--bind-ro={os.path.abspath(CERBERUS)}:/usr/local/bin/cerberus",
            f"--bind-ro={unitdir}:{UNIT_DIR}",
            f"--bind-ro={os.path.abspath(rules)}:{RULES}"])
        # cerberus.service runs as the system user that examples/cerberus.sysusers makes.
        os.makedirs(f"/proc/{self.init_pid}/root/run/sysusers.d", exist_ok=True)
        shutil.copy(os.path.join(SOURCE_ROOT, "examples", "cerberus.sysusers"),
                    f"/proc/{self.init_pid}/root/run/sysusers.d/cerberus.conf")
        self.run("systemd-sysusers", "cerberus.conf")
        # The binary was built on the host: every library it needs must be in the root.
        ldd = self.run("ldd", "/usr/local/bin/cerberus", check=False)
        missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
        check(ldd.returncode == 0 and not missing,
              f"cerberus cannot run in the container, libraries missing: {missing or ldd.stderr}; "
              "add their Debian packages to 'packages' in tests/harness/sysmgr.sh")


def cerberus_service():
    """examples/cerberus.service as shipped, with the test's rules file."""
    with open(os.path.join(SOURCE_ROOT, "examples", "cerberus.service")) as f:
        text = f.read()
    shipped = "ExecStart=/usr/local/bin/cerberus run "
    check(shipped in text, f"examples/cerberus.service has no '{shipped}' line")
    return text.replace(shipped, f"{shipped}--rules {RULES} ")
