"""/metrics cannot starve the daemon. Idle TCP connections from any local user (50, then
1,100 against a file-descriptor limit of 1,024) neither stall a scrape nor take the
descriptors the daemon needs: a scrape still answers within two seconds, `cerberus emit`
still stores, and a crash loop that runs through the flood is recorded whole (its restart
rows equal systemd's NRestarts). The daemon raises its soft descriptor limit to the hard
one at start-up, as systemd recommends, and holds only a few descriptors for /metrics
whatever clients do."""
import errno
import json
import os
import resource
import socket
import time
import urllib.request

from harness import (Cerberus, UserManager, at_exit, await_recorded_restarts, check, count,
                     crashloop_unit, db_rows, fix, free_port, require_root, run_cli, tempdir,
                     wait_for)

require_root()
um = UserManager("metricsflood")
work = tempdir("metrics-flood")
db = os.path.join(work, "history.db")
sock = os.path.join(work, "emit.sock")
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["looping.service"],
                      "when": {"event": "crash", "count": 3, "within": "5m"},
                      "notify": ["log"]}]}, open(rules_path, "w"))
flag = os.path.join(work, "fixed")
um.add_units({"looping.service": crashloop_unit(exit_status=3, fixed=flag)})
os.chown(work, um.uid, um.uid)

# The clients below need more descriptors than a shell's default.
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))


address = f"127.0.0.1:{free_port()}"
host, port = address.split(":")


def scrape_seconds():
    """Seconds a whole scrape took; fails unless it answers 200 within 2 s."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as response:
            check(response.status == 200, f"GET /metrics answered {response.status}")
            body = response.read().decode()
    except OSError as e:
        fail_after = time.monotonic() - started
        check(False, f"a scrape failed after {fail_after:.2f}s during the flood: {e}")
    check("cerberus_units_tracked" in body, f"a scrape without its samples: {body[:200]}")
    return time.monotonic() - started


def idle_connections(n):
    """n TCP connections that never send a byte (non-blocking connects: beyond the listen
    backlog they wait for the kernel to retry)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex((host, int(port)))
        check(err in (0, errno.EINPROGRESS), f"connect failed: {os.strerror(err)}")
        held.append(s)
    at_exit(lambda: [s.close() for s in held])
    return held


def fds_of(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_files_limit(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return tuple(int(v) for v in line.split()[3:5])
    return None


def emit_stores(unit):
    out = run_cli("emit", "--unit", unit, "--event", "started", "--socket", sock, "--db", db)
    check(out.returncode == 0, f"emit during the flood exited {out.returncode}: {out.stderr}")
    check(count(db, unit, "start", "emit") == 1, f"the emitted start of {unit} is not stored")


# systemd's default for services: soft 1024, hard 524288 (here 4096). The daemon takes the
# hard limit as its own at start-up.
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--metrics", address,
                                 "--emit-socket", sock],
                    wrapper=["prlimit", "--nofile=1024:4096", "--"]).start()
pid = cerberus.proc.pid
check(open_files_limit(pid) == (4096, 4096),
      f"the soft descriptor limit is raised to the hard one: {open_files_limit(pid)}")
baseline_fds = fds_of(pid)
check(scrape_seconds() < 2, "a scrape before the flood")

# A client that trickles its request a byte at a time is closed when its time is up (2 s
# from connect), however often it sends: a read timeout alone would keep it forever.
trickle = socket.create_connection((host, int(port)))
trickle.settimeout(0.3)
connected = time.monotonic()
closed_after = None
for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
    try:
        trickle.sendall(bytes([byte]))
        if trickle.recv(1) == b"":
            closed_after = time.monotonic() - connected
            break
    except socket.timeout:
        continue
    except OSError:
        closed_after = time.monotonic() - connected
        break
trickle.close()
check(closed_after is not None and closed_after < 3,
      f"a trickling client was closed after {closed_after}s")

# 50 idle connections: with two workers and 5 s reads, ten of these stalled every scrape.
held = idle_connections(50)
time.sleep(0.2)  # let the connections reach the daemon; nothing to await on their side
took = scrape_seconds()
print(f"scrape with 50 idle connections open: {took:.3f}s")
check(took < 2, f"a scrape with 50 idle connections took {took:.2f}s")
emit_stores("upstart-during-50")
for s in held:
    s.close()

# Now the cap is the only defence: the limit lowered to 1,024 hard, 1,100 idle connections,
# and a crash loop running through it all.
check(os.system(f"prlimit --pid {pid} --nofile=1024:1024") == 0, "prlimit failed")
um.start("looping.service")
held = idle_connections(1100)
wait_for(lambda: count(db, "looping.service", "crash") >= 3, 30, "the loop to crash 3 times")
peak = fds_of(pid)
took = max(scrape_seconds() for _ in range(5))
print(f"slowest of 5 scrapes with 1,100 idle connections open: {took:.3f}s; daemon fds "
      f"{baseline_fds} before, {peak} during")
check(took < 2, f"a scrape with 1,100 idle connections took {took:.2f}s")
check(peak <= baseline_fds + 16 + 4,
      f"the daemon holds {peak} descriptors during the flood, {baseline_fds} before")
emit_stores("upstart-during-1100")
check(cerberus.alive(), f"cerberus died during the flood: {cerberus.output()}")
for s in held:
    s.close()

fix(flag)
wait_for(lambda: um.show("looping.service", "SubState")["SubState"] == "running", 30,
         "the fixed unit to run")
restarts = await_recorded_restarts(um, db, "looping.service")
check(restarts >= 2, f"the loop restarted only {restarts} times")
check(count(db, "looping.service", "crash") == restarts,
      f"{count(db, 'looping.service', 'crash')} crash rows for {restarts} restarts")
check(db_rows(db, "SELECT state FROM alerts WHERE unit = 'looping.service'") == [("firing",)],
      "the crash loop's alert fired")
check(cerberus.stop() == 0, f"cerberus stops cleanly: {cerberus.output()}")
print("ok")
