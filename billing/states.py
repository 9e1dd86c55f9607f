"""Every status, method and outcome the service knows, listed once, and the invoice's state
machine: a table of allowed moves checked in one pure function (no Flask, no database)."""

from __future__ import annotations

from enum import StrEnum


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class Move(StrEnum):
    """What can happen to an invoice's status (Stripe's invoice lifecycle is the model)."""

    EDIT = "edit"            # a draft's inputs change; it stays a draft
    FINALIZE = "finalize"    # numbered, dated, lines frozen
    SETTLE = "settle"        # nothing is left due (payment or credit)
    VOID = "void"            # cancelled; the number, if any, is kept
    WRITE_OFF = "write_off"  # staff give up collecting it


S = InvoiceStatus
TRANSITIONS: dict[tuple[InvoiceStatus, Move], InvoiceStatus] = {
    (S.DRAFT, Move.EDIT): S.DRAFT,
    (S.DRAFT, Move.FINALIZE): S.OPEN,
    (S.DRAFT, Move.VOID): S.VOID,
    (S.OPEN, Move.SETTLE): S.PAID,
    (S.OPEN, Move.VOID): S.VOID,
    (S.OPEN, Move.WRITE_OFF): S.UNCOLLECTIBLE,
    (S.UNCOLLECTIBLE, Move.SETTLE): S.PAID,
}

# What a status allows, beside the moves above.
TAKES_PAYMENT = frozenset({S.OPEN, S.UNCOLLECTIBLE})  # manual payments, payment links, card
ISSUED = frozenset({S.OPEN, S.PAID, S.UNCOLLECTIBLE})  # counted as revenue
HAS_NUMBER = frozenset({S.OPEN, S.PAID, S.UNCOLLECTIBLE, S.VOID})  # a void one may have been issued

_WHY = {
    Move.EDIT: "only a draft can change",
    Move.FINALIZE: "only a draft can be finalized",
    Move.SETTLE: "only an open or uncollectible invoice can be paid",
    Move.VOID: "only a draft or open invoice can be voided",
    Move.WRITE_OFF: "only an open invoice can be written off",
}


class IllegalMove(Exception):
    def __init__(self, status: InvoiceStatus, move: Move) -> None:
        self.status, self.move = status, move
        super().__init__(f"is {status}; {_WHY[move]}")


def next_status(status: InvoiceStatus | str, move: Move) -> InvoiceStatus:
    """The status after `move`, or IllegalMove when the table has no such move."""
    try:
        return TRANSITIONS[(InvoiceStatus(status), move)]
    except KeyError:
        raise IllegalMove(InvoiceStatus(status), move) from None


def allowed_moves(status: InvoiceStatus | str) -> frozenset[Move]:
    return frozenset(move for (source, move) in TRANSITIONS if source == status)


class PaymentMethod(StrEnum):
    CARD_TERMINAL = "card_terminal"
    BANK_TRANSFER = "bank_transfer"
    CASH = "cash"
    OTHER = "other"
    CARD_ONLINE = "card_online"  # through Stripe, never recorded by hand


MANUAL_METHODS = tuple(m for m in PaymentMethod if m is not PaymentMethod.CARD_ONLINE)
# How people read each method (staff pages, receipts).
METHOD_NAMES = {PaymentMethod.CARD_TERMINAL: "Card terminal", PaymentMethod.BANK_TRANSFER: "Bank transfer",
                PaymentMethod.CASH: "Cash", PaymentMethod.OTHER: "Other", PaymentMethod.CARD_ONLINE: "Card, online"}


class RefundStatus(StrEnum):
    """A refund through Stripe is `pending` from the moment it is written until Stripe answers."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    OTHER = "other"


# Credit notes correct issued invoices: a draft is edited instead, a void one is gone.
TAKES_CREDIT = frozenset({S.OPEN, S.PAID, S.UNCOLLECTIBLE})


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    # Not sent because it no longer applied when its turn came (a reminder for an invoice paid
    # in the meantime); kept, so the reminder is never queued again.
    SKIPPED = "skipped"


class BookingOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    FINALIZED = "finalized"
    VOIDED = "voided"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"
    FAILED = "failed"
    # A failed event finance staff decided not to apply (with a note saying why): off the failed
    # list, never replayed, and a redelivery of it is a duplicate.
    DISMISSED = "dismissed"


def check_constraint(column: str, enum: type[StrEnum]) -> str:
    """SQL for a CHECK that `column` holds one of the enum's values (models and migrations)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in enum)})"
