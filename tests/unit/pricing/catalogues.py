"""The contract's example price list as pricing values, for the pure tests."""

from __future__ import annotations

from billing.pricing import PriceList, price_list_from_document
from tests.factories import price_list_document


def contract_price_list(**changes) -> PriceList:
    return price_list_from_document(price_list_document(**changes), id="pl_test", version=1)
