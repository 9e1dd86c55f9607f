"""`billing send-test-event` signs a sample event and a running service applies it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_send_test_event_reaches_a_running_service(tmp_path):
    env = {**os.environ, "BILLING_INSTANCE_PATH": str(tmp_path), "BOOKING_WEBHOOK_SECRET": "whsec_demo",
           "DATABASE_URL": f"sqlite:///{tmp_path}/billing.sqlite3"}
    env.pop("TEST_DATABASE_URL", None)
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "billing", "seed-demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "--no-control-socket",
                               "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        result = subprocess.run([*flask, "billing", "send-test-event", "infusion.completed",
                                 "--url", f"http://127.0.0.1:{port}"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("200 ")
        assert '"result": "finalized"' in result.stdout or '"result":"finalized"' in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
