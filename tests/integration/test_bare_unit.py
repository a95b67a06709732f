"""A rule written as an operator types a unit (`"units": ["payments"]`, as `journalctl -u
payments` would) fires for payments.service looping under a real user manager, and not for
its neighbour payments-api.service; `exclude` and silences read a bare name the same way."""
import json
import os

from harness import (Cerberus, UserManager, check, count, crashloop_unit, db_rows,
                     require_root, run_cli, tempdir, wait_for)

require_root()
um = UserManager("bare_unit")
work = tempdir("bareunit")
db = os.path.join(work, "history.db")
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"log": {"type": "log"}}, "rules": [
    {"name": "payments-loop", "units": ["payments"],
     "when": {"event": "crash", "count": 3, "within": "1m"}, "notify": ["log"]},
    {"name": "others", "units": ["payments*"], "exclude": ["payments"],
     "when": {"event": "crash", "count": 3, "within": "1m"}, "notify": ["log"]},
]}, open(rules_path, "w"))
out = run_cli("silence", "--db", db, "add", "--unit", "payments-api", "--rule", "others",
              "--for", "1h")
check(out.returncode == 0, f"silence add with a bare name: {out.stderr}")

um.add_units({"payments.service": crashloop_unit(), "payments-api.service": crashloop_unit()})
cerberus = Cerberus(db, um.bus, ["--rules", rules_path, "--emit-socket", "none"]).start()
um.start("payments.service", "payments-api.service")


def alerts():
    return sorted(db_rows(db, "SELECT rule, unit, silenced FROM alerts"))


wait_for(lambda: len(alerts()) >= 2, 30, "both looping units to fire a rule")
# Three more crashes of each: a rule that matched the wrong unit would have fired by then.
more = {u: count(db, u, "crash") + 3 for u in ("payments.service", "payments-api.service")}
wait_for(lambda: all(count(db, u, "crash") >= n for u, n in more.items()), 30,
         "three more crashes of each unit")
expected = [("others", "payments-api.service", 1), ("payments-loop", "payments.service", 0)]
check(alerts() == expected,
      f"'payments' fires for payments.service only, and the silence on 'payments-api' holds "
      f"its alert back: {alerts()}")
told = [line for line in cerberus.output().splitlines() if "alert firing:" in line]
check(len(told) == 1 and "rule 'payments-loop' unit 'payments.service'" in told[0],
      f"the log receiver tells the one unsilenced alert: {told}")
check(cerberus.stop() == 0, f"cerberus did not stop cleanly: {cerberus.output()}")
print("ok")
