"""`cerberus check`, `alerts` and `replay` on files and databases built by hand: every rule
error printed with exit 1, secrets redacted, alerts listed by state, and a backtest that
fires once on a crash loop and never on an operator's restarts or a deploy. No root, no
systemd: these commands only read files."""
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

from harness import CERBERUS, SOURCE_ROOT, check, fail, run_cli, tempdir

work = tempdir("clirules")
default_rules = os.path.join(SOURCE_ROOT, "rules", "default.json")
T0 = 1764300000000000  # 2025-11-28T03:20:00Z
SEC = 1000000


def write(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def expect_exit(out, code, what):
    check(out.returncode == code,
          f"{what}: exit {out.returncode}, expected {code}; stdout: {out.stdout!r}; "
          f"stderr: {out.stderr!r}")


def new_db(name):
    path = os.path.join(work, name)
    con = sqlite3.connect(path)
    for sql in sorted(glob.glob(os.path.join(SOURCE_ROOT, "schema", "sql", "*.sql"))):
        con.executescript(open(sql).read())
        con.execute(f"PRAGMA user_version = {int(os.path.basename(sql).split('_')[0])}")
    con.commit()
    return path, con


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# check: the shipped rules are valid and listed one per line.
out = run_cli("check", "--rules", default_rules)
expect_exit(out, 0, "check on rules/default.json")
for name in ("crashloop", "give-up", "respawn"):
    check(any(line.startswith("rule") and name in line for line in out.stdout.splitlines()),
          f"check does not list rule '{name}': {out.stdout!r}")
check("receiver" in out.stdout and "log" in out.stdout, f"check lists no receiver: {out.stdout!r}")

# check: the recipes docs/RULES.md points to are valid, every one of them.
recipes = os.path.join(SOURCE_ROOT, "examples", "rules")
out = run_cli("check", "--rules", recipes)
expect_exit(out, 0, "check on examples/rules")
for name in ("oom-killed", "segfaults", "worker-flapping", "supervised-loop", "entered-failed"):
    check(any(line.startswith("rule") and name in line for line in out.stdout.splitlines()),
          f"check does not list the recipe '{name}': {out.stdout!r}")

# check: secrets are shown redacted, references by name only.
secret_url = "https://hooks.slack.com/services/T000/B000/very-secret-token"
secrets = write("secrets.json", json.dumps({
    "receivers": {"ops": {"type": "slack", "url": secret_url},
                  "oncall": {"type": "pagerduty", "routing_key": {"env": "PD_ROUTING_KEY"}}},
    "rules": [{"name": "oom", "when": {"event": "crash", "count": 1, "result": ["oom-kill"]},
               "notify": ["ops", "oncall"]}]}))
out = run_cli("check", "--rules", secrets)
expect_exit(out, 0, "check on a file with secrets")
check("very-secret-token" not in out.stdout + out.stderr, f"check printed a secret: {out.stdout!r}")
check("<redacted>" in out.stdout and "env:PD_ROUTING_KEY" in out.stdout,
      f"check does not show secrets redacted: {out.stdout!r}")

# check == run: what run and test-receiver refuse at start, check refuses with the same
# sentence and exit code. A webhook secret written in the file is checked by its format
# ("whsec_" + base64); one read from the environment only where it is read.
SENTENCE = ("/receivers/hook/secret: the secret starts with 'whsec_' but the rest is not "
            "base64; copy the whole secret as the receiver shows it")


def refusals(rules, env=None):
    """check, test-receiver and run on the same rules: {command: (exit, stderr)}."""
    db = os.path.join(work, "refused.db")
    outs = {
        "check": run_cli("check", "--rules", rules, env=env),
        "test-receiver": run_cli("test-receiver", "hook", "--rules", rules, env=env),
        "run": run_cli("run", "--rules", rules, "--db", db, "--emit-socket", "none",
                       "--bus", "unix:path=" + os.path.join(work, "no-bus"), env=env),
    }
    check(not os.path.exists(db), "run with refused receivers left a database behind")
    return {name: (out.returncode, out.stderr) for name, out in outs.items()}


hook = {"type": "webhook", "url": "http://127.0.0.1:9/alerts"}
inline = write("whsec-inline.json", json.dumps(
    {"receivers": {"hook": dict(hook, secret="whsec_!!!")}}, indent=1))
line = next(i + 1 for i, text in enumerate(open(inline)) if '"secret"' in text)
for name, (code, stderr) in refusals(inline).items():
    check(code == 1, f"{name} on a malformed inline whsec_ secret: exit {code}: {stderr!r}")
    check(f"{inline}:{line}: {SENTENCE}" in stderr,
          f"{name} does not say {inline}:{line}: {SENTENCE!r}: {stderr!r}")
    check("whsec_!!!" not in stderr, f"{name} printed the secret: {stderr!r}")
# A secret file run could not read: check finds it without reading the secret.
secret_dir = os.path.join(work, "secrets.d")
os.mkdir(secret_dir)
dir_secret = write("secret-dir.json", json.dumps(
    {"receivers": {"hook": dict(hook, secret={"file": secret_dir})}}, indent=1))
line = next(i + 1 for i, text in enumerate(open(dir_secret)) if '"file"' in text)
sentence = (f"{dir_secret}:{line}: /receivers/hook/secret/file: secret file '{secret_dir}': it "
            "is a directory, not a regular file; put the secret alone in a regular file of at "
            "most 64 KiB")
for name, (code, stderr) in refusals(dir_secret).items():
    check(code == 1 and sentence in stderr,
          f"{name} on a directory as secret file: exit {code}, expected {sentence!r}: {stderr!r}")
from_env = write("whsec-env.json", json.dumps(
    {"receivers": {"hook": dict(hook, secret={"env": "CC_HOOK_SECRET"})}}))
env = dict(os.environ, CC_HOOK_SECRET="whsec_!!!")
results = refusals(from_env, env)
check(results["check"][0] == 0, f"check cannot read the environment run will have, yet refused "
      f"{from_env}: {results['check']}")
for name in ("test-receiver", "run"):
    code, stderr = results[name]
    check(code == 1 and f"receiver 'hook' ({from_env}:1): 'secret': the secret starts with "
          "'whsec_' but the rest is not base64" in stderr and "whsec_!!!" not in stderr,
          f"{name} with a malformed whsec_ secret in the environment: exit {code}: {stderr!r}")

# check: a file with three errors prints all three, one per line, and exits 1.
broken = write("broken.json", """{
  "receivers": {"log": {"type": "log"}},
  "rules": [{
    "name": "crashloop",
    "when": {"event": "crash", "count": 0, "within": "5 mins"},
    "notify": ["pager"]
  }]
}
""")
out = run_cli("check", "--rules", broken)
expect_exit(out, 1, "check on a file with three errors")
errors = [line for line in out.stderr.splitlines() if line.startswith(broken + ":")]
check(len(errors) == 3, f"expected 3 errors, one per line, got {out.stderr!r}")
for words in (["/rules/0/when/count", "0"], ["/rules/0/when/within", "5 mins"],
              ["/rules/0/notify/0", "pager"]):
    check(any(all(w in e for w in words) for e in errors),
          f"no error names {words}: {out.stderr!r}")
check(out.stdout == "", f"check printed to stdout for invalid rules: {out.stdout!r}")


# check: hostile files are refused with one sentence naming the file (and the line where
# there is one), exit 1, never "unexpected error", never a hang or a read of /dev/zero.
def expect_refused(paths, sentence, what):
    args = ["check"]
    for path in paths:
        args += ["--rules", path]
    try:
        out = subprocess.run([CERBERUS] + args, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        fail(f"check on {what} did not return within 10 s")
    expect_exit(out, 1, f"check on {what}")
    check("unexpected error" not in out.stderr, f"check on {what}: {out.stderr!r}")
    errors = [line for line in out.stderr.splitlines() if not line.startswith("cerberus: ")]
    check(errors == [sentence], f"check on {what}: expected only {sentence!r}, got {out.stderr!r}")
    check(out.stdout == "", f"check printed to stdout for {what}: {out.stdout!r}")


overflow = write("overflow.json", '{"receivers": {"log": {"type": "log"}},\n'
                 '"rules": [{"name": "x", "when": {"event": "crash",\n'
                 '  "count": 1e999}, "notify": ["log"]}]}')
expect_refused([overflow], f"{overflow}:3:12: invalid JSON: number overflow parsing '1e999'; "
               "write a smaller number", "a number that overflows")

hostile = os.path.join(work, "hostile")
os.mkdir(hostile)
fifo = os.path.join(hostile, "x.json")
os.mkfifo(fifo)
expect_refused([hostile], f"{fifo}: it is a FIFO, not a regular file; expected a JSON rule "
               "file: replace it with a regular file or move it out of the rules directory",
               "a directory holding a FIFO named x.json")
os.unlink(fifo)
os.symlink("/dev/zero", fifo)
expect_refused([fifo], f"{fifo}: it is a character device, not a regular file; expected a JSON "
               "rule file: replace it with a regular file or move it out of the rules directory",
               "a symlink to /dev/zero")
os.unlink(fifo)
huge = write("huge.json", '{"rules": []}' + " " * (1 << 20))
expect_refused([huge], f"{huge}: it is larger than 1 MiB, the cap for one rule file; expected a "
               "JSON rule file: split it into several files in a rules directory",
               "a file over 1 MiB")

bom = write("bom.json", "\ufeff" + json.dumps({"receivers": {"log": {"type": "log"}}}))
expect_refused([bom], f"{bom}:1: the file starts with a UTF-8 byte order mark; expected JSON "
               f"without one: remove the first three bytes, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' "
               f"{bom}", "a file with a byte order mark")
# The fix the sentence gives works.
subprocess.run(["sed", "-i", r"1s/^\xEF\xBB\xBF//", bom], check=True)
expect_exit(run_cli("check", "--rules", bom), 0, "check on the file with its BOM removed")

glob_file = write("glob.json", '{"receivers": {"log": {"type": "log"}},\n"rules": [{"name": "x",'
                  '\n "units": ["web.service", "[abc"], "when": {"event": "crash"}, '
                  '"notify": ["log"]}]}')
expect_refused([glob_file], f"{glob_file}:3: /rules/0/units/1: '[abc' is not a valid glob: the "
               "'[' at position 1 is never closed with ']'; write '\\[' for a literal '[' or "
               "close the set", "a broken glob")

receivers_file = write("receivers.json", json.dumps({"receivers": {"log": {"type": "log"}}}))


def rule_file(name, prefix, n):
    return write(name, json.dumps({"rules": [
        {"name": f"{prefix}{i}", "when": {"event": "crash"}, "notify": ["log"]}
        for i in range(n)]}, indent=1))


many_a = rule_file("many-a.json", "a", 600)
many_b = rule_file("many-b.json", "b", 600)
line = next(i + 1 for i, text in enumerate(open(many_b)) if '"b400"' in text) - 1
expect_refused([receivers_file, many_a, many_b],
               f"{many_b}:{line}: rule 'b400': too many rules (1200 in all files, this is "
               "number 1001); expected at most 1000: merge rules that differ only in their units",
               "1200 rules in two files")

expect_exit(run_cli("check", "--no-such-flag"), 2, "check with an unknown flag")
expect_exit(run_cli("check", "--rules", os.path.join(work, "absent.json")), 1,
            "check on a missing file")

# alerts: firing by default, all states on request, every field in --json.
alerts_db, con = new_db("alerts.db")
insert = ("INSERT INTO alerts (rule, unit, host, dedup_key, state, severity, count, "
          "started_usec, resolved_usec, last_notified_usec, silenced) "
          "VALUES (?, ?, 'h1', ?, ?, ?, ?, ?, ?, ?, ?)")
con.execute(insert, ("crashloop", "web.service", "h1/crashloop/web.service", "firing",
                     "critical", 5, T0, None, T0, 0))
con.execute(insert, ("respawn", "db.service", "h1/respawn/db.service", "resolved", "warning",
                     7, T0 - 3600 * SEC, T0 - 3000 * SEC, T0 - 3600 * SEC, 1))
con.commit()
con.close()

out = run_cli("alerts", "--db", alerts_db, "--utc")
expect_exit(out, 0, "alerts")
lines = out.stdout.splitlines()
check(lines and lines[0].split()[:4] == ["RULE", "UNIT", "STATE", "SEVERITY"],
      f"alerts table header: {out.stdout!r}")
check(len(lines) == 2 and "web.service" in lines[1] and "2025-11-28 03:20:00.000 UTC" in lines[1],
      f"alerts shows the firing alert only: {out.stdout!r}")

out = run_cli("alerts", "--db", alerts_db, "--state", "all", "--json")
expect_exit(out, 0, "alerts --state all --json")
rows = json.loads(out.stdout)
check([a["unit"] for a in rows] == ["web.service", "db.service"], f"alerts --json: {rows}")
resolved = rows[1]
for key, value in (("state", "resolved"), ("severity", "warning"), ("count", 7),
                   ("silenced", True), ("resolved_usec", T0 - 3000 * SEC),
                   ("resolved", "2025-11-28T02:30:00.000Z"),
                   ("dedup_key", "h1/respawn/db.service"), ("host", "h1")):
    check(resolved.get(key) == value, f"alerts --json: {key} is {resolved.get(key)!r}, "
                                      f"expected {value!r}")
check(rows[0]["resolved"] is None and rows[0]["resolved_usec"] is None,
      f"a firing alert has a resolved time: {rows[0]}")

out = run_cli("alerts", "--db", alerts_db, "--state", "resolved", "--json")
check([a["rule"] for a in json.loads(out.stdout)] == ["respawn"], f"--state resolved: {out.stdout}")
expect_exit(run_cli("alerts", "--db", alerts_db, "--state", "open"), 2, "alerts --state open")
expect_exit(run_cli("alerts", "--db", os.path.join(work, "absent.db")), 3,
            "alerts on a missing database")

# replay: ten crashes one second apart fire crashloop once, two seconds after the first
# crash; five operator restarts in a minute and a deploy fire nothing.
history_db, con = new_db("history.db")
rows = []


def add(ts, unit, event, active, sub, result="success", exit_code="", status=None, n=None):
    rows.append((ts, ts, unit, event, active, sub, result, exit_code, status, n))


for i in range(10):
    t = T0 + i * SEC
    add(t, "web.service", "start", "active", "running", n=i)
    add(t + SEC // 10, "web.service", "crash", "failed", "failed", "exit-code", "exited", 3, i)
    add(t + SEC // 10, "web.service", "fail", "failed", "failed", "exit-code", "exited", 3, i)
    add(t + 9 * SEC // 10, "web.service", "restart", "activating", "auto-restart", "exit-code",
        "exited", 3, i + 1)
add(T0 + 10 * SEC, "web.service", "start", "active", "running", n=10)
for i in range(5):  # `systemctl restart db.service` five times in a minute
    add(T0 + i * 12 * SEC, "db.service", "stop", "inactive", "dead", n=0)
    add(T0 + i * 12 * SEC + SEC // 2, "db.service", "start", "active", "running", n=0)
add(T0 + 30 * SEC, "api.service", "stop", "inactive", "dead", n=0)  # a deploy
add(T0 + 32 * SEC, "api.service", "start", "active", "running", n=0)
con.executemany("INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, "
                "sub_state, result, exit_code, exit_status, n_restarts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
con.commit()
con.close()
before = digest(history_db)

out = run_cli("replay", "--db", history_db, "--rules", default_rules, "--json")
expect_exit(out, 0, "replay --json")
report = json.loads(out.stdout)
check(report["transitions"] == len(rows), f"replay read {report['transitions']} transitions")
changes = report["changes"]
check(len(changes) == 1, f"expected one alert change, got {changes}")
fire = changes[0]
for key, value in (("change", "fire"), ("rule", "crashloop"), ("unit", "web.service"),
                   ("count", 3), ("at_usec", T0 + 2 * SEC + SEC // 10),
                   ("time", "2025-11-28T03:20:02.100Z"), ("time_to_fire_usec", 2 * SEC)):
    check(fire.get(key) == value, f"replay fire: {key} is {fire.get(key)!r}, expected {value!r}")
summary = {s["rule"]: s for s in report["summary"]}
check(sorted(summary) == ["crashloop", "give-up", "respawn"], f"summary rules: {summary}")
crashloop = summary["crashloop"]
check(crashloop["fired"] == 1 and crashloop["units"] == 1 and
      crashloop["median_time_to_fire_usec"] == 2 * SEC and crashloop["firing_at_end"] == 1,
      f"crashloop summary: {crashloop}")
check(summary["respawn"]["fired"] == 0 and summary["give-up"]["fired"] == 0,
      f"other rules fired: {summary}")

# Without --db, the database `cerberus run` writes by default, as for history and alerts
# (here a user's: $XDG_STATE_HOME/cerberus/cerberus.db).
state_home = tempdir("replay-state")
os.makedirs(os.path.join(state_home, "cerberus"))
shutil.copy(history_db, os.path.join(state_home, "cerberus", "cerberus.db"))
as_nobody = subprocess.run(
    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CERBERUS, "replay",
     "--rules", default_rules, "--json"], capture_output=True, text=True,
    env=dict(os.environ, XDG_STATE_HOME=state_home))
check(as_nobody.returncode == 0 and json.loads(as_nobody.stdout) == report,
      f"replay without --db did not read the default database: {as_nobody.stderr}")

# --until runs the timers due by then: up for 10 minutes resolves the alert.
out = run_cli("replay", "--db", history_db, "--rules", default_rules, "--json",
              "--until", "2025-11-28T03:40:00Z")
expect_exit(out, 0, "replay --until")
changes = json.loads(out.stdout)["changes"]
check([c["change"] for c in changes] == ["fire", "resolve"] and changes[1]["reason"] == "up" and
      changes[1]["at_usec"] == T0 + 10 * SEC + 600 * SEC,
      f"replay --until: expected fire then resolve 10m after the last start, got {changes}")

# The table names the change, the rule and the time to fire.
out = run_cli("replay", "--db", history_db, "--rules", default_rules)
expect_exit(out, 0, "replay")
fire_lines = [line for line in out.stdout.splitlines() if " FIRE " in line]
check(len(fire_lines) == 1 and "crashloop" in fire_lines[0] and "web.service" in fire_lines[0]
      and " 2s " in fire_lines[0], f"replay table: {out.stdout!r}")

# --since leaves the windows empty at its start: from the 9th crash on, two crashes only.
out = run_cli("replay", "--db", history_db, "--json", "--rules", default_rules,
              "--since", "2025-11-28T03:20:08Z")
expect_exit(out, 0, "replay --since")
check(json.loads(out.stdout)["changes"] == [], f"replay --since fired: {out.stdout}")

check(digest(history_db) == before, "replay modified the history database")
check(not os.path.exists(history_db + "-wal") or os.path.getsize(history_db + "-wal") == 0,
      "replay wrote a WAL next to the history database")

out = run_cli("replay", "--db", history_db, "--rules", broken)
expect_exit(out, 1, "replay with invalid rules")
check(len([l for l in out.stderr.splitlines() if l.startswith(broken + ":")]) == 3,
      f"replay with invalid rules does not print all 3 errors: {out.stderr!r}")
expect_exit(run_cli("replay", "--db", history_db, "--since", "the day before"), 2,
            "replay --since 'the day before'")
expect_exit(run_cli("replay", "--db", history_db, "--rules", default_rules, "--since",
                    "yesterday"), 0, "replay --since yesterday")
expect_exit(run_cli("replay", "--db", os.path.join(work, "absent.db"), "--rules", default_rules),
            3, "replay on a missing database")
if os.path.exists(os.path.join(work, "absent.db")):
    fail("replay created a missing database")
print("ok")
