"""The outbox: written with the change, delivered after it, retried on a schedule, claimed by
one worker at a time, and a worker that stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from billing import outbox
from billing.extensions import db
from billing.models import OutboxMessage, utcnow
from billing.unit_of_work import transaction
from tests.servers import ROOT

CALLS: list[dict] = []


@outbox.handles("test.record")
def _record(payload: dict) -> None:
    CALLS.append(payload)


@outbox.handles("test.fail")
def _fail(payload: dict) -> None:
    raise ConnectionError("the other side is down")


@pytest.fixture
def ctx(app):
    CALLS.clear()
    with app.app_context():
        yield app
        db.session.remove()


def message(topic: str) -> OutboxMessage:
    db.session.rollback()
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.topic == topic))


def test_a_message_is_written_only_if_its_change_commits(ctx):
    with pytest.raises(RuntimeError):
        with transaction():
            outbox.enqueue("event", "test.record", {"n": 1})
            raise RuntimeError("the change failed")
    with transaction():
        outbox.enqueue("event", "test.record", {"n": 2})
    assert outbox.deliver_due() == 1
    assert CALLS == [{"n": 2}]
    sent = message("test.record")
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None) and sent.sent_at is not None
    assert outbox.deliver_due() == 0  # sent once


def test_a_failing_delivery_is_retried_on_the_schedule_then_failed(ctx, monkeypatch):
    monkeypatch.setitem(ctx.config, "OUTBOX_RETRY_SECONDS", (5, 300))
    with transaction():
        outbox.enqueue("event", "test.fail", {})
    started = utcnow()
    assert outbox.deliver_due() == 1
    first = message("test.fail")
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error == "ConnectionError: the other side is down"
    assert timedelta(seconds=4) < first.available_at - started < timedelta(seconds=7)
    assert outbox.deliver_due() == 0  # not due for 5 s
    assert outbox.deliver_due(now=utcnow() + timedelta(seconds=6)) == 1
    second = message("test.fail")
    assert timedelta(seconds=299) < second.available_at - started < timedelta(seconds=302)
    assert outbox.deliver_due(now=utcnow() + timedelta(seconds=301)) == 1
    last = message("test.fail")
    assert (last.status, last.attempts) == ("failed", 3)  # the first try and two retries
    assert outbox.deliver_due(now=utcnow() + timedelta(days=1)) == 0


def test_a_claimed_message_is_not_claimed_again_until_its_lease_runs_out(ctx):
    with transaction():
        outbox.enqueue("event", "test.record", {"n": 1})
    claimed = outbox.claim_next()
    assert claimed is not None and claimed.attempts == 1
    assert outbox.claim_next() is None  # a second worker finds nothing to do
    # the first worker died: after the lease the message is delivered again (at least once)
    later = utcnow() + timedelta(seconds=outbox.LEASE_SECONDS + 1)
    assert outbox.deliver_due(now=later) == 1 and CALLS == [{"n": 1}]


@pytest.mark.slow
def test_the_worker_delivers_within_seconds_and_stops_cleanly_on_sigterm(ctx, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "billing", "worker", "--poll", "0.2"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        with transaction():
            outbox.enqueue("stripe", "payment_intent.sync", {"invoice_id": "inv_none", "payment_intent": "pi_x"})
        deadline = time.monotonic() + 5
        while message("payment_intent.sync").attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert message("payment_intent.sync").attempts == 1  # tried within 5 s of commit
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    assert "Outbox worker stopped." in output


def test_a_worker_told_to_stop_finishes_the_message_in_hand_and_releases_the_rest_of_its_batch(ctx):
    import threading

    stop = threading.Event()

    @outbox.handles("test.stopper")
    def _stopper(payload: dict) -> None:
        CALLS.append(payload)
        stop.set()  # SIGTERM arrives while this one is being delivered

    with transaction():
        for n in range(3):
            outbox.enqueue("event", "test.stopper", {"n": n})
    assert outbox.deliver_due(stop=stop) == 1
    assert CALLS == [{"n": 0}]
    db.session.rollback()
    rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq)))
    assert [(m.status, m.attempts) for m in rows] == [("sent", 1), ("pending", 0), ("pending", 0)]
    assert all(m.available_at <= utcnow() for m in rows[1:])  # due again at once, for any worker
    assert outbox.deliver_due() == 2
