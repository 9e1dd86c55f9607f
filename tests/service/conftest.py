"""Use cases called directly: an app context with the contract's price list, and Stripe as a
counting double at the gateway boundary (never a double of the SDK)."""

from __future__ import annotations

import pytest

from billing.cli import DEMO_PRICE_LIST
from billing.extensions import db
from billing.price_lists import create_price_list
from tests.doubles import CountingGateway


@pytest.fixture
def stripe(app):
    gateway = CountingGateway()
    with app.app_context():
        create_price_list(DEMO_PRICE_LIST, "tests")
        app.extensions["stripe_gateway"] = gateway
        try:
            yield gateway
        finally:
            app.extensions.pop("stripe_gateway", None)
            db.session.remove()
