"""Where two money flows meet, called at the use-case level (no HTTP), on SQLite and PostgreSQL.

Each of the four reproductions of the money-integrity issue is a test here: a voided
invoice charged through an open pay tab, an overpayment through a stale tab, a payment in
another currency or on an already-paid invoice, and a refund retried after a failed commit.
Stripe is a counting double at the gateway boundary that, like Stripe, answers a repeated
idempotency key with its first answer.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from billing import invoicing, outbox
from billing.errors import Unavailable
from billing.extensions import db
from billing.invoicing import CardPayment
from billing.models import Invoice, OutboxMessage, Refund
from billing.pricing.documents import request_from_json
from tests.factories import infusion

TOTAL = 203000  # the contract's example: £1,680.00 product + £350.00 service


def open_invoice() -> str:
    request = request_from_json({**infusion(), "other_items": []})
    draft = invoicing.create_invoice(request, {"id": "pt_9", "name": "Alex Example"}, "tests")
    invoice = invoicing.finalize_invoice(draft.id, "tests")
    assert invoice.total == TOTAL
    return invoice.id


def fresh(invoice_id: str) -> Invoice:
    db.session.rollback()
    return invoicing.get_invoice(invoice_id)


def refunds(invoice_id: str) -> list[tuple[int, str, str | None]]:
    db.session.rollback()
    rows = db.session.scalars(select(Refund).join(Invoice, Invoice.seq == Refund.invoice_seq)
                              .where(Invoice.id == invoice_id).order_by(Refund.seq))
    return [(r.amount, r.status, r.stripe_key) for r in rows]


def topics(invoice_id: str) -> list[str]:
    return [m.topic for m in outbox.messages_for_invoice(fresh(invoice_id).seq)]


def card(intent: str, invoice_id: str, amount: int = TOTAL, currency: str = "GBP") -> CardPayment:
    return CardPayment(payment_intent=intent, invoice_id=invoice_id, amount=amount, currency=currency)


def kept(invoice: Invoice) -> int:
    """What the clinic keeps of what the card paid."""
    return invoice.amount_paid - invoice.amount_refunded


# --- 1. a voided invoice can't keep card money ------------------------------------------------

def test_voiding_an_invoice_with_an_open_pay_tab_cancels_its_payment_intent(stripe):
    invoice_id = open_invoice()
    assert invoicing.attach_intent(invoice_id, "pi_tab", TOTAL, 1, "pay_page")
    invoicing.void_invoice(invoice_id, "user:staff")
    assert topics(invoice_id) == [invoicing.SYNC_INTENT]
    assert outbox.deliver_due() == 1
    assert stripe.cancelled == ["pi_tab"]
    assert fresh(invoice_id).stripe_payment_intent is None


def test_card_money_for_a_void_invoice_is_booked_refunded_in_full_and_flagged(stripe):
    invoice_id = open_invoice()
    invoicing.attach_intent(invoice_id, "pi_tab", TOTAL, 1, "pay_page")
    invoicing.void_invoice(invoice_id, "user:staff")
    # The patient's tab confirmed before the worker cancelled the intent: Stripe charged the card.
    payment = invoicing.book_card_payment(card("pi_tab", invoice_id))
    assert payment is not None and payment.amount == TOTAL
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("void", TOTAL, 0)
    assert "on a void invoice" in invoice.attention and "£2,030.00 is being refunded" in invoice.attention
    assert refunds(invoice_id) == [(TOTAL, "pending", "pi_tab:refund")]
    outbox.deliver_due()
    assert stripe.refund_keys == ["pi_tab:refund"] and stripe.refunded == TOTAL
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_refunded, kept(invoice)) == ("void", TOTAL, 0)
    assert refunds(invoice_id) == [(TOTAL, "succeeded", "pi_tab:refund")]
    flagged = [e for e in invoicing.audit_trail(invoice_id) if e.detail and "flag" in e.detail]
    assert [e.action for e in flagged] == ["payment_recorded"]


# --- 2. a stale tab can't overpay -------------------------------------------------------------

def test_a_manual_part_payment_cancels_the_open_tabs_intent(stripe):
    invoice_id = open_invoice()
    invoicing.attach_intent(invoice_id, "pi_tab", TOTAL, 1, "pay_page")
    invoicing.record_payment(invoice_id, 100000, "bank_transfer", "user:staff")
    assert topics(invoice_id) == [invoicing.SYNC_INTENT]
    outbox.deliver_due()
    assert stripe.cancelled == ["pi_tab"]
    # the next time the page opens, a new intent for exactly what is left is accepted
    assert invoicing.attach_intent(invoice_id, "pi_rest", 103000, 2, "pay_page")
    assert (fresh(invoice_id).stripe_payment_intent, fresh(invoice_id).stripe_intent_amount) == ("pi_rest", 103000)


def test_an_intent_made_for_an_amount_no_longer_due_is_not_used_and_is_cancelled(stripe):
    invoice_id = open_invoice()
    invoicing.record_payment(invoice_id, 100000, "cash", "user:staff")
    assert not invoicing.attach_intent(invoice_id, "pi_late", TOTAL, 1, "pay_page")  # made before the payment
    assert fresh(invoice_id).stripe_payment_intent is None
    outbox.deliver_due()
    assert stripe.cancelled == ["pi_late"]


def test_a_stale_tab_paying_the_old_amount_books_it_and_refunds_the_excess(stripe):
    invoice_id = open_invoice()
    invoicing.attach_intent(invoice_id, "pi_tab", TOTAL, 1, "pay_page")
    invoicing.record_payment(invoice_id, 100000, "bank_transfer", "user:staff")
    invoicing.book_card_payment(card("pi_tab", invoice_id))  # before the worker got to the intent
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", 303000, 0)
    assert "beyond the £1,030.00 due" in invoice.attention
    assert refunds(invoice_id) == [(100000, "pending", "pi_tab:refund")]
    outbox.deliver_due()
    invoice = fresh(invoice_id)
    assert (invoice.amount_refunded, kept(invoice), stripe.refunded) == (100000, TOTAL, 100000)


# --- 3. other currencies, and a second intent on a paid invoice -------------------------------

def test_a_payment_in_another_currency_is_never_booked_and_is_refunded_in_full(stripe):
    invoice_id = open_invoice()
    assert invoicing.book_card_payment(card("pi_usd", invoice_id, currency="usd")) is None
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("open", 0, TOTAL)
    assert "A card payment of US$2,030.00 arrived for this GBP invoice" in invoice.attention  # for staff: in dollars
    assert invoicing.payments_of(invoice) == []
    outbox.deliver_due()
    assert stripe.refunds["pi_usd:refund"].amount == TOTAL
    assert invoicing.book_card_payment(card("pi_usd", invoice_id, currency="usd")) is None  # redelivered
    outbox.deliver_due()
    assert stripe.refund_keys == ["pi_usd:refund"]


def test_a_second_intent_succeeding_on_a_paid_invoice_is_refunded_in_full(stripe):
    invoice_id = open_invoice()
    first = invoicing.book_card_payment(card("pi_1", invoice_id))
    assert fresh(invoice_id).status == "paid"
    second = invoicing.book_card_payment(card("pi_2", invoice_id))
    assert invoicing.book_card_payment(card("pi_2", invoice_id)).id == second.id  # a repeat books nothing
    assert first.id != second.id
    outbox.deliver_due()
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_paid, invoice.amount_refunded, kept(invoice)) == \
        ("paid", 2 * TOTAL, TOTAL, TOTAL)
    assert stripe.refund_keys == ["pi_2:refund"]


# --- 4. a refund can't go out twice -----------------------------------------------------------

@pytest.fixture
def commit_fails_once(monkeypatch):
    """The first time a Stripe refund's answer is recorded, the process falls over mid-commit."""
    real = invoicing._complete_refund
    state = {"failed": False}

    def failing(change, refund, payment):
        if not state["failed"]:
            state["failed"] = True
            raise RuntimeError("the database connection was lost")
        return real(change, refund, payment)

    monkeypatch.setattr(invoicing, "_complete_refund", failing)


def paid_by_card(invoice_id: str) -> None:
    invoicing.book_card_payment(card("pi_1", invoice_id))


def test_a_refund_retried_after_a_failed_commit_reuses_its_row_and_key(stripe, commit_fails_once):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    with pytest.raises(RuntimeError):
        invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K1")
    ((amount, status, key),) = refunds(invoice_id)
    assert (amount, status) == (50000, "pending") and key.startswith("re_")
    assert fresh(invoice_id).amount_refunded == 0  # not counted until Stripe's answer is recorded
    invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K1")
    assert stripe.refund_keys == [key, key]  # the same key twice: Stripe refunded once
    assert stripe.refunded == 50000
    assert refunds(invoice_id) == [(50000, "succeeded", key)]
    assert fresh(invoice_id).amount_refunded == 50000


def test_charge_refunded_arriving_between_the_failure_and_the_retry_is_matched_not_doubled(stripe, commit_fails_once):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    with pytest.raises(RuntimeError):
        invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K1")
    ((_, _, key),) = refunds(invoice_id)
    row_id = db.session.scalar(select(Refund.id))
    stripe_refund = stripe.refunds[key]
    # Stripe's charge.refunded: our refund id rides in the refund's metadata
    assert invoicing.record_stripe_refunds("pi_1", [{"id": stripe_refund.id, "amount": 50000, "status": "succeeded",
                                                     "metadata": {"refund_id": row_id}}], 50000) == (invoice_id, 50000)
    invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K1")
    assert stripe.refund_keys == [key]  # nothing left to send
    assert refunds(invoice_id) == [(50000, "succeeded", key)]
    invoice = fresh(invoice_id)
    assert (invoice.amount_refunded, stripe.refunded) == (50000, 50000)
    # and the same event again records nothing
    assert invoicing.record_stripe_refunds("pi_1", [{"id": stripe_refund.id, "amount": 50000, "status": "succeeded",
                                                     "metadata": {"refund_id": row_id}}], 50000) == (invoice_id, 0)


def test_a_pending_refund_holds_its_amount_so_another_refund_cant_take_it(stripe, commit_fails_once):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    with pytest.raises(RuntimeError):
        invoicing.refund(invoice_id, TOTAL, "all of it", "user:1", stripe, request_key="user:1:K1")
    with pytest.raises(invoicing.RefundTooLarge):
        invoicing.refund(invoice_id, 1, "one more penny", "user:2", stripe)
    assert len(stripe.refund_keys) == 1


def test_stripe_is_asked_without_the_invoice_row_locked(app, stripe):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    seen = []

    def write_the_invoice_elsewhere(**_):
        # Another connection changes the invoice row while Stripe is being asked: if the
        # refund held the row lock, this would wait (and the test would time out).
        with db.engine.connect() as other:
            if db.engine.dialect.name == "postgresql":
                other.execute(text("SET lock_timeout = '2s'"))
            other.execute(text("UPDATE invoices SET revision = revision + 1 WHERE id = :id"), {"id": invoice_id})
            other.commit()
        seen.append(True)

    real_refund = stripe.refund
    stripe.refund = lambda **kw: (write_the_invoice_elsewhere(), real_refund(**kw))[1]
    invoicing.refund(invoice_id, 1000, "goodwill", "user:1", stripe)
    assert seen == [True] and fresh(invoice_id).amount_refunded == 1000


def test_a_refund_stripe_refuses_is_failed_and_the_invoice_is_unchanged(stripe):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    before = invoicing.state(fresh(invoice_id))
    stripe.refuse = "This charge has been refunded already."
    with pytest.raises(invoicing.RefundRefused, match="refunded already"):
        invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe)
    assert [(a, s) for a, s, _ in refunds(invoice_id)] == [(50000, "failed")]
    assert invoicing.state(fresh(invoice_id)) == before
    assert db.session.scalar(select(Refund.error)) == "Stripe refused the refund: This charge has been refunded already."


def test_stripe_unreachable_fails_the_refund_and_the_same_key_later_retries_it_once(stripe):
    invoice_id = open_invoice()
    paid_by_card(invoice_id)
    stripe.down = True
    with pytest.raises(Unavailable):
        invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K2")
    assert [(a, s) for a, s, _ in refunds(invoice_id)] == [(50000, "failed")]
    assert fresh(invoice_id).amount_refunded == 0
    stripe.down = False
    invoicing.refund(invoice_id, 50000, "shorter infusion", "user:1", stripe, request_key="user:1:K2")
    ((_, status, key),) = refunds(invoice_id)
    assert status == "succeeded" and stripe.refund_keys == [key, key] and stripe.refunded == 50000


def test_manual_money_is_refunded_at_once_without_stripe(stripe):
    invoice_id = open_invoice()
    invoicing.record_payment(invoice_id, TOTAL, "cash", "user:1")
    invoicing.refund(invoice_id, 2500, "overcharged parking", "user:1", None)
    assert [(a, s) for a, s, _ in refunds(invoice_id)] == [(2500, "succeeded")]
    assert stripe.calls == [] and fresh(invoice_id).amount_refunded == 2500


# --- concurrency ------------------------------------------------------------------------------

def test_void_racing_a_card_success_never_leaves_money_on_a_void_invoice(app, stripe):
    for round_ in range(4):
        invoice_id = open_invoice()
        invoicing.attach_intent(invoice_id, f"pi_race_{round_}", TOTAL, 1, "pay_page")
        db.session.rollback()
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def void():
            with app.app_context():
                barrier.wait(timeout=10)
                try:
                    invoicing.void_invoice(invoice_id, "user:staff")
                    results["void"] = "voided"
                except invoicing.WrongState:
                    results["void"] = "refused"

        def pay():
            with app.app_context():
                barrier.wait(timeout=10)
                invoicing.book_card_payment(card(f"pi_race_{round_}", invoice_id))
                results["pay"] = "booked"

        threads = [threading.Thread(target=void), threading.Thread(target=pay)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert results["pay"] == "booked"
        outbox.deliver_due()
        invoice = fresh(invoice_id)
        if results["void"] == "voided":  # void first: the payment was booked on a void invoice and refunded
            assert (invoice.status, invoice.amount_paid, invoice.amount_refunded) == ("void", TOTAL, TOTAL)
        else:  # payment first: it is paid, and a paid invoice can't be voided
            assert (invoice.status, invoice.amount_paid, invoice.amount_refunded) == ("paid", TOTAL, 0)


# --- the state machine in the database --------------------------------------------------------

def test_the_database_refuses_a_status_the_state_machine_doesnt_know(stripe):
    invoice_id = open_invoice()
    invoicing.record_payment(invoice_id, 1000, "cash", "user:1")
    invoicing.refund(invoice_id, 100, "change", "user:1", None)
    outbox.enqueue("stripe", "test.topic", {})
    db.session.commit()
    for sql in ("UPDATE invoices SET status = 'lost'", "UPDATE refunds SET status = 'maybe'",
                "UPDATE outbox SET status = 'gone'", "UPDATE payments SET method = 'cheque'"):
        with pytest.raises(IntegrityError):
            db.session.execute(text(sql))
        db.session.rollback()
    assert fresh(invoice_id).status == "open"


def test_a_move_the_table_forbids_is_a_409_that_says_why(stripe):
    invoice_id = open_invoice()
    with pytest.raises(invoicing.WrongState, match=r"^Invoice INV-\d{4}-000001 is open; only a draft can be finalized\.$"):
        invoicing.finalize_invoice(invoice_id, "tests")
    assert db.session.scalar(select(OutboxMessage.id)) is None
