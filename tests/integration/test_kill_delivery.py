"""Exactly once as the receiver sees it: cerberus is SIGKILLed while its webhook request
hangs at the sink; started again, it sends the same message (same webhook-id, same body)
from the outbox, the sink accepts it, and no second alert is made."""
import json
import os

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, require_root,
                     tempdir, wait_for)
from sink import Sink

require_root()
um = UserManager("killdelivery")
work = tempdir("killdelivery")
db = os.path.join(work, "history.db")
sink = Sink({"/hook": ["hang", "200"]})
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": {"hook": {"type": "webhook", "url": sink.url("/hook"), "timeout": "1m"}},
           "rules": [{"name": "crashloop", "units": ["looping.service"],
                      "when": {"event": "crash", "count": 3, "within": "1m"},
                      "notify": ["hook"]}]}, open(rules_path, "w"))
um.add_units({"looping.service": crashloop_unit(exit_status=3, restart_sec="300ms")})
os.chown(work, um.uid, um.uid)

cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
um.start("looping.service")
wait_for(lambda: sink.received("/hook"), 20, "the first request at the sink")
cerberus.kill()
check(db_rows(db, "SELECT status FROM notifications") == [("pending",)],
      "the row is still pending after the kill")

Cerberus(db, um.bus, ["--rules", rules_path]).start()
wait_for(lambda: db_rows(db, "SELECT status FROM notifications") == [("sent",)], 20,
         "the row sent after the restart")
got = sink.received("/hook", "firing")
check(len(got) == 2, f"the hung request and its resend, got {len(got)}")
check(len({r["headers"]["webhook-id"] for r in got}) == 1 and len({r["body"] for r in got}) == 1,
      "the resend is the same message: same webhook-id, same body")
check(db_rows(db, "SELECT count(*) FROM alerts") == [(1,)] and
      db_rows(db, "SELECT count(*) FROM notifications") == [(1,)],
      "one alert, one notification: the restart decided nothing twice")
sink.stop()
print("ok")
