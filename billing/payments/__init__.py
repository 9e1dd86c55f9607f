"""Payments through Stripe: the gateway (every Stripe call) and the Stripe event handlers."""

from __future__ import annotations

from flask import current_app

from .gateway import StripeGateway, gateway_from_config


def stripe_gateway() -> StripeGateway | None:
    """This app's gateway (built once), or None while paying online is off."""
    extensions = current_app.extensions
    if "stripe_gateway" not in extensions:
        extensions["stripe_gateway"] = gateway_from_config(current_app.config)
    return extensions["stripe_gateway"]
