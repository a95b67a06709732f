"""SIGHUP with a hostile rules directory on a running daemon: a number that overflows, a
FIFO named x.json, a symlink to /dev/zero, a file over the size cap, a broken glob and a
byte order mark are each refused with the file named; the daemon keeps running, answers
the next SIGHUP at once (a FIFO must not block its loop), and the old rules keep firing."""
import json
import os
import signal

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, require_root,
                     tempdir, wait_for)

require_root()
um = UserManager("reload_hostile")
work = tempdir("reloadhostile")
db = os.path.join(work, "history.db")
rules_dir = os.path.join(work, "rules")
os.mkdir(rules_dir)
good = os.path.join(rules_dir, "10-good.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": "crashloop", "units": ["looping.service"],
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "notify": ["log"]}]}, open(good, "w"))
um.add_units({"looping.service": crashloop_unit(exit_status=3, restart_sec="300ms")})
os.chown(work, um.uid, um.uid)

cerberus = Cerberus(db, um.bus, ["--rules", rules_dir]).start()
bad = os.path.join(rules_dir, "x.json")


def write_bad(text):
    with open(bad, "w") as f:
        f.write(text)


cases = [
    ("a number that overflows",
     lambda: write_bad('{"rules": [{"name": "y", "when": {"event": "crash",\n'
                       '"count": 1e999}, "notify": ["log"]}]}'),
     f"{bad}:2:10: invalid JSON: number overflow parsing '1e999'"),
    ("a FIFO", lambda: os.mkfifo(bad), f"{bad}: it is a FIFO, not a regular file"),
    ("a symlink to /dev/zero", lambda: os.symlink("/dev/zero", bad),
     f"{bad}: it is a character device, not a regular file"),
    ("a file over the cap", lambda: write_bad('{"rules": []}' + " " * (1 << 20)),
     f"{bad}: it is larger than 1 MiB"),
    ("a broken glob",
     lambda: write_bad('{"rules": [{"name": "y", "units": ["[abc"], '
                       '"when": {"event": "crash"}, "notify": ["log"]}]}'),
     f"{bad}:1: /rules/0/units/0: '[abc' is not a valid glob"),
    ("a byte order mark", lambda: write_bad("\ufeff{}"),
     f"{bad}:1: the file starts with a UTF-8 byte order mark"),
]
for n, (what, make, sentence) in enumerate(cases, start=1):
    make()
    cerberus.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: cerberus.output().count("reload refused") == n or not cerberus.alive(), 10,
             f"the reload with {what} to be refused")
    check(cerberus.alive(), f"cerberus died on a SIGHUP with {what}: {cerberus.output()}")
    check(sentence in cerberus.output(),
          f"the refused reload with {what} does not say {sentence!r}: {cerberus.output()}")
    os.unlink(bad)
check("unexpected error" not in cerberus.output(), cerberus.output())
check("rules reloaded" not in cerberus.output(), f"a hostile file was taken: {cerberus.output()}")

# The old rules are still in force: the crash loop fires the rule loaded at start-up.
um.start("looping.service")
wait_for(lambda: db_rows(db, "SELECT rule FROM alerts WHERE unit = 'looping.service' "
                             "AND state = 'firing'"), 30,
         "the start-up rule to fire after the refused reloads")

# With the bad file gone, a reload is taken again.
cerberus.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "rules reloaded: 1 rule," in cerberus.output(), 10, "the good reload")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print("ok")
