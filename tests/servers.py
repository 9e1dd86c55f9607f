"""Real servers for the tests, each on 127.0.0.1: localstripe, and this app over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            time.sleep(0.05)


class LocalStripe:
    """localstripe (with the devtools extension) as a subprocess; stop() and start() again
    keep its data, which lives in `store`."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "LocalStripe":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.localstripe_dev", "--port", str(self.port), "--store", str(self.store)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.url + "/js.stripe.com/v3/")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def register_webhook(self, url: str, secret: str, events: list[str] | None = None) -> None:
        import json

        body = {"url": url, "secret": secret, **({"events": events} if events is not None else {})}
        request = urllib.request.Request(f"{self.url}/_config/webhooks/billing", method="POST",
                                         data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5)

    def silence_webhooks(self) -> None:
        """Stop deliveries (localstripe can't delete a webhook; one for no event types sends nothing),
        so no late event lands in a later test's tables."""
        self.register_webhook("http://127.0.0.1:9/", "unused", events=[])


class LiveServer:
    """The test app served over HTTP in a thread, for browsers and webhooks."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        wait_for(self.url + "/healthz")
        return self

    def stop(self) -> None:
        self.server.shutdown()


class BookingReceiver:
    """The booking system's end of outbound events, on 127.0.0.1: checks each request's
    signature with the `standardwebhooks` package and keeps (webhook-id, body) of those that
    verify; `fail_next` answers that many requests 503 first."""

    def __init__(self, secret: str) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from standardwebhooks.webhooks import Webhook

        self.secret = secret
        self.received: list[tuple[str, dict]] = []
        self.refused: list[str] = []
        self.answers: list[int] = []
        self.fail_next = 0
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        receiver.answers.append(503)
                        return self._answer(503)
                try:
                    parsed = Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                except Exception as error:  # a bad signature: refused, and recorded for the test
                    with receiver.lock:
                        receiver.refused.append(str(error))
                        receiver.answers.append(400)
                    return self._answer(400)
                with receiver.lock:
                    receiver.received.append((self.headers["webhook-id"], parsed))
                    receiver.answers.append(204)
                    receiver.lock.notify_all()
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._json = json
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/billing-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "BookingReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, seconds: float = 10) -> list[tuple[str, dict]]:
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.received) >= count, timeout=seconds):
                raise AssertionError(f"{len(self.received)} of {count} events arrived in {seconds} s")
            return list(self.received)
