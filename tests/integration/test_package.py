"""The Debian package on a real system manager: `make deb` (a no-op when the .deb is newer
than every file git knows), then, in a container booted with systemd 252 as PID 1
(tests/harness/sysmgr.sh), what an operator checks after `apt install ./cerberus_*.deb`:

- the service is enabled and active (Type=notify: READY=1 was sent), the watchdog is fed,
  and it runs as the user its unit names;
- with /etc/cerberus/rules empty it runs the shipped rules: a crash-looping system unit is
  recorded in /var/lib/cerberus/cerberus.db and raises the shipped crashloop alert;
- rules in /etc/cerberus/rules are taken (after a restart: the daemon picks its rules
  directory at start), and `systemctl reload cerberus` applies a change;
- the installed files: man pages that man renders, the completion, the schema the shipped
  rules name;
- `systemctl stop` and `apt remove` stop it and keep the history; purge deletes it.

The container has no network: apt installs the local .deb, whose dependencies the cached
root already holds (its package list in sysmgr.sh includes cerberus's run-time libraries
and procps, whose kill the unit's ExecReload runs)."""
import glob
import json
import os
import subprocess
import time

from harness import SOURCE_ROOT, check, crashloop_unit, fail
from sink import Sink
from sysmgr import Container, require_container, wait_until

require_container()

DEB_DIR = os.path.join(SOURCE_ROOT, "build", "deb")
DB = "/var/lib/cerberus/cerberus.db"
LOOP = "pkgtest-loop.service"

started = time.monotonic()
make = subprocess.run(["make", "-C", SOURCE_ROOT, "deb"], capture_output=True, text=True)
if make.returncode != 0:
    fail(f"make deb failed ({make.returncode}):\n{make.stdout[-4000:]}\n{make.stderr[-4000:]}")
debs = [d for d in glob.glob(os.path.join(DEB_DIR, "cerberus_*.deb"))]
check(len(debs) == 1, f"make deb left {debs} in {DEB_DIR}, not one cerberus_*.deb")
deb = os.path.basename(debs[0])
print(f"make deb: {deb} ready in {time.monotonic() - started:.0f}s")

sm = Container("package", [f"--bind-ro={DEB_DIR}:/srv/deb"])


def sh(script, check=True):
    return sm.run("sh", "-c", script, check=check)


def apt(*args):
    out = sm.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q", *args,
                 check=False, timeout=180)
    check(out.returncode == 0, f"apt-get {' '.join(args)} failed ({out.returncode}): "
          f"{out.stdout[-2000:]} {out.stderr[-2000:]}")
    return out.stdout


def state(unit="cerberus.service"):
    return sm.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts")


def alerts(rule):
    return sm.sql(f"SELECT rule, unit, state FROM alerts WHERE rule = '{rule}' AND "
                  f"unit = '{LOOP}' ORDER BY id")


def write(path, text):
    """Writes a file in the container the way an editor would: whole, then renamed."""
    sh(f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}.tmp' <<'EOF'\n{text}\nEOF\n"
       f"mv '{path}.tmp' '{path}'")
    check(sh(f"cat '{path}'").stdout.strip() == text.strip(), f"could not write {path}")


# --- install -----------------------------------------------------------------------------
check(sm.run("test", "-e", "/var/lib/cerberus", check=False).returncode != 0,
      "the container has /var/lib/cerberus before the package was installed")
apt("install", f"/srv/deb/{deb}")
enabled = sm.systemctl("is-enabled", "cerberus.service", check=False).strip()
check(enabled == "enabled", f"the package left cerberus.service '{enabled}', not enabled")
props = state()
check(props["ActiveState"] == "active" and props["SubState"] == "running",
      f"cerberus.service is {props} after install:\n{sm.journal('cerberus.service')}")
watchdog = sm.show("cerberus.service", "WatchdogUSec", "WatchdogTimestampMonotonic")
check(int(watchdog["WatchdogTimestampMonotonic"] or 0) > 0,
      f"no watchdog timestamp after start: {watchdog}")
print(f"installed: active, enabled, watchdog every {watchdog['WatchdogUSec']}")

pid = props["MainPID"]
user = sm.run("ps", "-o", "user=", "-p", pid).stdout.strip()
unit_user = sm.show("cerberus.service", "User", "DynamicUser")
print(f"the daemon (PID {pid} in the container) runs as '{user}'; unit: {unit_user}")
if unit_user.get("User") or unit_user.get("DynamicUser") == "yes":
    check(user != "root", f"the unit names {unit_user} but the daemon runs as root")

# --- the shipped rules record and alert a crash loop of a system unit --------------------
check(sh("ls -A /etc/cerberus/rules").stdout.strip() == "",
      "the package put files in /etc/cerberus/rules")
write(f"/etc/systemd/system/{LOOP}", crashloop_unit())
sm.systemctl("daemon-reload")
sm.systemctl("start", LOOP, check=False)
wait_until(lambda: alerts("crashloop"), 60,
           f"the shipped rule 'crashloop' to fire for {LOOP} (default.json, /etc empty)",
           interval=0.5)
crashes = sm.sql(f"SELECT count(*) AS n FROM transitions WHERE unit = '{LOOP}' "
                 "AND event = 'crash'")[0]["n"]
check(crashes >= 3, f"the crash loop fired with {crashes} crash rows in {DB}")
print(f"the shipped rules: {LOOP} recorded ({crashes} crashes), alert {alerts('crashloop')}")

# --- the operator's rules in /etc/cerberus/rules, then a change applied by reload --------
OTHER = "pkgtest-other.service"


HOOK_PORT = 18081  # the container's own loopback: nothing else listens there


def site_rules(*names):
    return json.dumps({
        "receivers": {"log": {"type": "log"},
                      "hook": {"type": "webhook", "url": f"http://127.0.0.1:{HOOK_PORT}/hook"}},
        "rules": [{"name": name, "units": [OTHER],
                   "when": {"event": "crash", "count": 2, "within": "5m"},
                   "notify": ["log", "hook"], "summary": "{unit} crashed {count} times"}
                  for name in names]})


def other_alerts():
    return {row["rule"] for row in sm.sql(
        f"SELECT rule FROM alerts WHERE unit = '{OTHER}' AND state = 'firing'")}


with sm.network():
    sink = Sink({"/hook": ["200"]}, port=HOOK_PORT)
write("/etc/cerberus/rules/site.json", site_rules("site-first"))
# The daemon chose its rules at start (the shipped ones, /etc being empty): a restart
# switches it to /etc/cerberus/rules; a reload then reads that directory again.
sm.systemctl("restart", "cerberus.service")
write("/etc/cerberus/rules/site.json", site_rules("site-first", "site-second"))
before = state()
sm.systemctl("reload", "cerberus.service")  # returns once cerberus sent READY=1 again
after = state()
check(after["MainPID"] == before["MainPID"] and after["ActiveState"] == "active",
      f"the reload restarted or stopped cerberus: {before} -> {after}")
# A unit that starts crash-looping after the reload: both rules of /etc fire, the shipped
# ones (no longer in force) do not.
write(f"/etc/systemd/system/{OTHER}", crashloop_unit())
sm.systemctl("daemon-reload")
sm.systemctl("start", OTHER, check=False)
wait_until(lambda: other_alerts() >= {"site-first", "site-second"}, 60,
           f"the rules of /etc/cerberus/rules, one added by the reload, to fire for {OTHER} "
           f"(firing: {other_alerts()})", interval=0.5)
check(other_alerts() == {"site-first", "site-second"},
      f"rules not in /etc/cerberus/rules fired for {OTHER}: {other_alerts()}")
print(f"restart took /etc/cerberus/rules; reload added 'site-second' (same PID); {OTHER} "
      f"fired {sorted(other_alerts())} only")
# Delivered by the packaged, unprivileged daemon to a webhook on the container's loopback.
wait_until(lambda: len(sink.received("/hook", status="firing")) >= 2, 30,
           "both firing alerts at the webhook sink", interval=0.5)
told = sorted(json.loads(r["body"])["rule"] for r in sink.received("/hook", status="firing"))
check(told == ["site-first", "site-second"], f"the webhook was told {told}")
sink.stop()
print(f"webhook sink received {told}")

# --- its log: journalctl -p err shows errors only ---------------------------------------
info = sm.run("journalctl", "--no-pager", "-o", "cat", "-u", "cerberus.service",
              "-p", "info", check=False).stdout
check("following the system bus" in info,
      f"the start-up line is not in cerberus's journal at priority info:\n{info[-2000:]}")
errors = sm.journal_entries("-u", "cerberus.service", "-p", "err")
check(all(int(e.get("PRIORITY", "6")) <= 3 for e in errors) and
      not any("following the system bus" in e.get("MESSAGE", "") for e in errors),
      f"journalctl -p err shows more than errors: {[e.get('MESSAGE') for e in errors]}")
print(f"journalctl -u cerberus -p err: {len(errors)} entries, all errors: "
      f"{[e.get('MESSAGE') for e in errors]}")

# --- files an operator reads ----------------------------------------------------------------
for page, words in (("man1/cerberus.1.gz", "cerberus run"),
                    ("man5/cerberus-rules.5.gz", "resolve_when_up_for")):
    path = f"{sm.root}/usr/share/man/{page}"
    text = subprocess.run(["man", "-l", path], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    check(text.returncode == 0 and words in text.stdout,
          f"man -l {page} from the package does not render '{words}': {text.stderr}")
schema = sh("cd /usr/share/cerberus/rules && "
            "sed -n 's/.*\"\\$schema\": *\"\\([^\"]*\\)\".*/\\1/p' default.json").stdout.strip()
check(schema and sm.run("test", "-f", f"/usr/share/cerberus/rules/{schema}",
                        check=False).returncode == 0,
      f"the installed default.json names $schema '{schema}', which is not installed")
check(sm.run("test", "-f", "/usr/share/bash-completion/completions/cerberus",
             check=False).returncode == 0, "no bash completion installed")
print(f"man pages render; $schema {schema} resolves; bash completion installed")

# --- watchdog: fed while running ------------------------------------------------------------
first = int(sm.show("cerberus.service", "WatchdogTimestampMonotonic")
            ["WatchdogTimestampMonotonic"])
wait_until(lambda: int(sm.show("cerberus.service", "WatchdogTimestampMonotonic")
                       ["WatchdogTimestampMonotonic"]) > first, 40,
           "the watchdog timestamp to advance (WATCHDOG=1)", interval=1)
check(state()["NRestarts"] == "0", f"cerberus restarted: {state()}")
print("watchdog: WATCHDOG=1 received, no restart")

# --- stop, remove, purge --------------------------------------------------------------------
sm.systemctl("stop", "cerberus.service")
check(state()["ActiveState"] == "inactive", f"stop left cerberus {state()}")
check(sm.run("test", "-s", DB, check=False).returncode == 0, f"stop lost {DB}")
sm.systemctl("start", "cerberus.service")
apt("remove", "cerberus")
check(state()["ActiveState"] in ("inactive", "failed") and state()["MainPID"] == "0",
      f"apt remove left cerberus running: {state()}")
rows = sm.sql(f"SELECT count(*) AS n FROM transitions WHERE unit = '{LOOP}'")[0]["n"]
check(rows > 0, f"apt remove lost the history in {DB}")
check(sm.run("test", "-e", "/usr/bin/cerberus", check=False).returncode != 0,
      "apt remove left /usr/bin/cerberus")
apt("purge", "cerberus")
left = sh("ls -d /var/lib/cerberus /var/lib/private/cerberus 2>/dev/null", check=False)
check(left.stdout.strip() == "", f"purge left {left.stdout.strip()}")
print(f"stop and remove kept {DB} ({rows} rows of {LOOP}); purge deleted it")
