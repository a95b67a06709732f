#!/usr/bin/env python3
"""The webhook receiver of `make demo`: a loopback HTTP server that checks each request's
Standard Webhooks signature, as a real receiver would, and records what it got.

  demo_sink.py serve DIR      listen on 127.0.0.1 (a free port, written to DIR/port) and
                              append every request, verified or not, to DIR/received.jsonl
  demo_sink.py wait DIR --status firing|resolved --unit UNIT [--timeout S] [--brief]
                              wait for that alert to arrive and print it; exit 1 if it does
                              not arrive in time or its signature does not verify

The signing secret (`whsec_` + base64 of the key) is read from $CERBERUS_DEMO_WEBHOOK_SECRET,
never from the command line, where any user could read it."""
import argparse
import base64
import binascii
import hashlib
import hmac
import http.server
import json
import os
import signal
import sys
import threading
import time

SECRET_ENV = "CERBERUS_DEMO_WEBHOOK_SECRET"
# Standard Webhooks: refuse timestamps this far from the receiver's clock (replays).
TOLERANCE_SECONDS = 5 * 60


def verify(secret, headers, body, now):
    """(True, why) when `body` (bytes) carries a valid v1 signature of `secret` in the
    lowercase `headers`; (False, why) otherwise."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False, "the secret is not whsec_ + base64"
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return False, "webhook-id, webhook-timestamp or webhook-signature is missing"
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False, f"webhook-timestamp {timestamp!r} is not within 5 minutes of now"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header may list several space-separated signatures (during a key rotation).
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True, "HMAC-SHA256 of id.timestamp.body matches"
    return False, "no v1 signature in webhook-signature matches the secret"


def serve(directory):
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        sys.exit(f"demo_sink: ${SECRET_ENV} is not set; it holds the webhook signing secret")
    log_path = os.path.join(directory, "received.jsonl")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok, why = verify(secret, headers, body, time.time())
            record = {"path": self.path, "verified": ok, "why": why,
                      "webhook-id": headers.get("webhook-id"),
                      "webhook-timestamp": headers.get("webhook-timestamp"),
                      "body": body.decode("utf-8", "replace")}
            with lock, open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            # A bad signature is still answered 2xx: the demo shows it instead of making
            # cerberus retry it for a day.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Written whole, then renamed: the demo never reads half a port number.
    with open(os.path.join(directory, "port.tmp"), "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
    server.serve_forever()


def received(directory):
    try:
        with open(os.path.join(directory, "received.jsonl")) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    # A line still being written has no newline yet: it is read on the next poll.
    return [json.loads(line) for line in lines if line.endswith("\n")]


def find(directory, status, unit):
    for record in received(directory):
        try:
            body = json.loads(record["body"])
        except json.JSONDecodeError:
            continue
        if body.get("status") == status and body.get("unit") == unit:
            return record, body
    return None


def wait(directory, status, unit, timeout, brief):
    deadline = time.monotonic() + timeout
    while (found := find(directory, status, unit)) is None:
        if time.monotonic() > deadline:
            print(f"demo: no '{status}' alert for {unit} reached the sink within {timeout:g} s",
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    record, body = found
    verdict = "signature verified" if record["verified"] else \
        f"signature NOT verified: {record['why']}"
    if brief:
        print(f"{body['status']} {body['rule']} {body['unit']}: {body['summary']} ({verdict})")
    else:
        print(f"POST {record['path']}  webhook-id: {record['webhook-id']}  "
              f"webhook-timestamp: {record['webhook-timestamp']}")
        print(json.dumps(body, indent=2, ensure_ascii=False))
        print(verdict)
    return 0 if record["verified"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve").add_argument("dir")
    waiting = sub.add_parser("wait")
    waiting.add_argument("dir")
    waiting.add_argument("--status", required=True, choices=["firing", "resolved"])
    waiting.add_argument("--unit", required=True)
    waiting.add_argument("--timeout", type=float, default=20)
    waiting.add_argument("--brief", action="store_true")
    args = parser.parse_args()
    # Die of a Ctrl-C instead of catching it, so the demo's shell sees it and cleans up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if args.command == "serve":
        serve(args.dir)
    else:
        sys.exit(wait(args.dir, args.status, args.unit, args.timeout, args.brief))


if __name__ == "__main__":
    main()
