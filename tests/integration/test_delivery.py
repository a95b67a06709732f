"""Delivery end to end on a real user manager: a crash-looping unit fires one alert that
goes to local HTTP sinks through every receiver type. The sinks answer 200, 500 then 200,
429 with Retry-After, hang past the timeout, close mid-response and 400; each test checks
what arrived, how often, with which headers and signature, and what the outbox row says.
The trigger arrives within a second of the crash that crossed the threshold, quotes the
crashed run's journal lines, and a resolve follows the fix. Secrets never reach the logs
or the database."""
import base64
import hashlib
import hmac
import json
import os

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, fix, require_root,
                     run_cli, tempdir, wait_for)
from sink import Sink

require_root()
um = UserManager("delivery", journal=True)
work = tempdir("delivery")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUTING_KEY = "R0utingKeyThatMustNeverBeLogged0"
key_file = os.path.join(work, "pd.key")
open(key_file, "w").write(ROUTING_KEY + "\n")

sink = Sink({"/ok": ["200"], "/retry": ["500", "200"], "/429": ["429:2", "200"],
             "/hang": ["hang", "200"], "/close": ["close", "200"], "/bad": ["400"],
             "/slack": ["200"], "/pd": ["202"]})
os.environ["HOOK_SECRET"] = SECRET


def hook(path, **extra):
    return dict({"type": "webhook", "url": sink.url(path), "secret": {"env": "HOOK_SECRET"}},
                **extra)


receivers = {
    "ok": hook("/ok"), "retry": hook("/retry"), "limited": hook("/429"),
    "hang": hook("/hang", timeout="1s"), "close": hook("/close"), "bad": hook("/bad"),
    "slack": {"type": "slack", "url": sink.url("/slack")},
    "pd": {"type": "pagerduty", "routing_key": {"file": key_file}, "url": sink.url("/pd")},
    "log": {"type": "log"},
}
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": receivers, "rules": [{
    "name": "crashloop", "units": ["looping.service"], "severity": "critical",
    "when": {"event": "crash", "count": 3, "within": "1m"}, "resolve_when_up_for": "2s",
    "notify": list(receivers), "labels": {"team": "platform"}}]}, open(rules_path, "w"))

unit = crashloop_unit(exit_status=3, fixed=flag, restart_sec="500ms")
unit = unit.replace("ExecStart=/bin/sh -c '", "ExecStart=/bin/sh -c 'echo about to crash; ")
um.add_units({"looping.service": unit})
os.chown(work, um.uid, um.uid)

cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
um.start("looping.service")

wait_for(lambda: sink.received("/ok", "firing"), 20, "the trigger at the webhook sink")
fix(flag)
firing = sink.received("/ok", "firing")
check(len(firing) == 1, f"one trigger at the webhook sink, got {len(firing)}")
request = firing[0]
body = json.loads(request["body"])
headers = request["headers"]

# Within a second of the crash that crossed the threshold.
crash_ts = db_rows(db, "SELECT ts_usec FROM transitions WHERE unit = 'looping.service' AND "
                       "event = 'crash' ORDER BY id LIMIT 1 OFFSET 2")[0][0] / 1e6
latency = request["time"] - crash_ts
check(0 <= latency < 1.0, f"the trigger arrived {latency:.3f} s after the third crash")

# Standard Webhooks signature, recomputed here.
key = base64.b64decode(SECRET[len("whsec_"):])
signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
check(headers.get("webhook-signature") == expected,
      f"the signature verifies: {headers.get('webhook-signature')} vs {expected}")
check(headers["webhook-id"] == body["id"], "webhook-id is the body's id")
check(body["rule"] == "crashloop" and body["unit"] == "looping.service" and
      body["severity"] == "critical" and body["count"] == 3 and body["within"] == "1min" and
      body["labels"] == {"team": "platform"} and body["status"] == "firing",
      f"the webhook body describes the alert: {body}")
check(body["last_exit"] == {"result": "exit-code", "exit_code": "exited", "exit_status": 3},
      f"the body carries the last exit: {body['last_exit']}")
check("about to crash" in body["journal"],
      f"the body quotes the crashed run's journal: {body['journal']}")

# The resolve, once the fixed unit has been up for 2 s.
wait_for(lambda: sink.received("/ok", "resolved"), 20, "the resolve at the webhook sink")
resolved = sink.received("/ok", "resolved")
check(len(resolved) == 1 and json.loads(resolved[0]["body"])["resolved_at"],
      "one resolve with resolved_at")
check(resolved[0]["headers"]["webhook-id"] != headers["webhook-id"],
      "the resolve is another message (another webhook-id)")


def row(receiver, action="trigger"):
    return db_rows(db, "SELECT status, attempts, last_error FROM notifications "
                       "WHERE receiver = ? AND action = ?", (receiver, action))


def same_message(path):
    got = sink.received(path, "firing")
    ids = {r["headers"]["webhook-id"] for r in got}
    bodies = {r["body"] for r in got}
    return got, len(ids) == 1 and len(bodies) == 1


# 500 then 200: sent on the second attempt, same id and body.
wait_for(lambda: row("retry") and row("retry")[0][0] == "sent", 20, "the retried trigger sent")
got, same = same_message("/retry")
check(len(got) == 2 and same, f"500 then 200: two attempts of one message, got {len(got)}")
check(row("retry")[0][1] == 2, f"the row counts 2 attempts: {row('retry')}")

# 429 with Retry-After: 2 -> the second attempt waits 2 s.
wait_for(lambda: row("limited") and row("limited")[0][0] == "sent", 20, "the 429 trigger sent")
got, same = same_message("/429")
check(len(got) == 2 and same and got[1]["time"] - got[0]["time"] >= 1.9,
      f"429 Retry-After 2 honoured: {[r['time'] for r in got]}")

# A sink that hangs past the 1 s timeout, and one that closes mid-response: retried.
for receiver, path in (("hang", "/hang"), ("close", "/close")):
    wait_for(lambda: row(receiver) and row(receiver)[0][0] == "sent", 30,
             f"the {receiver} trigger sent")
    got, same = same_message(path)
    check(len(got) == 2 and same, f"{path}: two attempts of one message, got {len(got)}")

# 400: refused for good, not retried, logged once, the reason in the row.
wait_for(lambda: row("bad") and row("bad")[0][0] == "failed", 20, "the refused trigger failed")
check(len(sink.received("/bad", "firing")) == 1, "a 400 is not retried")
check("HTTP 400" in row("bad")[0][2], f"the reason is recorded: {row('bad')}")
check(cerberus.output().count("receiver 'bad'") >= 1, "the refusal is logged")

# Slack and PagerDuty bodies.
wait_for(lambda: len(sink.received("/pd")) >= 2 and len(sink.received("/slack")) >= 2, 20,
         "slack and pagerduty trigger + resolve")
slack = [json.loads(r["body"]) for r in sink.received("/slack")]
check(slack[0]["text"] == f"[FIRING] looping.service on {body['host']}: 3 crashes in 1min" and
      slack[1]["text"].startswith("[RESOLVED]") and "attachments" not in slack[0],
      f"slack messages: {slack}")
for message, mark in ((slack[0], "[FIRING]"), (slack[1], "[RESOLVED]")):
    blocks = message["blocks"]
    check(blocks[0]["type"] == "header" and blocks[0]["text"]["text"].startswith(mark),
          f"a {mark} header block: {blocks[0]}")
    fields = [f["text"] for b in blocks if "fields" in b for f in b["fields"]]
    check("*Crashes*\n3" in fields and "*Unit*\nlooping.service" in fields and
          "*Last exit*\nexit-code, exited 3" in fields, f"slack fields: {fields}")
code = [b["text"]["text"] for b in slack[0]["blocks"] if b["type"] == "section" and
        b.get("text", {}).get("text", "").startswith("```")]
check(code and "about to crash" in code[0], f"the journal in a code block: {slack[0]['blocks']}")
pd = [json.loads(r["body"]) for r in sink.received("/pd")]
host = body["host"]
check(pd[0]["event_action"] == "trigger" and pd[1]["event_action"] == "resolve" and
      pd[0]["dedup_key"] == pd[1]["dedup_key"] == f"{host}/crashloop/looping.service" and
      pd[0]["routing_key"] == ROUTING_KEY and pd[0]["payload"]["severity"] == "critical" and
      pd[0]["payload"]["summary"] == f"looping.service on {host}: 3 crashes in 1min",
      f"pagerduty trigger then resolve with one dedup_key: {pd}")
check("alert firing: rule 'crashloop' unit 'looping.service' severity critical: looping.service "
      f"on {host}: 3 crashes in 1min" in cerberus.output(),
      "the log receiver wrote its line")

check(cerberus.stop() == 0, "cerberus stops cleanly")
stored = open(db, "rb").read() + (open(db + "-wal", "rb").read()
                                  if os.path.exists(db + "-wal") else b"")
for secret in (ROUTING_KEY, SECRET):
    check(secret not in cerberus.output(), "no secret in the log")
    check(secret.encode() not in stored, "no secret in the database")
# `cerberus test-receiver`: one marked test alert, and the receiver's answer.
out = run_cli("test-receiver", "ok", "--rules", rules_path)
check(out.returncode == 0 and "accepted the test alert: HTTP 200" in out.stdout,
      f"test-receiver ok: {out.returncode} {out.stdout} {out.stderr}")
test_alert = [json.loads(r["body"]) for r in sink.received("/ok")][-1]
check(test_alert["summary"].startswith("[TEST]") and test_alert["labels"] == {"test": "true"},
      f"the test alert is clearly marked: {test_alert}")
out = run_cli("test-receiver", "bad", "--rules", rules_path)
check(out.returncode == 1 and "did not accept the test alert: HTTP 400" in out.stdout,
      f"test-receiver bad: {out.returncode} {out.stdout} {out.stderr}")
out = run_cli("test-receiver", "nosuch", "--rules", rules_path)
check(out.returncode == 2 and "no receiver named 'nosuch'" in out.stderr,
      f"test-receiver unknown: {out.returncode} {out.stderr}")
sink.stop()
print("ok")
