"""HTTP sinks on 127.0.0.1 for delivery tests: each path answers from a script of
behaviours, one per request (the last one repeats), and records every request."""
import http
import http.server
import json
import threading
import time


class Sink:
    """Behaviours: an int status ("200", "500"), "429:N" (Retry-After N seconds), "hang"
    (never answers; the connection closes when the client gives up), "close" (closes the
    connection in the middle of the response)."""

    def __init__(self, scripts, port=0):
        self.scripts = {path: list(script) for path, script in scripts.items()}
        # dicts: path, time (wall), mono (CLOCK_MONOTONIC), headers (lowercase), body (bytes)
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with sink.lock:
                    script = sink.scripts.get(self.path, ["404"])
                    behaviour = script.pop(0) if len(script) > 1 else script[0]
                    sink.requests.append({"path": self.path, "time": time.time(),
                                          "mono": time.monotonic(),
                                          "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                if behaviour == "hang":
                    sink.release.wait(30)
                    self.close_connection = True
                    return
                if behaviour == "close":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                status, _, retry_after = behaviour.partition(":")
                # One write: a response split in pieces meets Nagle and delayed ACKs (40 ms).
                head = f"HTTP/1.1 {status} {http.HTTPStatus(int(status)).phrase}\r\n"
                if retry_after:
                    head += f"Retry-After: {retry_after}\r\n"
                head += "Content-Length: 2\r\n\r\n"
                self.wfile.write(head.encode() + b"ok")
                self.wfile.flush()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path, status=None):
        """Requests to `path` (with a JSON body whose `status` is `status`, if given)."""
        with self.lock:
            out = [r for r in self.requests if r["path"] == path]
        if status is not None:
            out = [r for r in out if json.loads(r["body"]).get("status") == status]
        return out

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
