"""API keys and staff users, through the commands an admin types."""

from __future__ import annotations

from sqlalchemy import select

from billing.access import authenticate_user
from billing.extensions import db
from billing.models import ApiKey, User


def test_create_api_key_prints_the_key_alone_on_its_last_line_and_stores_only_a_hash(app):
    result = app.test_cli_runner().invoke(args=["billing", "create-api-key", "booking system"])
    assert result.exit_code == 0
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("ibk_") and len(secret) > 40
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key.name == "booking system"
        assert secret not in (key.secret_hash, key.prefix, key.id)
    response = app.test_client().get("/api/v1/price-lists", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200


def test_revoke_api_key_shuts_the_key_out(app):
    runner = app.test_cli_runner()
    secret = runner.invoke(args=["billing", "create-api-key", "old"]).output.strip().splitlines()[-1]
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    assert runner.invoke(args=["billing", "revoke-api-key", key_id]).exit_code == 0
    response = app.test_client().get("/api/v1/price-lists", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401


def test_create_user_hashes_the_password_with_argon2(app):
    result = app.test_cli_runner().invoke(
        args=["billing", "create-user", "Finance@Clinic.example", "--role", "finance", "--password", "correct horse"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "finance@clinic.example"
        assert user.role == "finance"
        assert user.password_hash.startswith("$argon2id$")
        assert authenticate_user("finance@clinic.example", "correct horse").id == user.id
        assert authenticate_user("finance@clinic.example", "wrong horse!") is None


def test_create_user_refuses_an_unknown_role_and_a_duplicate(app):
    runner = app.test_cli_runner()
    bad_role = runner.invoke(args=["billing", "create-user", "a@b.example", "--role", "owner", "--password", "long enough"])
    assert bad_role.exit_code != 0
    ok = runner.invoke(args=["billing", "create-user", "a@b.example", "--role", "viewer", "--password", "long enough"])
    assert ok.exit_code == 0
    again = runner.invoke(args=["billing", "create-user", "a@b.example", "--role", "viewer", "--password", "long enough"])
    assert again.exit_code == 1 and "exists already" in again.output


def test_seed_demo_loads_the_contract_price_list_once(app):
    runner = app.test_cli_runner()
    assert "Loaded the demo price list" in runner.invoke(args=["billing", "seed-demo"]).output
    assert "left as it is" in runner.invoke(args=["billing", "seed-demo"]).output


def test_purge_drops_old_idempotency_keys_and_keeps_new_ones(app):
    from datetime import timedelta

    from billing.models import IdempotencyKey, utcnow

    with app.app_context():
        db.session.add_all([
            IdempotencyKey(actor="a", key="old", request_hash="h", created_at=utcnow() - timedelta(days=8)),
            IdempotencyKey(actor="a", key="new", request_hash="h", created_at=utcnow() - timedelta(days=1)),
        ])
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["billing", "purge"])
    assert "Deleted 1 idempotency keys" in result.output
    with app.app_context():
        assert list(db.session.scalars(select(IdempotencyKey.key))) == ["new"]


def test_purge_drops_delivered_messages_after_90_days_and_keeps_failed_and_pending_ones(app):
    from datetime import timedelta

    from billing.models import OutboxMessage, utcnow
    from billing.outbox import enqueue_rows, message_row

    old = utcnow() - timedelta(days=91)
    with app.app_context():
        rows = [message_row("event", "invoice.paid", {"n": n}) for n in range(5)]
        for row, status, created in zip(rows, ["sent", "skipped", "failed", "pending", "sent"],
                                        [old, old, old, old, utcnow() - timedelta(days=89)]):
            row.update(status=status, created_at=created)
        enqueue_rows(rows)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["billing", "purge"])
    assert result.output.endswith("and 2 delivered messages.\n")
    with app.app_context():
        left = sorted(db.session.execute(select(OutboxMessage.status, OutboxMessage.payload)).all(),
                      key=lambda r: r[1]["n"])
        assert [status for status, _ in left] == ["failed", "pending", "sent"]
