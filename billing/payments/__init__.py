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


# Where links point while PUBLIC_BASE_URL is unset, which start-up allows only while paying online
# and email are off (a development machine): `make run`'s address.
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"


def public_base_url() -> str:
    """How links start: PUBLIC_BASE_URL. Never the Host header of a request, which anyone can
    set (a link made through `Host: evil.example` would send a patient there)."""
    return current_app.config["PUBLIC_BASE_URL"] or DEVELOPMENT_BASE_URL


def payment_base_url() -> str | None:
    """public_base_url() while paying online is on; None (make no links) while it is off."""
    return public_base_url() if stripe_gateway() is not None else None
