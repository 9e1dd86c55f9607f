"""What the booking system sent: recent and failed events, with the reason, and replay."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from .. import booking
from ..errors import DomainProblem
from ..payments import payment_base_url
from . import bp, can, requires
from .invoices import ConfirmForm


@bp.get("/booking-events")
@requires("viewer")
def booking_events():
    outcome = request.args.get("outcome") or None
    if outcome not in (None, "failed", "created", "updated", "finalized", "voided", "stale", "ignored"):
        outcome = None
    rows, has_more = booking.list_events(limit=100, starting_after=request.args.get("after") or None, outcome=outcome)
    older = url_for("web.booking_events", outcome=outcome or "", after=rows[-1].id) if has_more and rows else None
    return render_template("booking_events.html", rows=rows, outcome=outcome, older=older, form=ConfirmForm(), can=can)


@bp.post("/booking-events/<event_id>/replay")
@requires("finance")
def replay_booking_event(event_id: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("web.booking_events"), code=303)
    try:
        outcome = booking.replay_event(event_id, payment_base_url=payment_base_url())
    except DomainProblem as error:
        flash(f"Event {event_id} still can't be applied: {error.detail}", "error")
    else:
        flash(f"Event {event_id} applied: {outcome.result}.")
    return redirect(url_for("web.booking_events", outcome="failed"), code=303)
