from decimal import Decimal

import pytest

from billing.pricing import CurrencyMismatch, Money, round_half_up


def test_halves_round_away_from_zero_not_to_even():
    assert round_half_up(Decimal("0.5")) == 1
    assert round_half_up(Decimal("1.5")) == 2
    assert round_half_up(Decimal("2.5")) == 3  # banker's rounding would give 2
    assert round_half_up(Decimal("2.4999")) == 2
    assert round_half_up(Decimal("-2.5")) == -3


def test_money_adds_within_one_currency():
    assert Money(150, "GBP") + Money(250, "GBP") == Money(400, "GBP")
    assert Money(400, "GBP") - Money(150, "GBP") == Money(250, "GBP")


def test_adding_different_currencies_is_an_error():
    with pytest.raises(CurrencyMismatch):
        Money(100, "GBP") + Money(100, "EUR")


def test_money_refuses_anything_but_whole_minor_units():
    with pytest.raises(TypeError):
        Money(Decimal("1.5"), "GBP")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "GBP")
