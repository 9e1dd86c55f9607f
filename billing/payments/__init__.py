"""Payments through Stripe: the gateway (every Stripe call) and the Stripe event handlers."""

from __future__ import annotations

from flask import current_app, request

from .gateway import StripeGateway, gateway_from_config


def stripe_gateway() -> StripeGateway | None:
    """This app's gateway (built once), or None while paying online is off."""
    extensions = current_app.extensions
    if "stripe_gateway" not in extensions:
        extensions["stripe_gateway"] = gateway_from_config(current_app.config)
    return extensions["stripe_gateway"]


def public_base_url() -> str:
    """How payment links start: PUBLIC_BASE_URL, else the address this request came to."""
    return current_app.config["PUBLIC_BASE_URL"] or request.host_url.rstrip("/")


def payment_base_url() -> str | None:
    """public_base_url() while paying online is on; None (make no links) while it is off."""
    return public_base_url() if stripe_gateway() is not None else None
