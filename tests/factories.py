"""Documents and requests the tests build on: the contract's example price list first."""

from __future__ import annotations

import copy
from typing import Any

from billing.cli import DEMO_PRICE_LIST


def days_ahead(days: int) -> str:
    """A date `days` after the clinic's today, for price list versions (which may not be backdated)."""
    from datetime import timedelta

    from billing.clock import today_at_clinic

    return (today_at_clinic() + timedelta(days=days)).isoformat()


def price_list_document(**changes: Any) -> dict[str, Any]:
    """The contract's example price list, with top-level fields replaced."""
    document = copy.deepcopy(DEMO_PRICE_LIST)
    document.update(changes)
    return document


def infusion(**changes: Any) -> dict[str, Any]:
    """The contract's example infusion: 0.4 g/kg at 68.5 kg, 180 minutes, 1 December 2026."""
    body: dict[str, Any] = {
        "product_code": "IVIG10-5-10-20",
        "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
        "duration_minutes": 180,
        "service_date": "2026-12-01",
    }
    body.update(changes)
    return body


def invoice_body(**changes: Any) -> dict[str, Any]:
    """A draft invoice for the contract's example infusion (total 203000), for no booking (a
    booking has one infusion invoice at a time: pass booking_id to make it a booking's)."""
    body = infusion(patient={"id": "pt_9", "name": "Alex Example", "email": "alex@example.org"})
    body.update(changes)
    return body


BOOKING_SECRET = "whsec_booking_test_secret"


def booking_event(type_: str, *, event_id: str, booking_id: str = "bk_123", created: int = 1764576000,
                  **data_changes: Any) -> dict[str, Any]:
    """A booking system event carrying the whole booking, as the contract's example."""
    data: dict[str, Any] = {
        "booking_id": booking_id,
        "patient": {"id": "pt_9", "name": "Alex Example", "email": "alex@example.org"},
        "product_code": "IVIG10-5-10-20",
        "dose": {"grams": "25"},
        "duration_minutes": 180,
        "service_date": "2026-12-01",
        "other_items": [],
    }
    data.update(data_changes)
    return {"id": event_id, "type": type_, "created": created, "data": data}


# A credit note for an infusion that ended early: £100.00 off the service fee, nothing paid back.
SHORTER = {"reason": "order_change", "memo": "Infusion stopped after 90 minutes",
           "lines": [{"category": "infusion_service", "amount": 10000, "description": "Shorter infusion"}],
           "refund_amount": 0, "out_of_band_amount": 0}


def open_invoice(api, **changes: Any) -> dict[str, Any]:
    """A finalized invoice for the contract's example infusion (203000 due)."""
    draft = api.post("/api/v1/invoices", json=invoice_body(**changes))
    assert draft.status_code == 201, draft.get_json()
    opened = api.post(f"/api/v1/invoices/{draft.get_json()['id']}/finalize")
    assert opened.status_code == 200, opened.get_json()
    return opened.get_json()


def payment_link(api, invoice_id: str) -> str:
    response = api.post(f"/api/v1/invoices/{invoice_id}/payment-link")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]
