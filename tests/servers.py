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
