"""A real SMTP server on 127.0.0.1 (Debian's python3-aiosmtpd) that keeps every message it
accepts, with the envelope, the login used and whether the session ran under TLS. Logins
are checked against one username and password; a wrong one is refused (535)."""
import email
import email.policy
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness import at_exit, free_port


class MailSink:
    def __init__(self, username=None, password=None, tls_context=None, require_starttls=False):
        self.username = username
        self.password = password
        self.messages = []  # dicts: mail_from, rcpt_tos, login, tls, raw, message, time
        self.refused_logins = []
        self._lock = threading.Lock()
        kwargs = {}
        if username is not None:
            kwargs["authenticator"] = self._authenticate
            # Over TLS only when the test gives one; plain AUTH is what a local relay takes.
            kwargs["auth_require_tls"] = tls_context is not None
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = require_starttls
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        at_exit(self.stop)

    def url(self, scheme="smtp"):
        return f"{scheme}://127.0.0.1:{self.port}"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login.decode() == self.username and
              auth_data.password.decode() == self.password)
        if not ok:
            with self._lock:
                self.refused_logins.append(getattr(auth_data, "login", b"").decode())
        return AuthResult(success=ok, auth_data=auth_data)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        login = session.auth_data.login.decode() if session.authenticated else None
        password = session.auth_data.password.decode() if session.authenticated else None
        with self._lock:
            self.messages.append({
                "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "login": login, "password": password, "tls": session.ssl is not None,
                "raw": raw, "message": email.message_from_bytes(raw, policy=email.policy.default),
                "time": time.time()})
        return "250 Message accepted for delivery"

    def received(self, subject_prefix=""):
        with self._lock:
            return [m for m in self.messages if str(m["message"]["Subject"]).startswith(subject_prefix)]

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
