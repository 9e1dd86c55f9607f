"""Two outbox workers, as two processes: 1,000 queued events reach the booking system's
receiver exactly once each (on PostgreSQL they claim with FOR UPDATE SKIP LOCKED), and a
message committed while they run is delivered within 5 seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from billing.extensions import db
from billing.ids import new_id
from billing.models import OutboxMessage, utcnow
from tests.conftest import NOTIFY_SECRET
from tests.servers import ROOT

pytestmark = pytest.mark.slow


def start_worker(database_url: str, receiver, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
           "BOOKING_NOTIFY_URL": receiver.url, "BOOKING_NOTIFY_SECRET": NOTIFY_SECRET}
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the worker's logging
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "billing", "worker", "--poll", "0.2"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out)


def queue_events(count: int) -> list[str]:
    now = utcnow()
    rows = [{"id": new_id("msg"), "kind": "event", "topic": "invoice.paid", "status": "pending", "attempts": 0,
             "available_at": now, "created_at": now,
             "payload": {"to": "x", "body": {"type": "invoice.paid", "timestamp": "2026-12-01T00:00:00Z",
                                             "data": {"n": n}}}} for n in range(count)]
    db.session.execute(insert(OutboxMessage), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def test_two_workers_deliver_a_thousand_messages_exactly_once_each(app, database_url, receiver, tmp_path):
    with app.app_context():
        queued = queue_events(1000)
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [start_worker(database_url, receiver, log) for log in logs]
    try:
        received = receiver.wait_for(1000, seconds=120)
        with app.app_context():
            # One more, committed while both run: delivered within 5 s of its commit.
            [late] = queue_events(1)
            committed = time.monotonic()
        received = receiver.wait_for(1001, seconds=5)
        assert time.monotonic() - committed < 5
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
    outputs = [log.read_text() for log in logs]
    assert [worker.returncode for worker in workers] == [0, 0]
    counts = Counter(webhook_id for webhook_id, _ in received)
    assert set(counts) == set(queued) | {late}
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status == "sent")) == 1001
    # Both took a share, and each logged one JSON line per delivery with ids only.
    delivered = [sum(1 for line in _json_lines(out) if line.get("msg") == "outbox delivery") for out in outputs]
    assert sum(delivered) == 1001 and min(delivered) > 0, delivered
    assert all(receiver.url not in out for out in outputs)


def _json_lines(output: str) -> list[dict]:
    """The log's JSON lines, read as JSON (their spacing is the formatter's business)."""
    lines = []
    for text in output.splitlines():
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines
