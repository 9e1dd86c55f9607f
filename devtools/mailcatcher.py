"""A local SMTP server that keeps what it is sent (aiosmtpd): `make run` starts it so the
service's emails can be read as .eml files, and the tests start it to check what arrives.

    python -m devtools.mailcatcher --port 8025 --folder instance/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import signal
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Catcher:
    """An aiosmtpd handler: every message, parsed, in `messages`, and as a file in `folder`."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Condition()
        self._numbers = itertools.count(1)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        if self.folder is not None:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._numbers):05d}.eml"
            (self.folder / name).write_bytes(raw)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, seconds: float = 10) -> list[EmailMessage]:
        """The first `count` messages, waiting up to `seconds` for them to arrive."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=seconds):
                raise AssertionError(f"{len(self.messages)} of {count} emails arrived in {seconds} s")
            return list(self.messages[:count])


def authenticator(username: str, password: str):
    """An aiosmtpd authenticator that accepts one login."""
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)
    return check


def start(handler: Catcher, port: int, **smtp: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--folder", type=Path, default=Path("instance/mail"))
    args = parser.parse_args()
    controller = start(Catcher(args.folder), args.port)
    print(f"Catching mail on smtp://127.0.0.1:{args.port} into {args.folder}/", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
