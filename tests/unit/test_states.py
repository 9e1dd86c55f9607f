"""The invoice's state machine, checked without a database: the table is the whole story."""

from __future__ import annotations

import pytest

from billing.states import (
    ISSUED,
    TAKES_PAYMENT,
    TRANSITIONS,
    IllegalMove,
    InvoiceStatus,
    Move,
    allowed_moves,
    check_constraint,
    next_status,
)

S = InvoiceStatus


@pytest.mark.parametrize(("status", "move", "after"), [
    (S.DRAFT, Move.EDIT, S.DRAFT),
    (S.DRAFT, Move.FINALIZE, S.OPEN),
    (S.DRAFT, Move.VOID, S.VOID),
    (S.OPEN, Move.SETTLE, S.PAID),
    (S.OPEN, Move.VOID, S.VOID),
    (S.OPEN, Move.WRITE_OFF, S.UNCOLLECTIBLE),
    (S.UNCOLLECTIBLE, Move.SETTLE, S.PAID),
])
def test_each_allowed_move_lands_where_the_contract_says(status, move, after):
    assert next_status(status, move) is after
    assert next_status(status.value, move) is after  # as the database hands it back


def test_every_other_move_is_refused_with_a_reason():
    refused = [(s, m) for s in S for m in Move if (s, m) not in TRANSITIONS]
    assert len(refused) == len(S) * len(Move) - 7
    for status, move in refused:
        with pytest.raises(IllegalMove) as caught:
            next_status(status, move)
        assert str(caught.value).startswith(f"is {status.value}; only ")


def test_paid_and_void_are_final():
    assert allowed_moves(S.PAID) == allowed_moves(S.VOID) == frozenset()
    assert allowed_moves(S.DRAFT) == {Move.EDIT, Move.FINALIZE, Move.VOID}


def test_a_void_invoice_never_takes_payment_and_never_counts_as_revenue():
    assert TAKES_PAYMENT == {S.OPEN, S.UNCOLLECTIBLE}
    assert S.VOID not in ISSUED and S.DRAFT not in ISSUED


def test_the_check_constraint_lists_every_status_and_nothing_else():
    assert check_constraint("status", S) == "status IN ('draft', 'open', 'paid', 'void', 'uncollectible')"
