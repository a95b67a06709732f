"""A silenced alert is recorded but not told; when the silence ends while it still fires,
it is told then. `cerberus silence add|list|expire` manage silences in the database."""
import json
import os
import time

from harness import (SOURCE_ROOT, Cerberus, UserManager, check, crashloop_unit, db_rows,
                     require_root, run_cli, tempdir, wait_for)

require_root()
um = UserManager("silence")
work = tempdir("silence")
db = os.path.join(work, "history.db")
rules = os.path.join(SOURCE_ROOT, "rules", "default.json")
um.add_units({
    "quiet.service": crashloop_unit(exit_status=3, restart_sec="300ms"),
    "loud.service": crashloop_unit(exit_status=3, restart_sec="300ms"),
})
cerberus = Cerberus(db, um.bus, ["--rules", rules]).start()

SILENCE_SECONDS = 8
added_at = time.monotonic()
out = run_cli("silence", "--db", db, "add", "--unit", "quiet*", "--for", f"{SILENCE_SECONDS}s",
              "--comment", "maintenance")
check(out.returncode == 0, f"silence add failed: {out.stderr}")
other = run_cli("silence", "--db", db, "add", "--unit", "other*", "--rule", "crashloop",
                "--for", "1h")
check(other.returncode == 0, f"silence add failed: {other.stderr}")
listed = json.loads(run_cli("silence", "--db", db, "list", "--json").stdout)
check(sorted(s["unit"] for s in listed) == ["other*", "quiet*"], f"silence list: {listed}")
other_id = [s["id"] for s in listed if s["unit"] == "other*"][0]
check(run_cli("silence", "--db", db, "expire", str(other_id)).returncode == 0, "expire failed")
listed = json.loads(run_cli("silence", "--db", db, "list", "--json").stdout)
check([s["unit"] for s in listed] == ["quiet*"], f"an expired silence is still listed: {listed}")
gone = run_cli("silence", "--db", db, "expire", str(other_id))
check(gone.returncode == 1 and str(other_id) in gone.stderr, "expiring twice must fail clearly")


def alert(unit):
    rows = db_rows(db, "SELECT state, silenced FROM alerts WHERE rule = 'crashloop' AND unit = ?",
                   (unit,))
    return rows[0] if rows else None


um.start("quiet.service", "loud.service")
wait_for(lambda: alert("loud.service") == ("firing", 0), 30, "loud.service to alert")
wait_for(lambda: alert("quiet.service") is not None, 30, "quiet.service to alert")
check(time.monotonic() - added_at < SILENCE_SECONDS, "the machine is too slow for this test")
check(alert("quiet.service") == ("firing", 1), f"quiet.service alert: {alert('quiet.service')}")
check("unit 'quiet.service'" not in cerberus.output(), "a silenced alert was told")
check("alert firing: rule 'crashloop' unit 'loud.service'" in cerberus.output(),
      "the unsilenced alert was not told")

wait_for(lambda: "alert firing (silence ended): rule 'crashloop' unit 'quiet.service'"
         in cerberus.output(), SILENCE_SECONDS + 10, "the alert to be told when its silence ends")
wait_for(lambda: alert("quiet.service") == ("firing", 0), 10, "the alert to be marked unsilenced")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print("ok")
