"""A real SMTP server for the alert-delivery tests: aiosmtpd (PyPI).

Each mail it takes is written to DIR as one JSON file (NNNN.json, renamed
into place whole): envelope, decoded subject and text, whether the session
was encrypted and who authenticated. With --cert/--key it speaks STARTTLS
(required) or, with --implicit-tls, TLS from the first byte; with
--user/--password it requires AUTH. Logs "smtp ready" on stderr once it
accepts connections.
"""

import argparse
import email
import email.policy
import json
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Keep:
    def __init__(self, out):
        self.out = out
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "content_type": message.get_content_type(),
            "text": body.get_content() if body is not None else "",
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "user": session.auth_data if session.authenticated else None,
        }
        with self.lock:
            self.count += 1
            name = os.path.join(self.out, "%04d.json" % self.count)
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == a.user and auth_data.password.decode() == a.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    kwargs = {}
    if context is not None and a.implicit_tls:
        kwargs["ssl_context"] = context
    elif context is not None:
        kwargs["tls_context"] = context
        kwargs["require_starttls"] = True
    if a.user:
        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = context is not None
    controller = Controller(Keep(a.dir), hostname=a.host, port=a.port, server_hostname="smtp.test", **kwargs)
    controller.start()
    print("smtp ready on %s:%d" % (a.host, a.port), file=sys.stderr, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
