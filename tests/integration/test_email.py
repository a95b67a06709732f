"""The email receiver against a real SMTP server on 127.0.0.1 (aiosmtpd): a crash-looping
unit on a real user manager sends one alert mail and, once fixed, one resolve mail that
replies to it; headers and body carry the alert's facts, the server saw AUTH with the
configured login, and a healthy unit under the same rule sends nothing. The password never
reaches the log or the database. `cerberus test-receiver` submits to the server, a wrong
password is refused for good, and STARTTLS works with a CA given in the rule while an
unknown certificate is refused."""
import email.utils
import json
import os
import ssl
import subprocess

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, fix, require_root,
                     run_cli, tempdir, wait_for)
from mailsink import MailSink

require_root()
um = UserManager("email", journal=True)
work = tempdir("email")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
PASSWORD = "Sm7pPassw0rdThatMustNeverBeLogged"
os.environ["SMTP_PASSWORD"] = PASSWORD

smtp = MailSink(username="alerts", password=PASSWORD)
mail = {"type": "email", "url": smtp.url(), "starttls": "never",
        "from": "Cerberus alerts <cerberus@example.test>",
        "to": ["ops@example.test", "Équipe nuit <night@example.test>"],
        "username": "alerts", "password": {"env": "SMTP_PASSWORD"}}
receivers = {"mail": mail,
             "wrong": dict(mail, password="not-the-password"),
             "closed": dict(mail, url=f"smtp://127.0.0.1:{smtp.port + 1 if smtp.port < 65535 else 1}")}
rules_path = os.path.join(work, "rules.json")
json.dump({"receivers": receivers, "rules": [{
    "name": "crashloop", "units": ["looping.service", "healthy.service"], "severity": "critical",
    "when": {"event": "crash", "count": 3, "within": "1m"}, "resolve_when_up_for": "2s",
    "notify": ["mail"], "labels": {"team": "platform"}}]}, open(rules_path, "w"))

unit = crashloop_unit(exit_status=3, fixed=flag, restart_sec="300ms")
unit = unit.replace("ExecStart=/bin/sh -c '", "ExecStart=/bin/sh -c 'echo about to crash; ")
um.add_units({"looping.service": unit,
              "healthy.service": "[Service]\nExecStart=/bin/sleep infinity\n"})
os.chown(work, um.uid, um.uid)

cerberus = Cerberus(db, um.bus, ["--rules", rules_path]).start()
um.start("healthy.service", "looping.service")

wait_for(lambda: smtp.received("[FIRING]"), 20, "the alert mail")
fix(flag)
wait_for(lambda: smtp.received("[RESOLVED]"), 30, "the resolve mail")
fired, resolved = smtp.received("[FIRING]"), smtp.received("[RESOLVED]")
check(len(fired) == 1 and len(resolved) == 1,
      f"one alert and one resolve mail, got {len(fired)} and {len(resolved)}")
alert, resolve = fired[0], resolved[0]
host = os.uname().nodename

# The envelope and the login.
for m in (alert, resolve):
    check(m["mail_from"] == "cerberus@example.test" and
          m["rcpt_tos"] == ["ops@example.test", "night@example.test"],
          f"the envelope: {m['mail_from']} -> {m['rcpt_tos']}")
    check(m["login"] == "alerts" and m["password"] == PASSWORD,
          f"AUTH with the configured login: {m['login']!r}")

# Headers, as a mail client reads them.
msg = alert["message"]
check(msg["Subject"] == f"[FIRING] looping.service on {host}: 3 crashes in 1min",
      f"the subject: {msg['Subject']}")
check(email.utils.parseaddr(str(msg["From"])) == ("Cerberus alerts", "cerberus@example.test"),
      f"From: {msg['From']}")
to = [email.utils.parseaddr(a) for a in str(msg["To"]).split(", ")]
check(to == [("", "ops@example.test"), ("Équipe nuit", "night@example.test")], f"To: {to}")
sent = email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp()
check(abs(sent - alert["time"]) < 5, f"Date is the sending time: {msg['Date']}")
check(msg["MIME-Version"] == "1.0" and msg.get_content_type() == "text/plain" and
      msg.get_content_charset() == "utf-8" and
      msg["Content-Transfer-Encoding"] == "quoted-printable", "MIME headers")
check(str(msg["Message-ID"]).startswith("<") and str(msg["Message-ID"]).endswith("@example.test>"),
      f"Message-ID: {msg['Message-ID']}")
body = msg.get_content()
for fact in ("Rule:       crashloop", "Severity:   critical", "Unit:       looping.service",
             f"Host:       {host}", "Crashes:    3", "Window:     1min",
             "Last exit:  exit-code, exited 3", "Labels:     team=platform", "about to crash"):
    check(fact in body, f"the alert mail says {fact!r}:\n{body}")

rmsg = resolve["message"]
check(rmsg["Subject"].startswith("[RESOLVED] looping.service") and
      rmsg["In-Reply-To"] == msg["Message-ID"] and rmsg["References"] == msg["Message-ID"],
      f"the resolve replies to the alert: {rmsg['Subject']} {rmsg['In-Reply-To']}")
check("Resolved:   " in rmsg.get_content() and "the unit stayed up" in rmsg.get_content(),
      f"the resolve says when and why:\n{rmsg.get_content()}")

# Nothing about the healthy unit, and the outbox agrees.
check(all("healthy" not in str(m["message"]["Subject"]) for m in smtp.messages),
      "no mail for the healthy unit")
rows = db_rows(db, "SELECT action, status, attempts FROM notifications WHERE receiver = 'mail' "
                   "ORDER BY id")
check(rows == [("trigger", "sent", 1), ("resolve", "sent", 1)], f"the outbox rows: {rows}")
check(len(smtp.messages) == 2, f"two mails in all, got {len(smtp.messages)}")

check(cerberus.stop() == 0, "cerberus stops cleanly")
stored = open(db, "rb").read() + (open(db + "-wal", "rb").read()
                                  if os.path.exists(db + "-wal") else b"")
check(PASSWORD not in cerberus.output(), "no password in the log")
check(PASSWORD.encode() not in stored, "no password in the database")

# test-receiver: accepted with SMTP 250; a wrong password is refused; a closed port fails.
out = run_cli("test-receiver", "mail", "--rules", rules_path)
check(out.returncode == 0 and "receiver 'mail' (email) accepted the test alert: SMTP 250" in out.stdout,
      f"test-receiver mail: {out.returncode} {out.stdout} {out.stderr}")
check(smtp.received("[FIRING] [TEST]"), "the test mail arrived")
out = run_cli("test-receiver", "wrong", "--rules", rules_path)
check(out.returncode == 1 and "did not accept the test alert" in out.stdout and
      smtp.refused_logins == ["alerts"], f"test-receiver wrong: {out.returncode} {out.stdout}")
out = run_cli("test-receiver", "closed", "--rules", rules_path)
check(out.returncode == 1 and "did not accept" in out.stdout, f"closed port: {out.stdout}")
check(len(smtp.messages) == 3, "no mail but the test mail")

# STARTTLS with a self-signed certificate, trusted through ca_file.
cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", key, "-out", cert], check=True, capture_output=True)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
tls = MailSink(username="alerts", password=PASSWORD, tls_context=context, require_starttls=True)
tls_receiver = {"type": "email", "url": tls.url(), "from": "cerberus@example.test",
                "to": ["ops@example.test"], "username": "alerts",
                "password": {"env": "SMTP_PASSWORD"}, "ca_file": cert}
tls_rules = os.path.join(work, "tls.json")
json.dump({"receivers": {"tls": tls_receiver,
                         "untrusted": {k: v for k, v in tls_receiver.items() if k != "ca_file"},
                         "cleartext": dict(tls_receiver, starttls="never")},
           "rules": []}, open(tls_rules, "w"))
out = run_cli("test-receiver", "tls", "--rules", tls_rules)
check(out.returncode == 0 and "SMTP 250" in out.stdout, f"STARTTLS: {out.stdout} {out.stderr}")
check(len(tls.messages) == 1 and tls.messages[0]["tls"] and tls.messages[0]["login"] == "alerts",
      "the mail went over STARTTLS, logged in")
out = run_cli("test-receiver", "untrusted", "--rules", tls_rules)
check(out.returncode == 1 and "did not accept" in out.stdout,
      f"an unknown certificate is refused: {out.stdout}")
out = run_cli("test-receiver", "cleartext", "--rules", tls_rules)
check(out.returncode == 1, f"a server that requires STARTTLS refuses cleartext: {out.stdout}")
check(len(tls.messages) == 1, "nothing else reached the TLS server")
print("ok")
