"""Credit notes at the use-case level: pre- and post-payment credit, the limits per category
(also under concurrency), the 409s, and gap-free numbers — exact pence throughout."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from billing import invoicing
from billing.extensions import db
from billing.models import CreditNote, Invoice
from billing.pricing.documents import request_from_json
from tests.factories import infusion

TOTAL = 203000  # £1,680.00 product + £350.00 service
SHORTER = [{"category": "infusion_service", "amount": 10000, "description": "Shorter infusion"}]


def issued(**changes) -> str:
    draft = invoicing.create_invoice(request_from_json({**infusion(**changes), "other_items": []}),
                                     {"id": "pt_9", "name": "Alex Example"}, "tests")
    return invoicing.finalize_invoice(draft.id, "tests").id


def fresh(invoice_id: str) -> Invoice:
    db.session.rollback()
    return invoicing.get_invoice(invoice_id)


def credit(invoice_id, lines=SHORTER, refund=0, out_of_band=0, gateway=None, key=None, reason="order_change"):
    return invoicing.issue_credit_note(invoice_id, "user:staff", reason=reason, memo="Infusion stopped after 90 minutes",
                                       lines=lines, refund_amount=refund, out_of_band_amount=out_of_band,
                                       gateway=gateway, request_key=key)


def test_credit_before_payment_lowers_what_is_due(stripe):
    invoice_id = issued()
    note = credit(invoice_id)
    assert (note.number[:3], note.subtotal, note.tax, note.total) == ("CN-", 10000, 0, 10000)
    assert (note.pre_payment_amount, note.post_payment_amount) == (10000, 0)
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.total, invoice.amount_credited, invoice.amount_due) == ("open", TOTAL, 10000, 193000)
    assert invoice.lines[1]["amount"] == 35000  # the invoice itself never changes


def test_credit_that_leaves_nothing_due_settles_the_invoice(stripe):
    invoice_id = issued()
    invoicing.record_payment(invoice_id, 168000, "cash", "user:staff")
    note = credit(invoice_id, lines=[{"category": "infusion_service", "amount": 35000}])
    assert (note.pre_payment_amount, note.post_payment_amount) == (35000, 0)
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("paid", 0, 168000)


def test_credit_after_card_payment_is_refunded_through_stripe(stripe):
    invoice_id = issued()
    invoicing.book_card_payment(invoicing.CardPayment("pi_1", invoice_id, TOTAL, "GBP"))
    note = credit(invoice_id, refund=10000, gateway=stripe, key="user:staff:cn1")
    assert (note.pre_payment_amount, note.post_payment_amount, note.refund_amount) == (0, 10000, 10000)
    invoice = fresh(invoice_id)
    assert (invoice.amount_refunded, invoice.amount_due, stripe.refunded) == (10000, 0, 10000)
    assert credit(invoice_id, refund=10000, gateway=stripe, key="user:staff:cn1").id == note.id  # a retry
    assert stripe.refunded == 10000 and len(invoicing.credit_notes_of(fresh(invoice_id))) == 1


def test_credit_split_between_what_was_due_and_money_returned_by_hand(stripe):
    invoice_id = issued()
    invoicing.record_payment(invoice_id, 200000, "bank_transfer", "user:staff")  # £30.00 still due
    note = credit(invoice_id, out_of_band=7000)
    assert (note.pre_payment_amount, note.post_payment_amount, note.out_of_band_amount) == (3000, 7000, 7000)
    invoice = fresh(invoice_id)
    assert (invoice.status, invoice.amount_due, invoice.amount_refunded, invoice.amount_credited) == ("paid", 0, 7000, 10000)
    assert stripe.calls == []


def test_refund_and_out_of_band_must_add_up_to_the_money_received(stripe):
    invoice_id = issued()
    invoicing.record_payment(invoice_id, TOTAL, "cash", "user:staff")
    with pytest.raises(invoicing.Invalid, match=r"£100.00 of this credit note is money already received.*£25.00 short"):
        credit(invoice_id, out_of_band=7500)
    assert fresh(invoice_id).amount_credited == 0 and db.session.scalar(select(CreditNote.id)) is None


def test_a_category_is_never_credited_beyond_what_it_charged(stripe):
    invoice_id = issued()
    credit(invoice_id, lines=[{"category": "infusion_service", "amount": 30000}])
    with pytest.raises(invoicing.CreditTooLarge, match=r"£60.00 is more than the £50.00 of infusion_service left"):
        credit(invoice_id, lines=[{"category": "infusion_service", "amount": 6000}])
    credit(invoice_id, lines=[{"category": "immunoglobulin_product", "amount": 168000}])  # the other line is whole
    assert fresh(invoice_id).amount_due == 5000


@pytest.mark.parametrize("status", ["draft", "void"])
def test_drafts_and_void_invoices_take_no_credit_notes(stripe, status):
    draft = invoicing.create_invoice(request_from_json({**infusion(), "other_items": []}), {"id": "pt", "name": "A"}, "t")
    if status == "void":
        invoicing.void_invoice(draft.id, "t")
    with pytest.raises(invoicing.WrongState, match=f"is {status}: credit notes correct issued invoices"):
        credit(draft.id)


def test_two_credit_notes_at_once_cant_beat_the_limit_and_numbers_have_no_gaps(app, stripe):
    invoice_id = issued()
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def one():
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                credit(invoice_id, lines=[{"category": "infusion_service", "amount": 10000}])
                outcomes.append("issued")
            except invoicing.CreditTooLarge:
                outcomes.append("refused")

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["issued"] * 3 + ["refused"] * 3  # £350.00 holds three £100.00 credits
    invoice = fresh(invoice_id)
    assert (invoice.amount_credited, invoice.amount_due) == (30000, 173000)
    numbers = sorted(n[-6:] for n in db.session.scalars(select(CreditNote.number)))
    assert numbers == ["000001", "000002", "000003"]


def test_credit_cancels_the_live_payment_intent_so_a_stale_tab_cant_pay_the_old_amount(stripe):
    from billing import outbox

    invoice_id = issued()
    assert invoicing.attach_intent(invoice_id, "pi_tab", TOTAL, 1, "pay_page")
    credit(invoice_id)
    assert [m.topic for m in outbox.messages_for_invoice(fresh(invoice_id).seq)] == [invoicing.SYNC_INTENT]
    outbox.deliver_due()
    assert stripe.cancelled == ["pi_tab"] and fresh(invoice_id).stripe_payment_intent is None
